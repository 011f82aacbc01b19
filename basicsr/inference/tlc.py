"""TLC, the test-time local converter (Chu et al., "Improving Image Restoration by Revisiting Global
Information Aggregation", ECCV 2022).

Networks trained on small crops aggregate *global* statistics (global average pooling in channel
attention, instance-norm statistics, channel self-attention). On a full-resolution test image those
statistics come from a far larger region than in training. :func:`to_local` returns a copy of any
network in which each such operator is computed over a local window instead, without retraining.

How a window is chosen (the official rule): after swapping the modules, one dummy forward with a random
input of ``train_size`` is run; a converted layer whose input was ``h x w`` during that pass fixes its
window to ``(h * base_h // train_h, w * base_w // train_w)`` with ``base_size = 1.5 x train`` by default
(a full-resolution layer of a 256-trained network gets 384, a half-resolution one 192, ...). At test
time a window that covers the whole feature map is the global statistic, so images no larger than
the base size give exactly the unconverted network's output.

Local means use an integral image (2-D cumulative sum). The "valid" box-filter output is smaller than
the map; it is replicate-padded back (``floor(d/2)`` before, ``ceil(d/2)`` after) as in the official
code. ``fast_imp`` subsamples by the largest r in {5, 4, 3, 2, 1} dividing the size (capped by
``5 * h_calib // train_h``), box-filters the subsampled map and upsamples it with nearest neighbour:
an approximation that the official code offers for speed.

Converters are registered per module class in ``TLC_CONVERTER_REGISTRY`` under the class's qualified
name (``'torch.nn.modules.pooling.AdaptiveAvgPool2d'``); the most specific class in a module's MRO
wins. A converter takes ``(module, TLCSettings)`` and returns the local replacement, or ``None`` to
leave the module alone (its children are then visited), or the module itself to keep it whole (its
children are not visited). Replacements keep the original parameter names, so a converted network loads
the base network's ``state_dict``.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr.archs.conditions import example_conditions
from basicsr.utils.registry import TLC_CONVERTER_REGISTRY

__all__ = ['to_local', 'convert_local_', 'TLCSettings', 'LocalWindow', 'LocalAvgPool2d',
           'LocalPooledBranch', 'LocalInstanceNorm2d', 'local_mean', 'expand_local', 'local_modules']

SizeLike = Union[int, Sequence[int]]
_FAST_RATIOS = (5, 4, 3, 2, 1)  # subsampling ratios tried by fast_imp, largest first


@dataclass(frozen=True)
class TLCSettings:
    """What every converter needs: training input size ``(N, C, H, W)``, base window ``(H, W)``,
    ``fast_imp`` and ``extra`` (apply the converters that go beyond the official TLC)."""
    train_size: Tuple[int, int, int, int]
    base_size: Tuple[int, int]
    fast_imp: bool = False
    extra: bool = False


# ---------------------------------------------------------------------------------------- box filter
def local_mean(x: Tensor, kernel: Tuple[int, int], fast_imp: bool = False,
               max_ratio: Tuple[int, int] = (5, 5)) -> Tuple[Tensor, Tuple[int, int]]:
    """Box-filtered mean of ``x`` (B, C, H, W) over ``kernel`` windows, without padding.

    Returns ``(compact, ratio)``: ``compact`` is (B, C, 1, 1) (the global mean, ratio ``(0, 0)``) when the
    window covers the whole map, else the "valid" local means, on the ``ratio``-subsampled grid for
    ``fast_imp``. :func:`expand_local` turns it into a (B, C, H, W) map.
    """
    h, w = x.shape[-2:]
    if kernel[0] >= h and kernel[1] >= w:
        return F.adaptive_avg_pool2d(x, 1), (0, 0)
    if fast_imp:
        r1 = min(max_ratio[0], next(r for r in _FAST_RATIOS if h % r == 0))
        r2 = min(max_ratio[1], next(r for r in _FAST_RATIOS if w % r == 0))
        # the official fast path needs at least two samples per axis; tiny maps use the exact one
        if h // r1 >= 2 and w // r2 >= 2:
            s = x[:, :, ::r1, ::r2].cumsum(dim=-1).cumsum(dim=-2)
            hs, ws = s.shape[-2:]
            k1 = max(1, min(hs - 1, kernel[0] // r1))
            k2 = max(1, min(ws - 1, kernel[1] // r2))
            # window sums from four corners of the integral image; like the official code the first
            # row/column is never the start of a window (no zero border)
            box = s[:, :, :-k1, :-k2] - s[:, :, :-k1, k2:] - s[:, :, k1:, :-k2] + s[:, :, k1:, k2:]
            return box / (k1 * k2), (r1, r2)
    k1, k2 = min(h, kernel[0]), min(w, kernel[1])
    # integral image with a zero first row/column (window sums start at 0); summing in place in the padded
    # buffer gives the same values as padding afterwards, with one full-size allocation instead of three
    s = F.pad(x, (1, 0, 1, 0)).cumsum_(dim=-1).cumsum_(dim=-2)
    box = s[:, :, k1:, k2:] + s[:, :, :-k1, :-k2]
    box -= s[:, :, :-k1, k2:]
    box -= s[:, :, k1:, :-k2]
    return box.div_(k1 * k2), (1, 1)


def expand_local(compact: Tensor, ratio: Tuple[int, int], size: Tuple[int, int]) -> Tensor:
    """Bring a :func:`local_mean` result ``(compact, ratio)`` back to ``size`` = (H, W): nearest upsampling by ``ratio``, then
    replicate padding (floor half before, ceil half after). A global (1, 1) result is returned as is."""
    if ratio == (0, 0):
        return compact
    if ratio != (1, 1):
        # nearest upsampling by integer factors (what F.interpolate(scale_factor=ratio) computes), as one copy
        b, c, h, w = compact.shape
        compact = compact[:, :, :, None, :, None].expand(b, c, h, ratio[0], w, ratio[1])
        compact = compact.reshape(b, c, h * ratio[0], w * ratio[1])
    dh, dw = size[0] - compact.shape[-2], size[1] - compact.shape[-1]
    if dh == 0 and dw == 0:
        return compact
    return F.pad(compact, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode='replicate')


# ---------------------------------------------------------------------------------------- modules
class LocalWindow(nn.Module):
    """Base of every converted module: holds the TLC settings and the window fixed by calibration.

    ``kernel_size`` is ``None`` until the calibration pass run by :func:`convert_local_`; a module that
    was never reached by that pass raises instead of silently calibrating on a test image.
    """

    def __init__(self, settings: TLCSettings) -> None:
        super().__init__()
        self.train_size = tuple(settings.train_size)
        self.base_size = tuple(settings.base_size)
        self.fast_imp = settings.fast_imp
        self.kernel_size: Optional[Tuple[int, int]] = None
        self.max_ratio: Tuple[int, int] = (_FAST_RATIOS[0], _FAST_RATIOS[0])
        self.calibration_size: Optional[Tuple[int, int]] = None  # (h, w) seen in the calibration pass
        self.calibrating = False

    def window_for(self, x: Tensor) -> Tuple[int, int]:
        """The calibrated window; during calibration fix it from this input's spatial size."""
        if self.kernel_size is None:
            if not self.calibrating:
                raise RuntimeError(f'{type(self).__name__} has no calibrated window: build converted '
                                   f'networks with basicsr.inference.tlc.to_local(), which runs the '
                                   f'calibration pass (this layer may not be reached by the forward)')
            self.calibration_size = tuple(x.shape[-2:])
            self.calibrate(*self.calibration_size)
        return self.kernel_size

    def calibrate(self, h: int, w: int) -> None:
        """Fix the window from the feature size ``h x w`` seen with the training-size input (official rule)."""
        th, tw = self.train_size[-2:]
        # at least 1: a feature map far smaller than the training input must not get an empty window
        self.kernel_size = (max(1, h * self.base_size[0] // th), max(1, w * self.base_size[1] // tw))
        self.max_ratio = (max(1, _FAST_RATIOS[0] * h // th), max(1, _FAST_RATIOS[0] * w // tw))

    def local_mean(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """:func:`local_mean` with this layer's window and settings."""
        return local_mean(x, self.window_for(x), self.fast_imp, self.max_ratio)

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, base_size={self.base_size}, '
                f'train_size={self.train_size}, fast_imp={self.fast_imp}')


class LocalAvgPool2d(LocalWindow):
    """Replacement for ``AdaptiveAvgPool2d(1)``: (B, C, H, W) -> per-pixel local mean (B, C, H, W), or
    (B, C, 1, 1) when the window covers the map (the original global pooling)."""

    def forward(self, x: Tensor) -> Tensor:
        compact, ratio = self.local_mean(x)
        return expand_local(compact, ratio, x.shape[-2:])


class LocalPooledBranch(nn.Sequential):
    """Replacement for ``Sequential(AdaptiveAvgPool2d(1), <pointwise layers>)`` (squeeze-excitation and
    NAFNet's simplified channel attention).

    Same children and indices as the original (``sca.1.weight`` stays ``sca.1.weight``). Because the
    tail is pointwise, it runs on the compact local means before they are upsampled/padded: the same
    values as pooling-then-tail, at a fraction of the cost.
    """

    def __init__(self, pool: LocalAvgPool2d, tail: Iterable[nn.Module]) -> None:
        super().__init__(pool, *tail)

    def forward(self, x: Tensor) -> Tensor:
        pool = self[0]
        y, ratio = pool.local_mean(x)
        for layer in list(self)[1:]:
            y = layer(y)
        return expand_local(y, ratio, x.shape[-2:])


class LocalInstanceNorm2d(LocalWindow):
    """Replacement for ``InstanceNorm2d`` (HINet): mean and variance over local windows,
    ``var = E[x^2] - E[x]^2`` as in the official converter, then the affine transform.
    Keeps the original ``weight``/``bias`` parameters."""

    def __init__(self, norm: nn.InstanceNorm2d, settings: TLCSettings) -> None:
        super().__init__(settings)
        self.num_features = norm.num_features
        self.eps = norm.eps
        self.affine = norm.affine
        self.weight = norm.weight if norm.affine else None
        self.bias = norm.bias if norm.affine else None

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        mean = expand_local(*self.local_mean(x), size)
        mean_sq = expand_local(*self.local_mean(x * x), size)
        x = (x - mean) / torch.sqrt(mean_sq - mean * mean + self.eps)
        if self.affine:
            x = x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return x


# ---------------------------------------------------------------------------------------- converters
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh,
              nn.Identity, nn.Dropout)


def is_global_avg_pool(m: nn.Module) -> bool:
    """``AdaptiveAvgPool2d`` with output 1x1 (the only adaptive pooling TLC converts)."""
    if not isinstance(m, nn.AdaptiveAvgPool2d):
        return False
    size = m.output_size
    return all(s == 1 for s in (size if isinstance(size, (tuple, list)) else (size, size)))


def is_pointwise(m: nn.Module) -> bool:
    """True for layers acting on each pixel alone (1x1 stride-1 unpadded convs, activations)."""
    if isinstance(m, nn.Conv2d):
        return (tuple(m.kernel_size) == (1, 1) and tuple(m.stride) == (1, 1)
                and tuple(m.padding) == (0, 0) and tuple(m.dilation) == (1, 1))
    if isinstance(m, nn.Sequential):
        return all(is_pointwise(c) for c in m)
    return isinstance(m, _POINTWISE)


@TLC_CONVERTER_REGISTRY.register(name='torch.nn.modules.pooling.AdaptiveAvgPool2d')
def convert_adaptive_avg_pool(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """Global average pooling -> :class:`LocalAvgPool2d` (other output sizes are not global)."""
    return LocalAvgPool2d(settings) if is_global_avg_pool(module) else None


@TLC_CONVERTER_REGISTRY.register(name='torch.nn.modules.container.Sequential')
def convert_pooled_branch(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """``Sequential(AdaptiveAvgPool2d(1), pointwise...)`` -> :class:`LocalPooledBranch`; any other
    Sequential is left for its children to be converted one by one."""
    children = list(module)
    if len(children) < 2 or not is_global_avg_pool(children[0]):
        return None
    if not all(is_pointwise(c) for c in children[1:]):
        return None
    return LocalPooledBranch(LocalAvgPool2d(settings), children[1:])


@TLC_CONVERTER_REGISTRY.register(name='torch.nn.modules.instancenorm.InstanceNorm2d')
def convert_instance_norm(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """``InstanceNorm2d`` (without running statistics) -> :class:`LocalInstanceNorm2d`."""
    if module.track_running_stats:
        return None  # eval-mode normalisation uses stored statistics: nothing global to localise
    return LocalInstanceNorm2d(module, settings)


def _class_key(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def _find_converter(module: nn.Module):
    for cls in type(module).__mro__:
        key = _class_key(cls)
        if key in TLC_CONVERTER_REGISTRY:
            return TLC_CONVERTER_REGISTRY.get(key)
    return None


def _swap_modules(module: nn.Module, settings: TLCSettings, prefix: str, done: List[str]) -> None:
    for name, child in module.named_children():
        path = f'{prefix}{name}'
        convert = _find_converter(child)
        new = convert(child, settings) if convert is not None else None
        if new is None:
            _swap_modules(child, settings, path + '.', done)
        elif new is not child:  # a converter returning the module itself keeps it whole (no descent)
            setattr(module, name, new)
            done.append(path)


# ---------------------------------------------------------------------------------------- entry points
def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _as_pair(value: SizeLike, what: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(_is_size(v) for v in pair):
        raise ValueError(f'{what} must be a positive int or [H, W], got {value!r}')
    return pair


def make_settings(train_size: Sequence[int] = (1, 3, 256, 256), base_size: Optional[SizeLike] = None,
                  fast_imp: bool = False, extra: bool = False, where: str = 'TLC') -> TLCSettings:
    """Validate the TLC options; ``base_size`` defaults to ``int(1.5 * train H), int(1.5 * train W)``.
    ``where`` names the option block in errors (``'test.tlc'``: ``test.tlc.train_size must be ...``)."""
    train = tuple(train_size) if isinstance(train_size, (list, tuple)) else ()
    if len(train) != 4 or not all(_is_size(v) for v in train):
        raise ValueError(f'{where}.train_size must be [N, C, H, W] (positive ints, e.g. [1, 3, 256, 256]), '
                         f'got {train_size!r}')
    if base_size is None:
        base = (int(train[2] * 1.5), int(train[3] * 1.5))
    else:
        base = _as_pair(base_size, f'{where}.base_size')
    return TLCSettings(train_size=train, base_size=base, fast_imp=bool(fast_imp), extra=bool(extra))


def local_modules(net: nn.Module) -> List[Tuple[str, LocalWindow]]:
    """(name, module) of every converted layer holding a window."""
    return [(n, m) for n, m in net.named_modules() if isinstance(m, LocalWindow)]


def _calibration_input(net: nn.Module, train_size: Tuple[int, ...]) -> Tensor:
    ref = next(iter(net.parameters()), None)
    device = ref.device if ref is not None else torch.device('cpu')
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(0)  # values do not matter, only shapes; keep the global RNG
    return torch.rand(train_size, generator=gen).to(device=device, dtype=dtype)


def convert_local_(net: nn.Module, train_size: Sequence[int] = (1, 3, 256, 256),
                   base_size: Optional[SizeLike] = None, fast_imp: bool = False,
                   extra: bool = False) -> List[str]:
    """Convert ``net`` in place and calibrate its windows; returns the names of the converted modules.

    The calibration forward runs in eval mode without gradients (training mode is restored after); a network
    whose forward reaches only some of its layers (UniRestorer's experts) provides ``calibration_forward(x)``
    that reaches them all.
    """
    settings = make_settings(train_size, base_size, fast_imp, extra)
    converted: List[str] = []
    convert = _find_converter(net)
    if convert is not None and convert(net, settings) is not None:
        raise TypeError(f'to_local converts the layers inside a network; wrap the {type(net).__name__} '
                        f'in a network instead of passing it alone')
    _swap_modules(net, settings, '', converted)
    if not converted:
        return converted
    layers = local_modules(net)
    was_training = net.training
    net.eval()
    for _, m in layers:
        m.calibrating = True
    try:
        with torch.no_grad():
            x = _calibration_input(net, settings.train_size)
            # a mixture of experts routes to one expert per image; its calibration_forward runs them all
            getattr(net, 'calibration_forward', net)(x, **example_conditions(net, x.shape[0], x.device))
    finally:
        for _, m in layers:
            m.calibrating = False
        net.train(was_training)
    missed = [n for n, m in layers if m.kernel_size is None]
    if missed:
        warnings.warn(f'TLC: {len(missed)} converted layer(s) were not reached by the calibration forward '
                      f'and will raise if used: {missed[:5]}', stacklevel=2)
    return converted


def to_local(net: nn.Module, train_size: Sequence[int] = (1, 3, 256, 256),
             base_size: Optional[SizeLike] = None, fast_imp: bool = False, extra: bool = False,
             share_weights: bool = False) -> nn.Module:
    """A converted deep copy of ``net`` (the original is untouched).

    Args:
        net: any network taking (N, C, H, W) inputs of ``train_size``'s channel count.
        train_size: ``(N, C, H, W)`` of the training crops; sets the calibration input.
        base_size: window at the input resolution, int or (H, W); default 1.5 x the training H, W.
        fast_imp: the official approximate box filter (strided sampling + nearest upsampling).
        extra: also apply the converters beyond the official TLC (PromptIR prompt pooling, DSRIR patch
            attention, MiOIR prompt extractor); off by default, an ablation.
        share_weights: the copy uses ``net``'s own parameter and buffer tensors (no memory for a second
            set of weights; it follows further training of ``net``).
    Returns:
        the converted copy; images (features) no larger than the window keep the global statistics.
        A network with nothing to convert gives a warning and an unchanged copy.
    """
    memo = {}
    if share_weights:
        memo = {id(t): t for t in list(net.parameters()) + list(net.buffers())}
    local = copy.deepcopy(net, memo)
    if not convert_local_(local, train_size, base_size, fast_imp, extra):
        if local_modules(local):
            warnings.warn(f'TLC: {type(net).__name__} is already converted; returning an unchanged copy',
                          stacklevel=2)
            return local
        warnings.warn(f'TLC: {type(net).__name__} has no layer with global statistics that a registered '
                      f'converter handles (registered: {", ".join(TLC_CONVERTER_REGISTRY.keys())}); '
                      f'returning an unchanged copy', stacklevel=2)
    return local
