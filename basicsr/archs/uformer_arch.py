"""Uformer: a 5-level U-Net of locally-enhanced window (LeWin) transformer blocks.

Wang et al., "Uformer: A General U-Shaped Transformer for Image Restoration", CVPR 2022, as used in
Xiangtaokong/MiOIR (``basicsr/archs/uformer_arch.py``, class ``Uformer``). Each level runs LeWin blocks
(window attention with a relative position bias, every other block on half-window-shifted windows, and
the LeFF feed-forward: linear, depth-wise 3x3 conv, linear) on ``(B, H*W, C)`` tokens; 4x4 stride-2 convs
go down, 2x2 transposed convs go up, skips are concatenated. Decoder blocks may add a learned
``modulator`` to the tokens of every window.

``img_size`` fixes, per level, the window size and whether windows shift (a level whose training resolution
``img_size / 2**level`` is not larger than ``win_size`` uses one unshifted window of that size), exactly as
the official constructor does; the input itself may be any size whose H and W are multiples of
:attr:`Uformer.size_multiple` (128 for the defaults). The official code also needs H == W; this one
does not, and equals it on square inputs. The official code does not pad, so other sizes raise an error
naming the multiple.

:class:`Uformer_EP` / :class:`Uformer_AP` are MiOIR's prompt-learning variants (official classes of the same
names): five :class:`~basicsr.archs.prompt_blocks.PromptExtractor` nets whose prompts modulate
(``feat * scale + shift + feat``) the bottleneck, the four decoder levels and the output projection.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from basicsr.archs.input_size import require_multiple
from basicsr.archs.prompt_blocks import (ExplicitPrompt, PromptExtractor, add_prompt_linears, modulate,
                                          split_prompt_input)
from basicsr.archs.sr_blocks import (Mlp, RelativePositionBias, drop_path_or_identity, shifted_window_mask,
                                     trunc_normal_init, window_partition, window_reverse, windowed_attention)
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor
Size = Tuple[int, int]

__all__ = ['Uformer', 'Uformer_EP', 'Uformer_AP']

_TOKEN_MLPS = ('leff', 'mlp', 'ffn')


# Tokens (B, H*W, C) and maps (B, C, H, W) are converted as views in channels-last layout: convolutions
# take channels-last input natively and return channels-last output, so no copy is made either way.
def _tokens_to_map(x: Tensor, size: Size) -> Tensor:
    return x.view(x.shape[0], size[0], size[1], x.shape[2]).permute(0, 3, 1, 2)


def _map_to_tokens(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


class LinearProjection(nn.Module):
    """Queries from ``x``, keys and values from ``kv`` (default ``x``; a ``(M, C)`` table is shared by all
    windows). Returns ``q (B', heads, N, d)``, ``k, v (B', heads, M, d)``."""

    def __init__(self, dim: int, heads: int, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_kv = nn.Linear(dim, dim * 2, bias=bias)

    def forward(self, x: Tensor, kv: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        b, n, c = x.shape
        kv = x if kv is None else kv.unsqueeze(0).expand(b, -1, -1)
        q = self.to_q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.to_kv(kv).reshape(b, kv.shape[1], 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v


class SepConv2d(nn.Module):
    """Depth-wise 3x3 conv, ReLU, point-wise 1x1 conv (both with bias)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(torch.relu(self.depthwise(x)))


