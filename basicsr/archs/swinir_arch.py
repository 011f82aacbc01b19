"""SwinIR: residual groups of shifted-window transformer blocks between a conv head and a reconstruction tail.

Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021 (official code as packaged in
XPixelGroup/BasicSR ``basicsr/archs/swinir_arch.py``; Xiangtaokong/MiOIR's copy is the same network on
every path its configurations use). One class covers classical SR (``upsampler='pixelshuffle'``),
lightweight SR (``'pixelshuffledirect'``), real-world SR (``'nearest+conv'``, x4) and same-size restoration
(``upscale=1`` with ``'pixelshuffle'`` as MiOIR trains it, or ``upsampler=''`` with a global residual).

:class:`SwinIR_EP` / :class:`SwinIR_AP` are MiOIR's prompt-learning variants (official classes of the same
names in Xiangtaokong/MiOIR): a :class:`~basicsr.archs.prompt_blocks.PromptExtractor` (``F_ext_net``) and a
FiLM-style modulation (``feat * scale + shift + feat``) at the end of every residual group, after the body,
after ``conv_before_upsample`` and on the image-space output of ``conv_last``.

The shifted-window attention masks for ``img_size`` are buffers (``attn_mask``) as in the official code,
so official checkpoints load with ``strict=True``; other input sizes get their mask computed on the fly.
H and W must be multiples of the window size (the official code does not pad inside the network).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from basicsr.archs.input_size import require_multiple
from basicsr.archs.prompt_blocks import (ExplicitPrompt, PromptExtractor, add_prompt_linears, modulate,
                                          split_prompt_input)
from basicsr.archs.sr_blocks import (Mlp, RelativePositionBias, Upsample, UpsampleOneStep, drop_path_or_identity,
                                     shifted_window_mask, trunc_normal_init, window_partition, window_reverse,
                                     windowed_attention)
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor

__all__ = ['SwinIR', 'SwinIR_EP', 'SwinIR_AP']

_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean subtracted from RGB inputs (official constant)
_UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', 'nearest+conv', '')


class WindowAttention(RelativePositionBias):
    """Multi-head self-attention inside ``window_size`` windows with a relative position bias.

    Input ``(B*nW, N, C)`` tokens of each window, optional ``(nW, N, N)`` shift mask; output the same shape.
    """

    def __init__(self, dim: int, window_size: Tuple[int, int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__(window_size, num_heads)
        self.dim = dim
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = windowed_attention(q, k, v, self.scale, self.position_bias(), mask,
                                 self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual, on ``(B, H*W, C)`` tokens.

    Odd blocks of a group shift the windows by half a window. When ``input_resolution`` is not larger than
    the window, the window shrinks to the resolution and no shift is used (as the official code does).
    """

    def __init__(self, dim: int, input_resolution: Tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:
            window_size, shift_size = min(self.input_resolution), 0
        if not 0 <= shift_size < window_size:
            raise ValueError(f'shift_size must be in [0, window_size={window_size}), got {shift_size}')
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, (window_size, window_size), num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        mask = shifted_window_mask(*self.input_resolution, window_size, shift_size) if shift_size > 0 else None
        self.register_buffer('attn_mask', mask)

    def _mask_for(self, x_size: Tuple[int, int], ref: Tensor) -> Optional[Tensor]:
        if self.shift_size == 0:
            return None
        if tuple(x_size) == self.input_resolution:
            return self.attn_mask
        return shifted_window_mask(*x_size, self.window_size, self.shift_size, device=ref.device, dtype=ref.dtype)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        win, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, win).reshape(-1, win * win, c)
        windows = self.attn(windows, mask=self._mask_for(x_size, x))
        x = window_reverse(windows.view(-1, win, win, c), win, h, w)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """``depth`` Swin blocks alternating plain and shifted windows (checkpoint names ``blocks.<i>``)."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: Optional[float], drop: float, attn_drop: float,
                 drop_path: Sequence[float], use_checkpoint: bool) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, qkv_bias, qk_scale, drop, attn_drop, drop_path[i])
            for i in range(depth))

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(blk, x, x_size, use_reentrant=False)
            else:
                x = blk(x, x_size)
        return x


def _residual_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing a residual group / the body: one 3x3 conv, or the cheaper 3x3-1x1-3x3 bottleneck."""
    if kind == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == '3conv':
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {kind!r}")


def _conv_lrelu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.LeakyReLU(inplace=True))


def _to_tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)


def _to_map(x: Tensor, x_size: Tuple[int, int]) -> Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *x_size)  # (B, H*W, C) -> (B, C, H, W)


