"""Restormer-style transformer blocks shared by Restormer, LoRARestormer and PromptIR.

Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022.
The blocks work on feature maps ``(B, C, H, W)``: a channel LayerNorm (``BiasFree`` or ``WithBias``),
multi-Dconv head transposed attention (MDTA, attention between channels, so its cost is linear in H*W),
the gated-Dconv feed-forward network (GDFN), a 3x3 patch embedding and pixel-(un)shuffle resizing.

Submodule names follow the official code so official checkpoints load with ``strict=True``. Every block
takes a ``conv`` factory with the ``nn.Conv2d`` signature; LoRARestormer passes a low-rank-adapted
convolution there instead of duplicating the blocks.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.conv_blocks import channel_layer_norm

ConvFactory = Callable[..., nn.Module]

__all__ = ['BiasFreeLayerNorm', 'WithBiasLayerNorm', 'LayerNorm', 'LAYER_NORM_TYPES', 'transposed_attention',
           'Attention', 'FeedForward', 'TransformerBlock', 'transformer_stage', 'OverlapPatchEmbed', 'Downsample',
           'Upsample', 'ConvFactory', 'check_heads', 'level_dims']

_EPS = 1e-5  # the official variance epsilon


class BiasFreeLayerNorm(nn.Module):
    """Scale-only LayerNorm over channels: ``x / sqrt(var_c(x) + 1e-5) * weight`` (the mean is not removed)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + _EPS) * self.weight[:, None, None]


class WithBiasLayerNorm(nn.Module):
    """Standard LayerNorm over the channels of a ``(B, C, H, W)`` map, with weight and bias."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the fused kernel on an NHWC view is ~2x faster than mean/var over dim 1 on CPU even with the copies
        return channel_layer_norm(x, self.weight, self.bias, _EPS)


LAYER_NORM_TYPES: Dict[str, Type[nn.Module]] = {'BiasFree': BiasFreeLayerNorm, 'WithBias': WithBiasLayerNorm}


class LayerNorm(nn.Module):
    """Channel LayerNorm chosen by name (``LayerNorm_type`` of the official option files); kept as a wrapper
    with a ``body`` child because the official checkpoints name the parameters ``norm1.body.weight``."""

    def __init__(self, dim: int, LayerNorm_type: str) -> None:  # noqa: N803 (official keyword)
        super().__init__()
        if LayerNorm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"LayerNorm_type must be one of {sorted(LAYER_NORM_TYPES)}, got {LayerNorm_type!r}")
        self.body = LAYER_NORM_TYPES[LayerNorm_type](dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module):
    """GDFN: 1x1 expansion to two branches, depth-wise 3x3, ``gelu(a) * b``, 1x1 projection back to ``dim``."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = conv(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = conv(hidden * 2, hidden * 2, kernel_size=3, stride=1, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = conv(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


def transposed_attention(qkv: torch.Tensor, num_heads: int, temperature: torch.Tensor) -> torch.Tensor:
    """MDTA core: ``qkv`` (B, 3C, H, W) -> (B, C, H, W). Per head, softmax over channels of
    ``normalize(q) @ normalize(k)^T * temperature`` (a ``C/heads x C/heads`` map) applied to ``v``."""
    b, c3, h, w = qkv.shape
    c = c3 // 3
    q, k, v = (t.reshape(b, num_heads, c // num_heads, h * w) for t in qkv.chunk(3, dim=1))
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * temperature).softmax(dim=-1)
    return (attn @ v).reshape(b, c, h, w)


class Attention(nn.Module):
    """MDTA: per-head attention between channels (a ``C/heads x C/heads`` map per head) with L2-normalised
    queries and keys and a learned per-head temperature."""

    def __init__(self, dim: int, num_heads: int, bias: bool, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = conv(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = conv(dim * 3, dim * 3, kernel_size=3, stride=1, padding=1, groups=dim * 3, bias=bias)
        self.project_out = conv(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(transposed_attention(self.qkv_dwconv(self.qkv(x)), self.num_heads, self.temperature))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                 LayerNorm_type: str, conv: ConvFactory = nn.Conv2d) -> None:  # noqa: N803
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias, conv)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(num_blocks: int, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                      LayerNorm_type: str, conv: ConvFactory = nn.Conv2d) -> nn.Sequential:  # noqa: N803
    """``num_blocks`` TransformerBlocks in an ``nn.Sequential`` (official keys ``<stage>.<i>.attn...``)."""
    return nn.Sequential(*[TransformerBlock(dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type, conv)
                           for _ in range(num_blocks)])


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from image channels to ``embed_dim`` features (same resolution)."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.proj = conv(in_c, embed_dim, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve H, W and double channels: 3x3 conv to ``n_feat // 2`` then pixel-unshuffle by 2."""

    def __init__(self, n_feat: int, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(n_feat, n_feat // 2, kernel_size=3, stride=1, padding=1, bias=False),
                                  nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double H, W and halve channels: 3x3 conv to ``2 * n_feat`` then pixel-shuffle by 2."""

    def __init__(self, n_feat: int, conv: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(n_feat, n_feat * 2, kernel_size=3, stride=1, padding=1, bias=False),
                                  nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def level_dims(name: str, dim: int, num_blocks: Sequence[int], heads: Sequence[int]) -> List[int]:
    """Channel widths of the four levels of a Restormer-style U-Net (dim, 2dim, 4dim, 8dim), after checking
    that ``num_blocks``/``heads`` have one entry per level and every width divides by its head count."""
    if len(num_blocks) != 4 or len(heads) != 4:
        raise ValueError(f'{name}: num_blocks and heads need 4 entries (one per level), '
                         f'got num_blocks={list(num_blocks)}, heads={list(heads)}')
    dims = [dim * 2 ** level for level in range(4)]
    check_heads(name, dims, heads)
    return dims


def check_heads(name: str, dims: Sequence[int], heads: Sequence[int]) -> None:
    """Raise a ValueError naming the level if a level's channel count is not divisible by its head count."""
    for level, (d, h) in enumerate(zip(dims, heads), start=1):
        if h < 1 or d % h:
            raise ValueError(f'{name}: level {level} has {d} channels, not divisible by heads[{level - 1}]={h}')