class ConvProjection(nn.Module):
    """``token_projection='conv'``: queries, keys and values from separable convs over each square window.
    Returns ``(B', heads, N, d)`` each. The official code passes ``qkv_bias`` where the dilation goes, which
    older torch read as dilation 1 and torch 2 rejects; this is the dilation-1 network (equal to the official
    one with that argument fixed)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = SepConv2d(dim, dim)
        self.to_k = SepConv2d(dim, dim)
        self.to_v = SepConv2d(dim, dim)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        b, n, c = x.shape
        side = math.isqrt(n)
        x = x.transpose(1, 2).reshape(b, c, side, side)
        return tuple(proj(x).reshape(b, self.heads, c // self.heads, n).transpose(2, 3)
                     for proj in (self.to_q, self.to_k, self.to_v))


class WindowAttention(RelativePositionBias):
    """Window self-attention with relative position bias on ``(B*nW, N, C)`` window tokens."""

    def __init__(self, dim: int, win_size: Tuple[int, int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 token_projection: str = 'linear') -> None:
        super().__init__(win_size, num_heads)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = (ConvProjection(dim, num_heads) if token_projection == 'conv'
                    else LinearProjection(dim, num_heads, bias=qkv_bias))
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x)
        out = windowed_attention(q, k, v, self.scale, self.position_bias(), mask,
                                 self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class CrossAttention(nn.Module):
    """Attention from the tokens to a learned ``(M, C)`` table (the official ``cross_modulator`` path)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = LinearProjection(dim, num_heads, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, table: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x, table)
        out = windowed_attention(q, k, v, self.scale, None, None, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class LeFF(nn.Module):
    """Locally-enhanced feed-forward: Linear + GELU, depth-wise 3x3 conv + GELU on the token map, Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU())
        self.dwconv = nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim), nn.GELU())
        self.linear2 = nn.Sequential(nn.Linear(hidden_dim, dim))

    def forward(self, x: Tensor, size: Size) -> Tensor:
        return self.linear2(_map_to_tokens(self.dwconv(_tokens_to_map(self.linear1(x), size))))


class LeWinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention and a token MLP / LeFF, each with a residual, on ``(B, H*W, C)``."""

    def __init__(self, dim: int, input_resolution: Size, num_heads: int, win_size: int = 8, shift_size: int = 0,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: Optional[float] = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, token_projection: str = 'linear',
                 token_mlp: str = 'leff', modulator: bool = False, cross_modulator: bool = False) -> None:
        super().__init__()
        table_size = win_size * win_size  # the official tables use the configured window, before any shrinking
        if min(input_resolution) <= win_size:
            win_size, shift_size = min(input_resolution), 0
        if not 0 <= shift_size < win_size:
            raise ValueError(f'shift_size must be in [0, win_size={win_size}), got {shift_size}')
        if modulator and win_size * win_size != table_size:
            raise ValueError(f'Uformer modulator needs windows of the configured size, but a level of training '
                             f'resolution {tuple(input_resolution)} shrinks them to {win_size}; raise img_size')
        self.win_size = win_size
        self.shift_size = shift_size
        self.modulator = nn.Embedding(table_size, dim) if modulator else None
        if cross_modulator:
            self.cross_modulator = nn.Embedding(table_size, dim)
            self.cross_attn = CrossAttention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
            self.norm_cross = nn.LayerNorm(dim)  # in the official checkpoints; its output is never used there
        else:
            self.cross_modulator = None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, (win_size, win_size), num_heads, qkv_bias, qk_scale, attn_drop, drop,
                                    token_projection)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = LeFF(dim, hidden) if token_mlp == 'leff' else Mlp(dim, hidden, drop=drop)

    def forward(self, x: Tensor, size: Size, shift_mask: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, H*W, C)``; ``shift_mask`` the ``(nW, N, N)`` mask of this block's shifted windows."""
        (h, w), (b, _, c) = size, x.shape
        win, shift = self.win_size, self.shift_size
        if self.cross_modulator is not None:
            x = x + self.cross_attn(x, self.cross_modulator.weight)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, win).reshape(-1, win * win, c)
        if self.modulator is not None:
            windows = windows + self.modulator.weight
        windows = self.attn(windows, mask=shift_mask if shift else None)
        x = window_reverse(windows.view(-1, win, win, c), win, h, w)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        normed = self.norm2(x)
        return x + self.drop_path(self.mlp(normed, size) if isinstance(self.mlp, LeFF) else self.mlp(normed))