class RSTB(nn.Module):
    """Residual Swin Transformer Block: a :class:`SwinStage`, a conv on the re-assembled map, a residual.

    In the MiOIR prompt variants each RSTB also owns the ``prompt_scale`` / ``prompt_shift`` Linears of the
    modulation that follows it (the official ``RSTB_P``); :class:`SwinIR` applies it.
    """

    def __init__(self, dim: int, input_resolution: Tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: Optional[float], drop: float, attn_drop: float,
                 drop_path: Sequence[float], use_checkpoint: bool, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = SwinStage(dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                                        qk_scale, drop, attn_drop, drop_path, use_checkpoint)
        self.conv = _residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        return _to_tokens(self.conv(_to_map(self.residual_group(x, x_size), x_size))) + x


class PatchEmbed(nn.Module):
    """Feature map to tokens (patch size 1), with the optional LayerNorm ``norm``."""

    def __init__(self, embed_dim: int, patch_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = _to_tokens(x)
        return self.norm(x) if self.norm is not None else x


def _pair(v: Union[int, Sequence[int]]) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@ARCH_REGISTRY.register()
class SwinIR(nn.Module):
    """SwinIR for super-resolution (``upscale`` 2/3/4/8) and same-size restoration (``upscale=1``).

    Input ``(B, in_chans, H, W)`` in ``[0, img_range]``-compatible range (the DIV2K RGB mean is subtracted for
    3 channels); output ``(B, in_chans, H*upscale, W*upscale)``. H and W must be multiples of the window size.

    Args (official names and defaults; ``img_size`` only fixes the stored shift masks, not the input size):
        img_size: training patch size (int or (H, W)); patch_size: token patch size (only scales img_size).
        in_chans: image channels (in and out). embed_dim: token channels. depths / num_heads: per residual group.
        window_size: attention window. mlp_ratio: MLP hidden / embed_dim. qkv_bias, qk_scale: attention.
        drop_rate, attn_drop_rate, drop_path_rate: dropout / stochastic depth (linear over all blocks).
        ape: learned absolute position embedding. patch_norm: LayerNorm after the patch embedding.
        use_checkpoint: gradient checkpointing of each block in training.
        upscale: scale factor. img_range: multiply the mean-subtracted input by this (1 or 255).
        upsampler: 'pixelshuffle' | 'pixelshuffledirect' | 'nearest+conv' (x4 only) | '' (same size).
        resi_connection: '1conv' | '3conv' conv closing each residual group and the body.
    """

    def __init__(self, img_size: Union[int, Sequence[int]] = 64, patch_size: Union[int, Sequence[int]] = 1,
                 in_chans: int = 3, embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, ape: bool = False, patch_norm: bool = True,
                 use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1.0,
                 upsampler: Optional[str] = '', resi_connection: str = '1conv') -> None:
        super().__init__()
        upsampler = upsampler or ''
        if upsampler not in _UPSAMPLERS:
            raise ValueError(f'SwinIR upsampler must be one of {list(_UPSAMPLERS)}, got {upsampler!r}')
        if upsampler == 'nearest+conv' and upscale != 4:
            raise ValueError(f"SwinIR upsampler 'nearest+conv' supports upscale=4 only, got {upscale}")
        if len(depths) != len(num_heads):
            raise ValueError(f'SwinIR depths and num_heads need one entry per residual group, got '
                             f'{list(depths)} and {list(num_heads)}')
        bad = [h for h in num_heads if embed_dim % h]
        if bad:
            raise ValueError(f'SwinIR embed_dim={embed_dim} must be divisible by every num_heads entry, got {bad}')
        num_feat = 64
        self.build_prompt_extractor(upsampler)
        self.img_range = img_range
        self.upscale = upscale
        self.upsampler = upsampler
        self.ape = ape
        mean = torch.tensor(_RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer('mean', mean, persistent=False)  # not in the official state dict

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        img_h, img_w = _pair(img_size)
        patch_h, patch_w = _pair(patch_size)
        resolution = (img_h // patch_h, img_w // patch_w)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=.02)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()  # meta-device safe
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            RSTB(embed_dim, resolution, d, heads, window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                 attn_drop_rate, rates[s:s + d], use_checkpoint, resi_connection)
            for d, heads, s in zip(depths, num_heads, starts))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _residual_conv(embed_dim, resi_connection)
        self.build_prompt_sites(embed_dim, num_feat, in_chans)

        if upsampler == 'pixelshuffle':
            self.conv_before_upsample = _conv_lrelu(embed_dim, num_feat)
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == 'pixelshuffledirect':
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)
        elif upsampler == 'nearest+conv':
            self.conv_before_upsample = _conv_lrelu(embed_dim, num_feat)
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(trunc_normal_init)
        first = self.layers[0].residual_group.blocks[0] if depths and depths[0] else None
        self.size_multiple = first.window_size if first is not None else 1

    def build_prompt_extractor(self, upsampler: str) -> None:
        """Create the prompt extractor, first in the official state-dict order (none for plain SwinIR)."""

    def build_prompt_sites(self, embed_dim: int, num_feat: int, out_channels: int) -> None:
        """Create the modulation Linears, after ``conv_after_body`` in the official order (none for plain SwinIR)."""

    def site(self, owner: nn.Module, key: str, feat: Tensor, prompt: Any,
             hw: Optional[Tuple[int, int]] = None) -> Tensor:
        """Modulation site ``key`` of ``owner`` (tokens when ``hw`` is given); identity for plain SwinIR."""
        return feat

    def forward_features(self, x: Tensor, prompt: Any = None) -> Tensor:
        """Deep features ``(B, embed_dim, H, W)`` of the shallow features ``x`` (same shape)."""
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for layer in self.layers:
            x = self.site(layer, '', layer(x, x_size), prompt, x_size)
        return _to_map(self.norm(x), x_size)

    def forward_image(self, x: Tensor, prompt: Any = None) -> Tensor:
        """The network on an image ``(B, in_chans, H, W)``; ``prompt`` reaches :meth:`site` (prompt variants)."""
        require_multiple(x, self.size_multiple, f'{type(self).__name__} (window_size {self.size_multiple})')
        mean = self.mean.type_as(x)
        x = (x - mean) * self.img_range
        if self.upsampler == '':
            feat = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(feat)) + feat)
        else:
            feat = self.conv_first(x)
            feat = self.conv_after_body(self.forward_features(feat, prompt)) + feat
            if self.upsampler == 'pixelshuffle':
                feat = self.site(self, '_after_body', feat, prompt)
                feat = self.site(self, '_before_upsample', self.conv_before_upsample(feat), prompt)
                x = self.site(self, '_last', self.conv_last(self.upsample(feat)), prompt)
            elif self.upsampler == 'pixelshuffledirect':
                x = self.upsample(feat)
            else:
                feat = self.conv_before_upsample(feat)
                feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
                feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
                x = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return x / self.img_range + mean

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_image(x)


