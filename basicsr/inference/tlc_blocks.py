"""TLC converters for the toolbox's own blocks (the generic torch-layer converters are in :mod:`tlc`).

* ``CALayer`` (MPRNet/RCAN channel attention): local pooling, the excitation convs on the compact
  local means, then upsampling/padding, as the official MPRNetLocal (pool without padding, pad the
  attention vector) does.
* ``Attention`` (Restormer's MDTA, also in PromptIR): the channel self-attention is computed
  independently on overlapping windows of the calibrated size (official grid: ``ceil(size / k)``
  windows per axis, last one snapped to the border) and the overlaps are averaged, as in the official
  RestormerLocal. ``fast_imp`` does not apply (the official code has no fast variant for it).

Each converted module adopts the original's parameters under the same names.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from basicsr.archs.transformer_blocks import transposed_attention
from basicsr.inference.grids import grid_windows
from basicsr.inference.tlc import LocalAvgPool2d, LocalWindow, TLCSettings, expand_local, is_pointwise
from basicsr.utils.registry import TLC_CONVERTER_REGISTRY

__all__ = ['LocalCALayer', 'LocalChannelAttention']


class LocalCALayer(nn.Module):
    """``x * conv_du(local_mean(x))`` with the excitation run before the means are expanded."""

    def __init__(self, layer: nn.Module, settings: TLCSettings) -> None:
        super().__init__()
        self.avg_pool = LocalAvgPool2d(settings)
        self.conv_du = layer.conv_du

    def forward(self, x: Tensor) -> Tensor:
        y, ratio = self.avg_pool.local_mean(x)
        return x * expand_local(self.conv_du(y), ratio, x.shape[-2:])


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.conv_blocks.CALayer')
def convert_ca_layer(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """``CALayer`` with a pointwise ``conv_du`` -> :class:`LocalCALayer`."""
    if not is_pointwise(module.conv_du):
        return None
    return LocalCALayer(module, settings)


class LocalChannelAttention(LocalWindow):
    """MDTA whose attention statistics come from windows of the calibrated size (batch of any size)."""

    def __init__(self, attention: nn.Module, settings: TLCSettings) -> None:
        super().__init__(settings)
        self.num_heads = attention.num_heads
        self.temperature = attention.temperature
        self.qkv = attention.qkv
        self.qkv_dwconv = attention.qkv_dwconv
        self.project_out = attention.project_out

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        k1, k2 = self.window_for(x)
        qkv = self.qkv_dwconv(self.qkv(x))
        if k1 >= h and k2 >= w:
            return self.project_out(transposed_attention(qkv, self.num_heads, self.temperature))
        k1, k2 = min(k1, h), min(k2, w)
        windows = grid_windows(h, w, (k1, k2))
        parts = torch.cat([qkv[:, :, i:i + k1, j:j + k2] for i, j in windows], dim=0)
        outs = transposed_attention(parts, self.num_heads, self.temperature).split(b, dim=0)
        total = x.new_zeros(b, c, h, w)
        count = x.new_zeros(1, 1, h, w)
        for (i, j), out in zip(windows, outs):
            total[:, :, i:i + k1, j:j + k2] += out
            count[:, :, i:i + k1, j:j + k2] += 1
        return self.project_out(total / count)


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.transformer_blocks.Attention')
def convert_mdta(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """Restormer MDTA -> :class:`LocalChannelAttention`."""
    return LocalChannelAttention(module, settings)