class UformerStage(nn.Module):
    """``depth`` LeWin blocks at one resolution, alternating unshifted / shifted windows when ``shift_flag``."""

    def __init__(self, dim: int, input_resolution: Size, depth: int, num_heads: int, win_size: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: Optional[float], drop: float, attn_drop: float,
                 drop_path: Sequence[float], use_checkpoint: bool, token_projection: str, token_mlp: str,
                 shift_flag: bool, modulator: bool = False, cross_modulator: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            LeWinTransformerBlock(dim, input_resolution, num_heads, win_size,
                                  win_size // 2 if shift_flag and i % 2 else 0, mlp_ratio, qkv_bias, qk_scale, drop,
                                  attn_drop, drop_path[i], token_projection, token_mlp, modulator, cross_modulator)
            for i in range(depth))

    def forward(self, x: Tensor, size: Size) -> Tensor:
        shifted = [blk for blk in self.blocks if blk.shift_size]
        # every shifted block of a stage has the same window and shift: build their mask once
        mask = (shifted_window_mask(*size, shifted[0].win_size, shifted[0].shift_size, x.device, x.dtype)
                if shifted else None)
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(blk, x, size, mask, use_reentrant=False)
            else:
                x = blk(x, size, mask)
        return x


class TokenDownsample(nn.Module):
    """4x4 stride-2 conv on the token map: ``(B, H*W, C_in)`` -> ``(B, H/2*W/2, C_out)``."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channel, out_channel, kernel_size=4, stride=2, padding=1))

    def forward(self, x: Tensor, size: Size) -> Tensor:
        return _map_to_tokens(self.conv(_tokens_to_map(x, size)))


class TokenUpsample(nn.Module):
    """2x2 stride-2 transposed conv on the token map: ``(B, H*W, C_in)`` -> ``(B, 2H*2W, C_out)``."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.deconv = nn.Sequential(nn.ConvTranspose2d(in_channel, out_channel, kernel_size=2, stride=2))

    def forward(self, x: Tensor, size: Size) -> Tensor:
        return _map_to_tokens(self.deconv(_tokens_to_map(x, size)))


class InputProj(nn.Module):
    """3x3 conv + LeakyReLU(0.01), image ``(B, C, H, W)`` to tokens ``(B, H*W, out_channel)``."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1), nn.LeakyReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return _map_to_tokens(self.proj(x))


class OutputProj(nn.Module):
    """3x3 conv from tokens ``(B, H*W, in_channel)`` to an image ``(B, out_channel, H, W)``."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1))

    def forward(self, x: Tensor, size: Size) -> Tensor:
        return self.proj(_tokens_to_map(x, size))


def _slice(rates: List[float], start: int, depth: int, where: str) -> List[float]:
    part = rates[start:start + depth]
    if len(part) < depth:
        raise ValueError(f'Uformer takes the stochastic-depth rates of {where} from the encoder schedule, which has '
                         f'only {len(rates)} entries (sum of depths[0:4]); the decoder depths must not exceed the '
                         f'encoder depths')
    return part


