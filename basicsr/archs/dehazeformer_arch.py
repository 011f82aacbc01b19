"""DehazeFormer: a 5-level U-shaped Swin-style network that predicts a per-pixel scale K and bias B.

Song et al., "Vision Transformers for Single Image Dehazing", TIP 2023 (official code: IDKiro/DehazeFormer
``models/dehazeformer.py``; mrluin/UniRestorer ships an identical copy whose ``dehazeformer_l`` is its haze
expert). The network reads the image in [0, 1] and returns ``K * x - B + x``, where the 4 output channels of
the body are split into K (1) and B (3). Input H, W are reflect-padded to a multiple of 4 and the output is
cropped back, as the official forward does; window attention reflect-pads every level to the window size.

Blocks: a block either runs window attention (with a parallel convolution branch of ``conv_type``) after a
revised LayerNorm (RLN, whose normalising statistics re-enter as a learned rescale / rebias), or only the
convolution branch; the last ``attn_ratio * depth`` blocks of a level use attention, every second one with
shifted windows. ``DEHAZEFORMER_CONFIGS`` holds the official variants (the class defaults are ``-b``).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.input_size import pad_to_multiple, reflect_pad
from basicsr.archs.sr_blocks import window_partition, window_reverse
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['DehazeFormer', 'DEHAZEFORMER_CONFIGS']

Tensor = torch.Tensor

_WIDE = [48, 96, 192, 96, 48]
_NARROW = [24, 48, 96, 48, 24]
_RATIO = [0.25, 0.5, 0.75, 0, 0]

#: constructor kwargs of the official named variants (``dehazeformer_<name>()``); ``b`` is the class default
DEHAZEFORMER_CONFIGS: Dict[str, dict] = {
    't': dict(embed_dims=_NARROW, depths=[4, 4, 4, 2, 2], attn_ratio=[0, 0.5, 1, 0, 0], conv_type=['DWConv'] * 5),
    's': dict(embed_dims=_NARROW, depths=[8, 8, 8, 4, 4], attn_ratio=_RATIO, conv_type=['DWConv'] * 5),
    'b': dict(embed_dims=_NARROW, depths=[16, 16, 16, 8, 8], attn_ratio=_RATIO, conv_type=['DWConv'] * 5),
    'd': dict(embed_dims=_NARROW, depths=[32, 32, 32, 16, 16], attn_ratio=_RATIO, conv_type=['DWConv'] * 5),
    'w': dict(embed_dims=_WIDE, depths=[16, 16, 16, 8, 8], attn_ratio=_RATIO, conv_type=['DWConv'] * 5),
    'm': dict(embed_dims=_NARROW, depths=[12, 12, 12, 6, 6], attn_ratio=_RATIO, conv_type=['Conv'] * 5),
    'l': dict(embed_dims=_WIDE, depths=[16, 16, 16, 12, 12], attn_ratio=_RATIO, conv_type=['Conv'] * 5),
}
_CONV_TYPES = ('Conv', 'DWConv')


def _trunc_normal_fan_avg_(weight: Tensor, gain: float = 1.0) -> None:
    """Truncated normal with std ``gain * sqrt(2 / (fan_in + fan_out))`` (the official conv init)."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    nn.init.trunc_normal_(weight, std=gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _init_convs_(module: nn.Module, network_depth: int, qk_channels: int = 0) -> None:
    """Official init of the convolutions in ``module``: depth-scaled gain, except the QK conv (its output
    has ``qk_channels`` channels) which gets gain 1."""
    gain = (8 * network_depth) ** (-1 / 4)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            _trunc_normal_fan_avg_(m.weight, 1.0 if m.weight.shape[0] == qk_channels else gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class RLN(nn.Module):
    """Revised LayerNorm over (C, H, W) per sample; also returns the rescale / rebias made from its std / mean."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones((1, dim, 1, 1)))
        self.bias = nn.Parameter(torch.zeros((1, dim, 1, 1)))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)
        nn.init.trunc_normal_(self.meta1.weight, std=.02)
        nn.init.constant_(self.meta1.bias, 1)
        nn.init.trunc_normal_(self.meta2.weight, std=.02)
        nn.init.constant_(self.meta2.bias, 0)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        return (x - mean) / std * self.weight + self.bias, self.meta1(std), self.meta2(mean)


class Mlp(nn.Module):
    """1x1 conv - ReLU - 1x1 conv."""

    def __init__(self, network_depth: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, dim, 1))
        _init_convs_(self, network_depth)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


def _log_relative_positions(window_size: int) -> Tensor:
    """``(ws*ws, ws*ws, 2)`` signed log(1 + |dy|), log(1 + |dx|) between the tokens of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing='ij'))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    return torch.sign(rel) * torch.log(1. + rel.abs())


