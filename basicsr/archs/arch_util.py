"""BasicSR's ``basicsr.archs.arch_util`` helpers, for architectures written against BasicSR.

Compatibility surface: the names and signatures are BasicSR's, the implementations are this toolbox's
(``sr_blocks``) or PyTorch's, with BasicSR's numerics (seeded initialisations draw the same numbers). No
file here is scanned by the arch registry (it has no ``_arch`` suffix).
"""
from __future__ import annotations

import collections.abc
import math
from itertools import repeat
from typing import Any, Callable, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.sr_blocks import ResidualBlockNoBN, Upsample, default_init_weights

__all__ = ['default_init_weights', 'make_layer', 'ResidualBlockNoBN', 'Upsample', 'flow_warp', 'resize_flow',
           'pixel_unshuffle', 'trunc_normal_', 'to_1tuple', 'to_2tuple', 'to_3tuple', 'to_4tuple', 'to_ntuple']


def make_layer(basic_block: Callable[..., nn.Module], num_basic_block: int, **kwarg: Any) -> nn.Sequential:
    """``num_basic_block`` instances of ``basic_block(**kwarg)`` in an ``nn.Sequential`` (children ``0, 1, ...``)."""
    return nn.Sequential(*(basic_block(**kwarg) for _ in range(num_basic_block)))


def flow_warp(x: torch.Tensor, flow: torch.Tensor, interp_mode: str = 'bilinear', padding_mode: str = 'zeros',
              align_corners: bool = True) -> torch.Tensor:
    """Warp ``x`` (N, C, H, W) by ``flow`` (N, H, W, 2) in pixels, (dx, dy) order, with ``grid_sample``.

    The sampling grid is normalised by ``max(size - 1, 1)``, which matches ``align_corners=True`` (BasicSR's
    default); the other arguments go to ``F.grid_sample``.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f'flow_warp: feature map is {tuple(x.shape[-2:])} (HxW) but the flow is '
                         f'{tuple(flow.shape[1:3])}; flow must be (N, H, W, 2)')
    _, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    grid = torch.stack((grid_x, grid_y), 2).float() + flow
    gx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((gx, gy), dim=3), mode=interp_mode, padding_mode=padding_mode,
                         align_corners=align_corners)


def resize_flow(flow: torch.Tensor, size_type: str, sizes: Sequence[float], interp_mode: str = 'bilinear',
                align_corners: bool = False) -> torch.Tensor:
    """Resize a flow (N, 2, H, W) by ``sizes`` = (ratio_h, ratio_w) or to ``sizes`` = (h, w); the flow values
    are scaled by the width/height ratios."""
    _, _, h, w = flow.shape
    if size_type == 'ratio':
        out_h, out_w = int(h * sizes[0]), int(w * sizes[1])
    elif size_type == 'shape':
        out_h, out_w = int(sizes[0]), int(sizes[1])
    else:
        raise ValueError(f"resize_flow: size_type must be 'ratio' or 'shape', got {size_type!r}")
    scaled = flow.clone()
    scaled[:, 0] *= out_w / w
    scaled[:, 1] *= out_h / h
    return F.interpolate(scaled, size=(out_h, out_w), mode=interp_mode, align_corners=align_corners)


def pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * scale**2, H / scale, W / scale); the inverse of ``nn.PixelShuffle``."""
    return F.pixel_unshuffle(x, scale)


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, mean: float = 0., std: float = 1., a: float = -2.,
                  b: float = 2.) -> torch.Tensor:
    """Fill ``tensor`` in place from N(mean, std^2) truncated to [a, b] (absolute bounds); returns it.

    Inverse-CDF sampling as BasicSR (and timm): one uniform draw per element in [2 Phi(a') - 1, 2 Phi(b') - 1],
    mapped through ``erfinv``, so a seeded initialisation gives BasicSR's numbers (recent PyTorch's
    ``nn.init.trunc_normal_`` samples by rejection and does not).
    """
    def cdf(x: float) -> float:
        return (1. + math.erf(x / math.sqrt(2.))) / 2.

    low, up = cdf((a - mean) / std), cdf((b - mean) / std)
    tensor.uniform_(2 * low - 1, 2 * up - 1)
    tensor.erfinv_()
    tensor.mul_(std * math.sqrt(2.))
    tensor.add_(mean)
    return tensor.clamp_(min=a, max=b)


def to_ntuple(n: int) -> Callable[[Any], Tuple]:
    """``to_ntuple(n)(x)``: an iterable ``x`` as it is, anything else repeated ``n`` times in a tuple."""
    def parse(x: Any) -> Any:
        if isinstance(x, collections.abc.Iterable):
            return x
        return tuple(repeat(x, n))
    return parse


to_1tuple = to_ntuple(1)
to_2tuple = to_ntuple(2)
to_3tuple = to_ntuple(3)
to_4tuple = to_ntuple(4)