@ARCH_REGISTRY.register()
class Uformer(nn.Module):
    """Uformer. Input ``(B, dd_in, H, W)``, output ``(B, in_chans, H, W)`` (plus the input when ``dd_in == 3``);
    H and W multiples of :attr:`size_multiple`.

    Args (official names and defaults): img_size=256 (training resolution, sets windows/shifts per level),
    in_chans=3 (output channels), dd_in=3 (input channels), embed_dim=32, depths (9: 4 encoder levels,
    bottleneck, 4 decoder levels), num_heads (9), win_size=8, mlp_ratio=4, qkv_bias, qk_scale, drop_rate,
    attn_drop_rate, drop_path_rate=0.1, patch_norm (unused by the official network, accepted), use_checkpoint,
    token_projection='linear' ('conv': separable-conv q/k/v), token_mlp='leff' ('mlp'/'ffn': plain MLP),
    shift_flag=True,
    modulator=False, cross_modulator=False. ``upscale`` is accepted and ignored (MiOIR option files pass it).
    """

    def __init__(self, img_size: int = 256, in_chans: int = 3, dd_in: int = 3, embed_dim: int = 32,
                 depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2, 2, 2),
                 num_heads: Sequence[int] = (1, 2, 4, 8, 16, 16, 8, 4, 2), win_size: int = 8,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 patch_norm: bool = True, use_checkpoint: bool = False, token_projection: str = 'linear',
                 token_mlp: str = 'leff', shift_flag: bool = True, modulator: bool = False,
                 cross_modulator: bool = False, upscale: int = 1) -> None:
        super().__init__()
        if len(depths) != 9 or len(num_heads) != 9:
            raise ValueError(f'Uformer needs 9 depths and 9 num_heads (4 encoder levels, bottleneck, 4 decoder '
                             f'levels), got {list(depths)} and {list(num_heads)}')
        if token_projection not in ('linear', 'conv'):
            raise ValueError(f"Uformer token_projection must be 'linear' or 'conv', got {token_projection!r}")
        if token_mlp not in _TOKEN_MLPS:
            raise ValueError(f'Uformer token_mlp must be one of {list(_TOKEN_MLPS)}, got {token_mlp!r}')
        # level l of the U runs at img_size / 2**l with embed_dim * 2**l channels (decoder: twice that, after concat)
        enc_dims = [embed_dim * 2 ** level for level in range(5)]
        stage_dims = enc_dims + [enc_dims[4], enc_dims[3], enc_dims[2], enc_dims[1]]
        bad = [(d, h) for d, h in zip(stage_dims, num_heads) if d % h]
        if bad:
            raise ValueError(f'Uformer stage channels must be divisible by their num_heads; (channels, heads) '
                             f'that are not: {bad}')
        self.build_prompt(stage_dims, in_chans)
        self.dd_in = dd_in
        self.pos_drop = nn.Dropout(drop_rate)
        enc_rates = torch.linspace(0, drop_path_rate, sum(depths[:4]), device='cpu').tolist()
        dec_rates = enc_rates[::-1]

        def stage(i: int, level: int, rates: Sequence[float], decoder: bool) -> UformerStage:
            res = (img_size // 2 ** level, img_size // 2 ** level)
            return UformerStage(stage_dims[i], res, depths[i], num_heads[i], win_size, mlp_ratio, qkv_bias,
                                qk_scale, drop_rate, attn_drop_rate, rates, use_checkpoint, token_projection,
                                token_mlp, shift_flag,
                                modulator and decoder, cross_modulator and decoder)

        self.input_proj = InputProj(dd_in, embed_dim)
        self.output_proj = OutputProj(2 * embed_dim, in_chans)
        for level in range(4):
            rates = _slice(enc_rates, sum(depths[:level]), depths[level], f'encoder level {level}')
            setattr(self, f'encoderlayer_{level}', stage(level, level, rates, False))
            setattr(self, f'dowsample_{level}', TokenDownsample(enc_dims[level], enc_dims[level + 1]))  # official typo
        self.conv = stage(4, 4, [drop_path_rate] * depths[4], False)
        for j in range(4):
            level = 3 - j
            up_in = enc_dims[4] if j == 0 else 2 * enc_dims[level + 1]
            setattr(self, f'upsample_{j}', TokenUpsample(up_in, enc_dims[level]))
            rates = _slice(dec_rates, sum(depths[5:5 + j]), depths[5 + j], f'decoder level {level}')
            setattr(self, f'decoderlayer_{j}', stage(5 + j, level, rates, True))
        self.apply(trunc_normal_init)
        self.size_multiple = self._size_multiple()

    def _size_multiple(self) -> int:
        """H, W must halve 4 times and, at every level, split into that level's windows."""
        multiple = 16
        for level, name in enumerate(['encoderlayer_0', 'encoderlayer_1', 'encoderlayer_2', 'encoderlayer_3', 'conv']):
            for blk in getattr(self, name).blocks:
                multiple = math.lcm(multiple, blk.win_size * 2 ** level)
        return multiple

    def build_prompt(self, stage_dims: Sequence[int], out_channels: int) -> None:
        """Create the prompt modules, first in the official state-dict order (none for plain Uformer)."""

    def site(self, key: str, feat: Tensor, prompts: Any, size: Optional[Size] = None) -> Tensor:
        """Modulation site ``key`` (tokens of resolution ``size``, or a map); identity for plain Uformer."""
        return feat

    def forward_image(self, x: Tensor, prompts: Any = None) -> Tensor:
        """The network on an image ``(B, dd_in, H, W)``; ``prompts`` reach :meth:`site` (prompt variants)."""
        require_multiple(x, self.size_multiple, type(self).__name__)
        sizes = [(x.shape[2] // 2 ** level, x.shape[3] // 2 ** level) for level in range(5)]
        y = self.pos_drop(self.input_proj(x))
        skips = []
        for level in range(4):
            y = getattr(self, f'encoderlayer_{level}')(y, sizes[level])
            skips.append(y)
            y = getattr(self, f'dowsample_{level}')(y, sizes[level])
        y = self.site('0', self.conv(y, sizes[4]), prompts, sizes[4])
        for j in range(4):
            level = 3 - j
            y = getattr(self, f'upsample_{j}')(y, sizes[level + 1])
            y = getattr(self, f'decoderlayer_{j}')(torch.cat([y, skips[level]], -1), sizes[level])
            y = self.site(str(j + 1), y, prompts, sizes[level])
        y = self.site('5', self.output_proj(y, sizes[0]), prompts)
        return x + y if self.dd_in == 3 else y

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_image(x)


# prompt extractor (index into the five prompts) feeding each modulation site: the bottleneck ('0') and the
# first decoder level ('1') share the first extractor, as in the official code
_SITE_PROMPT = {'0': 0, '1': 0, '2': 1, '3': 2, '4': 3, '5': 4}


class _UformerPrompt(Uformer):
    """MiOIR Uformer with prompt learning (official ``Uformer_EP`` / ``Uformer_AP``; same keyword arguments as
    :class:`Uformer`).

    Five :class:`PromptExtractor` nets (``F_ext_net1..5``) read the same prompt; their 64-d prompts (``(B, h, w,
    64)`` maps after TLC conversion) modulate the bottleneck output (site 0, extractor 1), the decoder outputs
    (sites 1-4, extractors 1-4) and the output projection before the input residual (site 5, extractor 5).
    ``forward(x, task=None)``: ``x`` is the official ``[lq, prompt]`` or the image alone (see
    :func:`basicsr.archs.prompt_blocks.split_prompt_input`). Output ``(B, in_chans, H, W)``. The official
    output site has 3 channels whatever ``in_chans``; here it has ``in_chans`` (the same for RGB).
    """

    explicit_prompt = False

    def build_prompt(self, stage_dims: Sequence[int], out_channels: int) -> None:
        for i in range(1, 6):
            setattr(self, f'F_ext_net{i}', PromptExtractor(1 if self.explicit_prompt else 3))
        # bottleneck, decoder levels 0..3, output projection
        channels = [stage_dims[4], *stage_dims[5:9], out_channels]
        add_prompt_linears(self, [(str(k), c) for k, c in enumerate(channels)])

    def site(self, key: str, feat: Tensor, prompts: Any, size: Optional[Size] = None) -> Tensor:
        return modulate(self, key, feat, prompts[_SITE_PROMPT[key]], size)

    def forward(self, x: Any, task: Optional[Any] = None) -> Tensor:
        image, prompt = split_prompt_input(x, task, self.explicit_prompt, type(self).__name__)
        prompts = [getattr(self, f'F_ext_net{i}')(prompt) for i in range(1, 6)]
        return self.forward_image(image, prompts)


@ARCH_REGISTRY.register()
class Uformer_EP(ExplicitPrompt, _UformerPrompt):  # noqa: N801 (official name)
    """MiOIR Uformer with an explicit prompt: the task's fixed 128x128 map, ``[lq, map]`` or ``task=ids``."""


@ARCH_REGISTRY.register()
class Uformer_AP(_UformerPrompt):  # noqa: N801 (official name)
    """MiOIR Uformer with an adaptive prompt: the extractor reads the degraded image itself."""