class _SwinIRPrompt(SwinIR):
    """MiOIR SwinIR with prompt learning (official ``SwinIR_EP`` / ``SwinIR_AP``; same keyword arguments as
    :class:`SwinIR`, ``upsampler='pixelshuffle'`` only: the official prompt sites exist on that path alone).

    One :class:`PromptExtractor` (``F_ext_net``) gives a 64-d prompt (a ``(B, h, w, 64)`` map after TLC
    conversion) that modulates every residual group's output tokens (``layers.<i>.prompt_*``), the body output
    (``prompt_*_after_body``), ``conv_before_upsample`` (``prompt_*_before_upsample``) and the ``conv_last``
    output (``prompt_*_last``) before the mean is added back.
    ``forward(x, task=None)``: ``x`` is the official ``[lq, prompt]`` or the image alone (see
    :func:`basicsr.archs.prompt_blocks.split_prompt_input`). Output ``(B, in_chans, H*upscale, W*upscale)``.
    The official code fixes the body and output sites at 180 and 3 channels (it runs only with
    ``embed_dim=180``, ``in_chans=3``); here they follow ``embed_dim`` and ``in_chans``.
    """

    explicit_prompt = False

    def build_prompt_extractor(self, upsampler: str) -> None:
        if upsampler != 'pixelshuffle':
            raise ValueError(f"{type(self).__name__} supports upsampler='pixelshuffle' only (MiOIR's prompt sites "
                             f"surround conv_before_upsample and conv_last), got {upsampler!r}")
        self.F_ext_net = PromptExtractor(1 if self.explicit_prompt else 3)

    def build_prompt_sites(self, embed_dim: int, num_feat: int, out_channels: int) -> None:
        for layer in self.layers:
            add_prompt_linears(layer, [('', embed_dim)])
        # official order: scale and shift of one site before the next site
        for key, channels in (('_after_body', embed_dim), ('_before_upsample', num_feat), ('_last', out_channels)):
            add_prompt_linears(self, [(key, channels)])

    def site(self, owner: nn.Module, key: str, feat: Tensor, prompt: Any,
             hw: Optional[Tuple[int, int]] = None) -> Tensor:
        return modulate(owner, key, feat, prompt, hw)

    def forward(self, x: Any, task: Optional[Any] = None) -> Tensor:
        image, prompt = split_prompt_input(x, task, self.explicit_prompt, type(self).__name__)
        return self.forward_image(image, self.F_ext_net(prompt))


@ARCH_REGISTRY.register()
class SwinIR_EP(ExplicitPrompt, _SwinIRPrompt):  # noqa: N801 (official name)
    """MiOIR SwinIR with an explicit prompt: the task's fixed 128x128 map, ``[lq, map]`` or ``task=ids``."""


@ARCH_REGISTRY.register()
class SwinIR_AP(_SwinIRPrompt):  # noqa: N801 (official name)
    """MiOIR SwinIR with an adaptive prompt: the extractor reads the degraded image itself."""
