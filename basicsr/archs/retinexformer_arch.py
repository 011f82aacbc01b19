"""RetinexFormer: illumination-guided transformer for low-light enhancement (one or more Retinex stages).

Cai et al., "Retinexformer: One-stage Retinex-based Transformer for Low-light Image Enhancement", ICCV 2023
(official code: caiyuanhao1998/Retinexformer ``basicsr/models/archs/RetinexFormer_arch.py``; mrluin/UniRestorer
uses a copy with ``n_feat=40, stage=1, num_blocks=[1, 2, 2]`` as its low-light expert).

A stage estimates an illumination feature and a 3-channel light-up map from the image and its channel mean,
lights the image up (``x * map + x``) and restores it with a 2-level U-Net of illumination-guided attention
blocks (IGAB: channel-wise "transposed" attention whose values are modulated by the illumination feature).
The official class needs H and W divisible by 4 (two stride-2 4x4 convs, 2x2 transposed convs); this one
reflect-pads to a multiple of 4 and crops, so any size works and sizes the official accepts are unchanged.
Stages are chained (each restores the previous one's output), as in caiyuanhao1998's class; UniRestorer's
copy only runs ``stage=1``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.input_size import pad_to_multiple
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['RetinexFormer']

Tensor = torch.Tensor


class IlluminationEstimator(nn.Module):
    """``(B, 3, H, W)`` -> illumination feature ``(B, n_feat, H, W)`` and light-up map ``(B, 3, H, W)``."""

    def __init__(self, n_feat: int, n_in: int = 4, n_out: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_feat, kernel_size=1, bias=True)
        self.depth_conv = nn.Conv2d(n_feat, n_feat, kernel_size=5, padding=2, bias=True, groups=n_in)
        self.conv2 = nn.Conv2d(n_feat, n_out, kernel_size=1, bias=True)

    def forward(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        fea = self.depth_conv(self.conv1(torch.cat([img, img.mean(dim=1, keepdim=True)], dim=1)))
        return fea, self.conv2(fea)


class IGMSA(nn.Module):
    """Illumination-guided multi-head self-attention across channels (official ``IG_MSA``).

    Tokens are pixels; attention is between the ``dim_head`` channels of each head (L2-normalised along the
    pixels, learned temperature ``rescale``); values are multiplied by the illumination feature. A depthwise
    positional branch on the values is added. Input and output ``(B, H, W, dim)``.
    """

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_k = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_v = nn.Linear(dim, dim_head * heads, bias=False)
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(dim_head * heads, dim, bias=True)
        self.pos_emb = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim), nn.GELU(),
                                     nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim))

    def _heads(self, t: Tensor) -> Tensor:
        """``(B, N, heads*d)`` -> ``(B, heads, d, N)``."""
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, -1).permute(0, 2, 3, 1)

    def forward(self, x_in: Tensor, illu: Tensor) -> Tensor:
        b, h, w, c = x_in.shape
        x = x_in.reshape(b, h * w, c)
        v_inp = self.to_v(x)
        q, k = self._heads(self.to_q(x)), self._heads(self.to_k(x))
        v = self._heads(v_inp) * self._heads(illu.flatten(1, 2))
        q, k = F.normalize(q, dim=-1, p=2), F.normalize(k, dim=-1, p=2)
        attn = ((k @ q.transpose(-2, -1)) * self.rescale).softmax(dim=-1)
        out = (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, self.num_heads * self.dim_head)
        out_c = self.proj(out).view(b, h, w, c)
        out_p = self.pos_emb(v_inp.reshape(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return out_c + out_p


class FeedForward(nn.Module):
    """1x1 conv - GELU - depthwise 3x3 - GELU - 1x1 conv on ``(B, H, W, dim)``."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(dim, dim * mult, 1, 1, bias=False), nn.GELU(),
                                 nn.Conv2d(dim * mult, dim * mult, 3, 1, 1, bias=False, groups=dim * mult),
                                 nn.GELU(), nn.Conv2d(dim * mult, dim, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)


