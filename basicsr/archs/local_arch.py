"""The official ``*Local`` type names (NAFNet, Baseline, HINet, MPRNet, Restormer option files) as the
base network converted by TLC (:func:`basicsr.inference.tlc.convert_local_`) at construction.

Each class is its base network plus the keyword arguments of the official classes: ``train_size``
(N, C, H, W) of the training crops (default (1, 3, 256, 256)), ``base_size`` (window at input resolution,
default 1.5 x the training H, W), ``fast_imp`` and, for the TLC release's HINet/MPRNet/Restormer,
``padder_size``. The ``state_dict`` is the base network's, so official ``*Local`` and plain checkpoints load
into either. Like the official classes, construction runs the calibration forward with a ``train_size``
input.

These names reproduce the official classes (megvii-research/TLC for HINet/MPRNet/Restormer,
megvii-research/NAFNet for NAFNet/Baseline; tests/test_inference_tlc_parity.py compares them with recorded
official outputs), including their quirks:

* HINetLocal and MPRNetLocal size their windows as if the training size were 256 x 256 whatever
  ``train_size`` says (the official converter never hands ``train_size`` to their pooling layers; the
  calibration input still has ``train_size``). RestormerLocal, NAFNetLocal and BaselineLocal use
  ``train_size``.
* The TLC release's networks zero-pad the bottom/right of the input to a multiple of ``padder_size``
  (HINet 16, MPRNet 8, Restormer 8) and crop the outputs back; NAFNet/Baseline pad to their own multiple.
* MPRNetLocal returns the final image only (a one-element ``NamedOutputs``, as the official ``[out]``);
  HINetLocal returns both stage outputs, as officially.

With the 256 px rule, small train sizes give tiny windows: in 1-pixel windows HINet's local variance is
rounding noise and the output can be NaN, officially and here (e.g. HINet depth 5 at ``train_size`` 64). Where
the official window would be empty it is 1 here instead of failing.

The improvements (windows from ``train_size``, reflect padding, MPRNet stage outputs) come with the generic
path: ``to_local(MPRNet(...), train_size=...)`` or ``tlc:`` in an option file.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

from basicsr.archs.baseline_arch import Baseline
from basicsr.archs.hinet_arch import HINet
from basicsr.archs.mprnet_arch import MPRNet
from basicsr.archs.nafnet_arch import NAFNet
from basicsr.archs.outputs import NamedOutputs
from basicsr.archs.restormer_arch import Restormer
from basicsr.inference.tlc import convert_local_, local_modules
from basicsr.utils.registry import ARCH_REGISTRY, check_kwargs

TrainSize = Sequence[int]
BaseSize = Optional[Union[int, Sequence[int]]]
_OFFICIAL_WINDOW_TRAIN_SIZE = (1, 3, 256, 256)  # what the TLC release's HINet/MPRNet pooling layers assume


def _init_local(net: nn.Module, base_cls: type, args: tuple, kwargs: dict, train_size: TrainSize,
                base_size: BaseSize, fast_imp: bool, padder_size: Optional[int] = None,
                windows_for_256: bool = False) -> None:
    """Build ``base_cls`` into ``net`` with the remaining arguments, then convert it in place.

    ``padder_size`` (TLC-release types only) is set before the calibration forward, which therefore runs on
    the padded input as officially; ``windows_for_256`` then re-sizes every window from its calibration
    feature size as for 256 px training.
    """
    check_kwargs(base_cls, kwargs, f"arch '{type(net).__name__}' (TLC-converted {base_cls.__name__})")
    if padder_size is not None and (not isinstance(padder_size, int) or padder_size < 0):
        raise ValueError(f"arch '{type(net).__name__}': padder_size must be an int >= 0 (0: no padding), "
                         f'got {padder_size!r}')
    base_cls.__init__(net, *args, **kwargs)
    if padder_size is not None:
        net.padder_size = padder_size
    convert_local_(net, train_size=tuple(train_size), base_size=base_size, fast_imp=fast_imp)
    if windows_for_256:
        for _, layer in local_modules(net):
            if layer.calibration_size is not None:
                layer.train_size = _OFFICIAL_WINDOW_TRAIN_SIZE
                layer.calibrate(*layer.calibration_size)


class _ZeroPadded(nn.Module):
    """Forward of the TLC release's networks: zero-pad bottom/right to ``padder_size``, crop the outputs."""

    padder_size: int

    @property
    def size_multiple(self) -> int:
        """1 when the internal padding already reaches the base network's multiple: then the inference
        pipeline (``pad_multiple: auto``) hands the image over unpadded, as the official test does."""
        base = super().size_multiple
        return 1 if self.padder_size and self.padder_size % base == 0 else base

    def forward(self, x: Tensor) -> Any:
        h, w = x.shape[-2:]
        p = self.padder_size
        if p:
            x = F.pad(x, (0, -w % p, 0, -h % p))
        out = super().forward(x)

        def crop(t: Tensor) -> Tensor:
            return t[:, :, :h, :w]
        return out.map(crop) if isinstance(out, NamedOutputs) else crop(out)