class WindowAttention(nn.Module):
    """Multi-head attention inside a window; the position bias is an MLP of the log relative positions."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.register_buffer('relative_positions', _log_relative_positions(window_size))
        self.meta = nn.Sequential(nn.Linear(2, 256, bias=True), nn.ReLU(True), nn.Linear(256, num_heads, bias=True))

    def forward(self, qkv: Tensor) -> Tensor:
        """``(windows, N, 3*dim)`` -> ``(windows, N, dim)``."""
        b, n, _ = qkv.shape
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.dim // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + self.meta(self.relative_positions).permute(2, 0, 1).unsqueeze(0)
        return (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, self.dim)


class Attention(nn.Module):
    """Token mixer: window attention (optional) plus a ``conv_type`` convolution branch on V.

    ``Conv``: two 3x3 convs; without attention their output is the block's (no V / projection).
    ``DWConv``: a 5x5 depthwise conv on V, followed by the 1x1 projection.
    """

    def __init__(self, network_depth: int, dim: int, num_heads: int, window_size: int, shift_size: int,
                 use_attn: bool, conv_type: str) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.use_attn = use_attn
        self.conv_type = conv_type
        if conv_type == 'Conv':
            self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, padding_mode='reflect'), nn.ReLU(True),
                                      nn.Conv2d(dim, dim, 3, padding=1, padding_mode='reflect'))
        else:
            self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode='reflect')
        if conv_type == 'DWConv' or use_attn:
            self.V = nn.Conv2d(dim, dim, 1)
            self.proj = nn.Conv2d(dim, dim, 1)
        if use_attn:
            self.QK = nn.Conv2d(dim, dim * 2, 1)
            self.attn = WindowAttention(dim, window_size, num_heads)
        _init_convs_(self, network_depth, qk_channels=2 * dim)

    def _pad_windows(self, x: Tensor) -> Tensor:
        """Reflect-pad to whole windows; shifted windows put ``shift_size`` extra rows / columns on top / left."""
        ws, s = self.window_size, self.shift_size
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % ws, -w % ws
        if s > 0:
            return reflect_pad(x, (s, (ws - s + pad_w) % ws, s, (ws - s + pad_h) % ws))
        return reflect_pad(x, (0, pad_w, 0, pad_h))

    def forward(self, x: Tensor) -> Tensor:
        if not self.use_attn:
            return self.conv(x) if self.conv_type == 'Conv' else self.proj(self.conv(self.V(x)))
        h, w = x.shape[-2:]
        v = self.V(x)
        qkv = self._pad_windows(torch.cat([self.QK(x), v], dim=1))
        hp, wp = qkv.shape[-2:]
        ws, s = self.window_size, self.shift_size
        windows = window_partition(qkv.permute(0, 2, 3, 1), ws).reshape(-1, ws * ws, qkv.shape[1])
        out = window_reverse(self.attn(windows).reshape(-1, ws, ws, qkv.shape[1] // 3), ws, hp, wp)
        attn_out = out[:, s:s + h, s:s + w, :].permute(0, 3, 1, 2)
        return self.proj(self.conv(v) + attn_out)


class TransformerBlock(nn.Module):
    """Residual token mixer (RLN-normalised, rescaled / rebiased when it attends) and residual MLP."""

    def __init__(self, network_depth: int, dim: int, num_heads: int, mlp_ratio: float, window_size: int,
                 shift_size: int, use_attn: bool, conv_type: str) -> None:
        super().__init__()
        self.use_attn = use_attn
        self.norm1 = RLN(dim) if use_attn else nn.Identity()
        self.attn = Attention(network_depth, dim, num_heads, window_size, shift_size, use_attn, conv_type)
        self.norm2 = nn.Identity()  # the official mlp_norm is off in every variant
        self.mlp = Mlp(network_depth, dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        if self.use_attn:
            y, rescale, rebias = self.norm1(x)
            x = x + self.attn(y) * rescale + rebias
        else:
            x = x + self.attn(x)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    """``depth`` blocks; the last ``attn_ratio * depth`` attend, odd blocks with shifted windows."""

    def __init__(self, network_depth: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 window_size: int, attn_ratio: float, conv_type: str) -> None:
        super().__init__()
        first_attn = depth - attn_ratio * depth
        self.blocks = nn.ModuleList([
            TransformerBlock(network_depth, dim, num_heads, mlp_ratio, window_size,
                             0 if i % 2 == 0 else window_size // 2, i >= first_attn, conv_type)
            for i in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class PatchEmbed(nn.Module):
    """Strided conv (reflect padding): ``patch_size`` x downsampling."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = kernel_size or patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size, stride=patch_size,
                              padding=(kernel_size - patch_size + 1) // 2, padding_mode='reflect')

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class PatchUnEmbed(nn.Module):
    """Conv then PixelShuffle: ``patch_size`` x upsampling."""

    def __init__(self, patch_size: int, out_chans: int, embed_dim: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(embed_dim, out_chans * patch_size ** 2, kernel_size,
                                            padding=kernel_size // 2, padding_mode='reflect'),
                                  nn.PixelShuffle(patch_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class SKFusion(nn.Module):
    """Selective-kernel fusion of ``height`` feature maps: channel weights from their pooled sum, softmax."""

    def __init__(self, dim: int, height: int = 2, reduction: int = 8) -> None:
        super().__init__()
        self.height = height
        hidden = max(int(dim / reduction), 4)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(hidden, dim * height, 1, bias=False))

    def forward(self, feats: List[Tensor]) -> Tensor:
        b, c, h, w = feats[0].shape
        stacked = torch.cat(feats, dim=1).view(b, self.height, c, h, w)
        attn = self.mlp(self.avg_pool(stacked.sum(dim=1))).view(b, self.height, c, 1, 1).softmax(dim=1)
        return (stacked * attn).sum(dim=1)


def _five(name: str, value: Sequence, what: str) -> Sequence:
    if len(value) != 5:
        raise ValueError(f'DehazeFormer: {name} needs 5 entries (levels 1-5), got {list(value)} ({what})')
    return value


@ARCH_REGISTRY.register()
class DehazeFormer(nn.Module):
    """DehazeFormer (class defaults: the official ``-b``; see ``DEHAZEFORMER_CONFIGS`` for t/s/b/d/w/m/l).

    Args:
        in_chans: image channels; out_chans: body outputs, ``in_chans + 1`` (K and B).
        window_size: attention window (tokens per side).
        embed_dims, mlp_ratios, depths, num_heads, attn_ratio, conv_type: per level (5 entries; levels 1-3
            encode at 1, 1/2, 1/4 resolution, 4-5 decode); ``embed_dims[1] == embed_dims[3]`` and
            ``embed_dims[0] == embed_dims[4]`` (skip fusion); ``conv_type`` is 'Conv' or 'DWConv'.
    Input ``(B, in_chans, H, W)`` in [0, 1], any H, W >= 3; output ``K * x - B + x``, same shape.
    """

    size_multiple = 4

    def __init__(self, in_chans: int = 3, out_chans: int = 4, window_size: int = 8,
                 embed_dims: Sequence[int] = (24, 48, 96, 48, 24),
                 mlp_ratios: Sequence[float] = (2., 4., 4., 2., 2.),
                 depths: Sequence[int] = (16, 16, 16, 8, 8), num_heads: Sequence[int] = (2, 4, 6, 1, 1),
                 attn_ratio: Sequence[float] = (0.25, 0.5, 0.75, 0, 0),
                 conv_type: Sequence[str] = ('DWConv',) * 5) -> None:
        super().__init__()
        for name, value in [('embed_dims', embed_dims), ('mlp_ratios', mlp_ratios), ('depths', depths),
                            ('num_heads', num_heads), ('attn_ratio', attn_ratio), ('conv_type', conv_type)]:
            _five(name, value, 'one per level')
        if out_chans != in_chans + 1:
            raise ValueError(f'DehazeFormer: out_chans must be in_chans + 1 (one K channel and in_chans B '
                             f'channels), got in_chans={in_chans}, out_chans={out_chans}')
        if embed_dims[1] != embed_dims[3] or embed_dims[0] != embed_dims[4]:
            raise ValueError(f'DehazeFormer: the skip fusions need embed_dims[1] == embed_dims[3] and '
                             f'embed_dims[0] == embed_dims[4], got {list(embed_dims)}')
        bad = [c for c in conv_type if c not in _CONV_TYPES]
        if bad:
            raise ValueError(f'DehazeFormer: conv_type entries must be one of {_CONV_TYPES}, got {list(conv_type)}')
        uneven = [i for i in range(5) if attn_ratio[i] > 0 and embed_dims[i] % num_heads[i]]
        if uneven:
            raise ValueError(f'DehazeFormer: embed_dims must be multiples of num_heads on levels with attention, '
                             f'got embed_dims={list(embed_dims)}, num_heads={list(num_heads)} (levels {uneven})')
        depth = sum(depths)

        def layer(i: int) -> BasicLayer:
            return BasicLayer(depth, embed_dims[i], depths[i], num_heads[i], mlp_ratios[i], window_size,
                              attn_ratio[i], conv_type[i])

        self.patch_embed = PatchEmbed(1, in_chans, embed_dims[0], kernel_size=3)
        self.layer1 = layer(0)
        self.patch_merge1 = PatchEmbed(2, embed_dims[0], embed_dims[1])
        self.skip1 = nn.Conv2d(embed_dims[0], embed_dims[0], 1)
        self.layer2 = layer(1)
        self.patch_merge2 = PatchEmbed(2, embed_dims[1], embed_dims[2])
        self.skip2 = nn.Conv2d(embed_dims[1], embed_dims[1], 1)
        self.layer3 = layer(2)
        self.patch_split1 = PatchUnEmbed(2, embed_dims[3], embed_dims[2])
        self.fusion1 = SKFusion(embed_dims[3])
        self.layer4 = layer(3)
        self.patch_split2 = PatchUnEmbed(2, embed_dims[4], embed_dims[3])
        self.fusion2 = SKFusion(embed_dims[4])
        self.layer5 = layer(4)
        self.patch_unembed = PatchUnEmbed(1, out_chans, embed_dims[4], kernel_size=3)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W)`` with H, W multiples of 4 -> ``(B, out_chans, H, W)`` (K and B)."""
        skip1 = self.layer1(self.patch_embed(x))
        skip2 = self.layer2(self.patch_merge1(skip1))
        x = self.patch_split1(self.layer3(self.patch_merge2(skip2)))
        x = self.layer4(self.fusion1([x, self.skip2(skip2)]) + x)
        x = self.patch_split2(x)
        x = self.layer5(self.fusion2([x, self.skip1(skip1)]) + x)
        return self.patch_unembed(x)

    def forward(self, x: Tensor) -> Tensor:
        padded, (h, w) = pad_to_multiple(x, self.size_multiple, 'DehazeFormer')
        k, b = torch.split(self.forward_features(padded), (1, padded.shape[1]), dim=1)
        return (k * padded - b + padded)[:, :, :h, :w]