class PreNorm(nn.Module):
    """LayerNorm over channels, then ``fn`` (state-dict names ``fn``, ``norm`` as officially)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class IGAB(nn.Module):
    """``num_blocks`` x (residual IG-MSA, residual pre-normed feed-forward) on ``(B, dim, H, W)``."""

    def __init__(self, dim: int, dim_head: int, heads: int, num_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.ModuleList([IGMSA(dim, dim_head, heads), PreNorm(dim, FeedForward(dim))])
                                     for _ in range(num_blocks)])

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        x, illu = x.permute(0, 2, 3, 1), illu.permute(0, 2, 3, 1)
        for attn, ff in self.blocks:
            x = attn(x, illu) + x
            x = ff(x) + x
        return x.permute(0, 3, 1, 2)


class Denoiser(nn.Module):
    """Illumination-guided U-Net with ``level`` down / up steps; output = mapped features + input."""

    def __init__(self, in_dim: int, out_dim: int, dim: int, level: int, num_blocks: Sequence[int]) -> None:
        super().__init__()
        self.level = level
        self.embedding = nn.Conv2d(in_dim, dim, 3, 1, 1, bias=False)
        self.encoder_layers = nn.ModuleList()
        d = dim
        for i in range(level):
            self.encoder_layers.append(nn.ModuleList([
                IGAB(d, dim_head=dim, heads=d // dim, num_blocks=num_blocks[i]),
                nn.Conv2d(d, d * 2, 4, 2, 1, bias=False),  # features
                nn.Conv2d(d, d * 2, 4, 2, 1, bias=False),  # illumination
            ]))
            d *= 2
        self.bottleneck = IGAB(d, dim_head=dim, heads=d // dim, num_blocks=num_blocks[-1])
        self.decoder_layers = nn.ModuleList()
        for i in range(level):
            self.decoder_layers.append(nn.ModuleList([
                nn.ConvTranspose2d(d, d // 2, stride=2, kernel_size=2, padding=0, output_padding=0),
                nn.Conv2d(d, d // 2, 1, 1, bias=False),
                IGAB(d // 2, dim_head=dim, heads=(d // 2) // dim, num_blocks=num_blocks[level - 1 - i]),
            ]))
            d //= 2
        self.mapping = nn.Conv2d(dim, out_dim, 3, 1, 1, bias=False)
        for m in self.modules():  # official init: linears truncated-normal(0.02), zero bias; unit LayerNorms
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        fea = self.embedding(x)
        skips = []
        for igab, down, illu_down in self.encoder_layers:
            fea = igab(fea, illu)
            skips.append((fea, illu))
            fea, illu = down(fea), illu_down(illu)
        fea = self.bottleneck(fea, illu)
        for (up, fuse, igab), (skip, skip_illu) in zip(self.decoder_layers, reversed(skips)):
            fea = igab(fuse(torch.cat([up(fea), skip], dim=1)), skip_illu)
        return self.mapping(fea) + x


class RetinexStage(nn.Module):
    """One stage: estimate illumination, light the image up, restore it (official single stage)."""

    def __init__(self, in_channels: int, out_channels: int, n_feat: int, level: int,
                 num_blocks: Sequence[int]) -> None:
        super().__init__()
        self.estimator = IlluminationEstimator(n_feat)
        self.denoiser = Denoiser(in_channels, out_channels, n_feat, level, num_blocks)

    def forward(self, img: Tensor) -> Tensor:
        illu_fea, illu_map = self.estimator(img)
        return self.denoiser(img * illu_map + img, illu_fea)


@ARCH_REGISTRY.register()
class RetinexFormer(nn.Module):
    """RetinexFormer (defaults: the official class's; UniRestorer: ``n_feat=40, stage=1, num_blocks=[1,2,2]``).

    Args:
        in_channels, out_channels: image channels (3; the estimator reads RGB plus its mean).
        n_feat: channels of the first level (a multiple of 4: grouped conv of the estimator); level ``l`` has
            ``n_feat * 2**l`` channels and ``2**l`` heads of ``n_feat`` channels.
        stage: chained Retinex stages.
        num_blocks: IGAB blocks of level 1, level 2 and the bottleneck (the decoder mirrors the encoder).
    Input ``(B, 3, H, W)`` in [0, 1], any H, W >= 3 (reflect-padded to a multiple of 4 inside and cropped
    back); output the enhanced image, same shape.
    """

    size_multiple = 4  # two stride-2 downsamplings

    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_feat: int = 31, stage: int = 3,
                 num_blocks: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        if n_feat % 4:
            raise ValueError(f'RetinexFormer: n_feat must be a multiple of 4 (the illumination estimator groups '
                             f'its depthwise conv by the 4 input channels), got n_feat={n_feat}')
        if len(num_blocks) != 3 or stage < 1:
            raise ValueError(f'RetinexFormer: num_blocks needs 3 entries (level 1, level 2, bottleneck) and '
                             f'stage >= 1, got num_blocks={list(num_blocks)}, stage={stage}')
        if in_channels != 3:
            raise ValueError(f'RetinexFormer: the illumination estimator reads RGB + its mean, so in_channels '
                             f'must be 3, got {in_channels}')
        self.body = nn.Sequential(*[RetinexStage(in_channels, out_channels, n_feat, 2, num_blocks)
                                    for _ in range(stage)])

    def forward(self, x: Tensor) -> Tensor:
        padded, (h, w) = pad_to_multiple(x, self.size_multiple, 'RetinexFormer')
        return self.body(padded)[:, :, :h, :w]