@ARCH_REGISTRY.register()
class NAFNetLocal(NAFNet):
    """:class:`NAFNet` with TLC (megvii-research/NAFNet). Extra kwargs: ``train_size``, ``base_size``
    (not in the official class, which always uses 1.5 x ``train_size``), ``fast_imp``."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, NAFNet, args, kwargs, train_size, base_size, fast_imp)


@ARCH_REGISTRY.register()
class BaselineLocal(Baseline):
    """:class:`Baseline` with TLC (megvii-research/NAFNet). Extra kwargs as :class:`NAFNetLocal`."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, **kwargs: Any) -> None:
        _init_local(self, Baseline, args, kwargs, train_size, base_size, fast_imp)


@ARCH_REGISTRY.register()
class HINetLocal(_ZeroPadded, HINet):
    """:class:`HINet` with TLC (local instance norm) as in megvii-research/TLC. Extra kwargs:
    ``train_size``, ``base_size``, ``fast_imp``, ``padder_size`` (16). Windows sized for 256 px training;
    any H, W (zero-padded). Returns ``stage:1``, ``stage:2`` (``pred``) like the official list."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, padder_size: int = 16, **kwargs: Any) -> None:
        _init_local(self, HINet, args, kwargs, train_size, base_size, fast_imp, padder_size, windows_for_256=True)


@ARCH_REGISTRY.register()
class MPRNetLocal(_ZeroPadded, MPRNet):
    """:class:`MPRNet` with TLC (local channel attention) as in megvii-research/TLC. Extra kwargs:
    ``train_size``, ``base_size``, ``fast_imp``, ``padder_size`` (8). Windows sized for 256 px training;
    any H, W (zero-padded). Returns only the final image: ``NamedOutputs`` with ``stage:3``."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, padder_size: int = 8, **kwargs: Any) -> None:
        _init_local(self, MPRNet, args, kwargs, train_size, base_size, fast_imp, padder_size, windows_for_256=True)

    def forward(self, x: Tensor) -> NamedOutputs:
        return NamedOutputs({'stage:3': super().forward(x)['stage:3']})


@ARCH_REGISTRY.register()
class RestormerLocal(_ZeroPadded, Restormer):
    """:class:`Restormer` with TLC (windowed MDTA) as in megvii-research/TLC. Extra kwargs: ``train_size``,
    ``base_size``, ``fast_imp`` (accepted; the attention has no fast variant, as officially),
    ``padder_size`` (8; zero padding, where the plain :class:`Restormer` reflect-pads)."""

    def __init__(self, *args: Any, train_size: TrainSize = (1, 3, 256, 256), base_size: BaseSize = None,
                 fast_imp: bool = False, padder_size: int = 8, **kwargs: Any) -> None:
        _init_local(self, Restormer, args, kwargs, train_size, base_size, fast_imp, padder_size)
