"""The official ``*Local`` type names (NAFNet, Baseline, HINet, MPRNet, Restormer option files) as the
base network converted by TLC (:func:`basicsr.inference.tlc.convert_local_`) at construction.

Each class is its base network plus three keyword arguments of the official configs:
``train_size`` (N, C, H, W) of the training crops (default (1, 3, 256, 256)), ``base_size`` (window at
input resolution, default 1.5 x the training H, W) and ``fast_imp``. The ``state_dict`` is the base
network's, so official ``*Local`` and plain checkpoints load into either. Like the official classes,
construction runs the calibration forward with a ``train_size`` input.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from basicsr.archs.baseline_arch import Baseline
from basicsr.archs.hinet_arch import HINet
from basicsr.archs.mprnet_arch import MPRNet
from basicsr.archs.nafnet_arch import NAFNet
from basicsr.archs.restormer_arch import Restormer
from basicsr.inference.tlc import LocalInstanceNorm2d, convert_local_, local_modules
from basicsr.utils.registry import ARCH_REGISTRY, check_kwargs

TrainSize = Sequence[int]
BaseSize = Optional[Union[int, Sequence[int]]]
_OFFICIAL_NORM_TRAIN_SIZE = (1, 3, 256, 256)  # what the official LocalInstanceNorm2d always assumes


def _init_local(net: Any, base_cls: type, args: tuple, kwargs: dict, train_size: TrainSize,
                base_size: BaseSize, fast_imp: bool) -> None:
    """Build ``base_cls`` into ``net`` with the remaining arguments, then convert it in place."""
    check_kwargs(base_cls, kwargs, f"arch '{type(net).__name__}' (TLC-converted {base_cls.__name__})")
    base_cls.__init__(net, *args, **kwargs)
    convert_local_(net, train_size=tuple(train_size), base_size=base_size, fast_imp=fast_imp)


@ARCH_REGISTRY.register()
class NAFNetLocal(NAFNet):
    """:class:`NAFNet` with TLC. Extra kwargs: ``train_size``, ``base_size``, ``fast_imp``."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, NAFNet, args, kwargs, train_size, base_size, fast_imp)


@ARCH_REGISTRY.register()
class BaselineLocal(Baseline):
    """:class:`Baseline` with TLC. Extra kwargs: ``train_size``, ``base_size``, ``fast_imp``."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, Baseline, args, kwargs, train_size, base_size, fast_imp)


@ARCH_REGISTRY.register()
class HINetLocal(HINet):
    """:class:`HINet` with TLC (local instance norm). Extra kwargs: ``train_size``, ``base_size``,
    ``fast_imp``.

    Like the official class, the instance-norm windows are sized as if the training size were 256 x 256
    whatever ``train_size`` says (the official converter never hands ``train_size`` to them; with the
    default 256 this changes nothing). ``to_local(HINet(...), train_size=...)`` sizes them from
    ``train_size``.
    """

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, HINet, args, kwargs, train_size, base_size, fast_imp)
        for _, layer in local_modules(self):
            if isinstance(layer, LocalInstanceNorm2d) and layer.calibration_size is not None:
                layer.train_size = _OFFICIAL_NORM_TRAIN_SIZE
                layer.calibrate(*layer.calibration_size)


@ARCH_REGISTRY.register()
class MPRNetLocal(MPRNet):
    """:class:`MPRNet` with TLC (local channel attention). Extra kwargs: ``train_size``, ``base_size``,
    ``fast_imp``."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, MPRNet, args, kwargs, train_size, base_size, fast_imp)


@ARCH_REGISTRY.register()
class RestormerLocal(Restormer):
    """:class:`Restormer` with TLC (windowed MDTA). Extra kwargs: ``train_size``, ``base_size``,
    ``fast_imp`` (accepted; the attention has no fast variant, as officially)."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, Restormer, args, kwargs, train_size, base_size, fast_imp)
