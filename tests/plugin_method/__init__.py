"""A small method written the BasicSR way (a plug-in package), used by tests/test_plugin_method.py.

Layout and code follow what methods built on ``pip install basicsr`` ship: ``archs/*_arch.py``,
``models/*_model.py``, ``data/*_dataset.py`` registered in BasicSR's registries and imported by the
sub-packages' ``__init__``, a ``train.py``/``test.py`` calling ``train_pipeline``/``test_pipeline``.
"""
