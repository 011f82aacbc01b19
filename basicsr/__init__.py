"""basicsr: a registry-driven image-restoration toolbox.

Importing the package is cheap: architectures, datasets, losses and metrics are imported on first use
through the lazy registries in :mod:`basicsr.utils.registry`.
"""
__version__ = '0.1.0'
