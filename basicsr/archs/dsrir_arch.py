"""DSRIR: three-stage all-in-one restoration with uncertainty-supervised attention between the stages.

Official code: xfwang23/DSRIR ``model/DSRIR.py``. A 3x3 embedding is split into three feature groups, one
per stage: stage 1 is a 3-level U-Net, stage 2 a 2-level U-Net, stage 3 four groups of blocks at full
resolution. Every block is a residual conv pair followed by *patch attention* (one sigmoid gate per cell
of a coarse ``p x p`` grid, per channel). After each stage a pixel-wise refine unit (PRU) and an
uncertainty-supervised attention unit (USAU) produce that stage's image and log-variance map, and the
features passed on are re-weighted by an attention map computed from the variance branch.

Returns a :class:`~basicsr.archs.outputs.NamedOutputs` in the official order
``(stage:3, stage:2, stage:1, var:3, var:2, var:1)`` (the official ``[img3, img2, img1], [var3, var2,
var1]`` flattened); ``pred`` is ``stage:3``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from basicsr.archs.input_size import require_multiple
from basicsr.archs.outputs import NamedOutputs
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['PatchAttention', 'PAB', 'PRU', 'PAG', 'USAU', 'PABUNet', 'DSRIR']

PatchGrid = Tuple[int, int]

# fixed by the official constructor: blocks per level and patch-attention grids per level
SN1_BLOCKS, SN1_GRIDS = (2, 2, 2), ((8, 8), (4, 4), (2, 2))
SN2_BLOCKS, SN2_GRIDS = (2, 4), ((4, 4), (2, 2))
SN3_GROUPS, SN3_GRIDS = 4, ((8, 8), (4, 4), (2, 2), (1, 1))


def _conv(cin: int, cout: int, kernel_size: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias)


def _gate(channels: int, reduction: int, kernel_size: int) -> nn.Sequential:
    """Squeeze-excite style gate: conv to ``channels // reduction``, ReLU, conv back, sigmoid."""
    return nn.Sequential(_conv(channels, channels // reduction, kernel_size, True), nn.ReLU(inplace=True),
                         _conv(channels // reduction, channels, kernel_size, True), nn.Sigmoid())


class PatchAttention(nn.Module):
    """Scale each cell of a ``grid`` partition of the map by a per-channel gate computed from its mean.

    ``(B, C, H, W)`` -> same shape; H and W must be divisible by the grid.
    """

    def __init__(self, channel: int, reduction: int, grid: PatchGrid) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.avg_pool = nn.AdaptiveAvgPool2d(self.grid)
        self.conv_du = _gate(channel, reduction, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gh, gw = self.grid
        gate = self.conv_du(self.avg_pool(x))  # (B, C, gh, gw)
        cells = x.view(b, c, gh, h // gh, gw, w // gw)
        return (cells * gate[:, :, :, None, :, None]).view(b, c, h, w)


class PAB(nn.Module):
    """Patch-attention block: ``x + PA(conv(relu(conv(x))))``."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool, grid: PatchGrid) -> None:
        super().__init__()
        self.conv1 = _conv(n_feat, n_feat, kernel_size, bias)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = _conv(n_feat, n_feat, kernel_size, bias)
        self.PA = PatchAttention(n_feat, reduction, grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.PA(self.conv2(self.act(self.conv1(x)))) + x


class PAG(nn.Module):
    """Patch-attention group: PABs with grids ``grids`` then a conv, with a residual over the group."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool, grids: Sequence[PatchGrid]) -> None:
        super().__init__()
        self.body = nn.Sequential(*[PAB(n_feat, kernel_size, reduction, bias, g) for g in grids],
                                  _conv(n_feat, n_feat, kernel_size, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class PRU(nn.Module):
    """Pixel-wise refine unit: ``x + gate(conv(x)) * conv(x)`` with a 3x3 squeeze-excite gate per pixel."""

    def __init__(self, n_feat: int, reduction: int) -> None:
        super().__init__()
        self.conv = _conv(n_feat, n_feat, 3, False)
        self.fr = _gate(n_feat, reduction, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv(x)
        return self.fr(res) * res + x


class USAU(nn.Module):
    """Uncertainty-supervised attention unit.

    From features ``x`` (B, n_feats, H, W) and the degraded image ``img`` (B, in_channels, H, W) it returns
    ``(features for the next stage or None if last, restored image, log-variance map)``; the image and map
    have ``out_channels`` channels, the restored image is a residual on ``img``.
    """

    def __init__(self, in_channels: int, n_feats: int, out_channels: int, kernel: int, bias: bool) -> None:
        super().__init__()
        self.conv_in = _conv(in_channels, n_feats, kernel, bias)
        self.conv_out = _conv(n_feats, out_channels, kernel, bias)
        self.conv1 = _conv(n_feats, n_feats, 1, bias)
        self.conv2 = _conv(n_feats, n_feats, 1, bias)
        self.var_est = nn.Sequential(_conv(n_feats, n_feats, 3, True), nn.LeakyReLU(0.1, inplace=True))
        self.var_map = nn.Sequential(_conv(n_feats, out_channels, 3, True), nn.LeakyReLU(0.1, inplace=True))
        self.att_map = nn.Sequential(_conv(n_feats, n_feats, 1, True), nn.Sigmoid())

    def forward(self, x: torch.Tensor, img: torch.Tensor,
                last: bool = False) -> Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]:
        fusion = self.conv1(x) + self.conv_in(img)
        restored = self.conv_out(fusion) + img
        var_feat = self.var_est(fusion)
        var_map = self.var_map(var_feat)
        out_feat = None if last else self.att_map(var_feat) * self.conv2(x) + x
        return out_feat, restored, var_map


class _Resample(nn.Module):
    """Bilinear resize by ``scale`` and a 1x1 conv (``down``/``up`` child as in the official keys)."""

    def __init__(self, attr: str, scale: float, cin: int, cout: int) -> None:
        super().__init__()
        self.attr = attr
        setattr(self, attr, nn.Sequential(nn.Upsample(scale_factor=scale, mode='bilinear', align_corners=False),
                                          nn.Conv2d(cin, cout, 1, stride=1, padding=0, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.attr)(x)


class PABUNet(nn.Module):
    """U-Net of PAB stages over ``len(blocks)`` levels (stage 1 has 3 levels, stage 2 has 2).

    Level ``l`` (1-based) has ``n_feat + (l - 1) * feats_step`` channels and runs at ``H / 2**(l-1)``;
    downsampling is bilinear x0.5 + 1x1 conv, upsampling bilinear x2 + 1x1 conv, and each skip passes
    through a PAB before it is added to the upsampled decoder features.
    """

    def __init__(self, blocks: Sequence[int], grids: Sequence[PatchGrid], n_feat: int, kernel_size: int,
                 reduction: int, feats_step: int, bias: bool) -> None:
        super().__init__()
        self.levels = len(blocks)
        widths = [n_feat + i * feats_step for i in range(self.levels)]

        def stage(level: int) -> nn.Sequential:
            return nn.Sequential(*[PAB(widths[level], kernel_size, reduction, bias, grids[level])
                                   for _ in range(blocks[level])])

        # registration order = official state_dict order
        for level in range(self.levels):
            setattr(self, f'encoder{level + 1}', stage(level))
        for level in reversed(range(self.levels)):
            setattr(self, f'decoder{level + 1}', stage(level))
        for level in range(self.levels - 1):
            setattr(self, f'down{level + 1}', _Resample('down', 0.5, widths[level], widths[level + 1]))
        for level in range(self.levels - 1):
            setattr(self, f'up{level + 1}', _Resample('up', 2, widths[level + 1], widths[level]))
        for level in reversed(range(self.levels - 1)):
            setattr(self, f'skipatt{level + 1}', PAB(widths[level], kernel_size, reduction, bias, grids[level]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.encoder1(x)]
        for level in range(2, self.levels + 1):
            skips.append(getattr(self, f'encoder{level}')(getattr(self, f'down{level - 1}')(skips[-1])))
        x = getattr(self, f'decoder{self.levels}')(skips[-1])
        for level in range(self.levels - 1, 0, -1):
            up = getattr(self, f'up{level}')(x)
            x = getattr(self, f'decoder{level}')(up + getattr(self, f'skipatt{level}')(skips[level - 1]))
        return x


class _PAGChain(nn.Module):
    """Stage 3: ``groups`` PAGs in sequence at full resolution (children ``PAG1``... as the official keys)."""

    def __init__(self, groups: int, grids: Sequence[PatchGrid], n_feat: int, kernel_size: int, reduction: int,
                 bias: bool) -> None:
        super().__init__()
        self.groups = groups
        for i in range(1, groups + 1):
            setattr(self, f'PAG{i}', PAG(n_feat, kernel_size, reduction, bias, grids))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.groups + 1):
            x = getattr(self, f'PAG{i}')(x)
        return x


@ARCH_REGISTRY.register()
class DSRIR(nn.Module):
    """DSRIR (official defaults, 3.5M parameters).

    Args:
        in_c, out_c: image channels in and out (the restored images are residuals on the input, so equal).
        sn1_feats, sn2_feats, sn3_feats: feature widths of stages 1-3 (the embedding has their sum).
        feats_step1, feats_step2: channels added per level in the U-Nets of stages 1 and 2.
        kernel_size: kernel of the embedding and block convolutions.
        reduction: channel reduction of the attention gates.
        bias: biases in the main convolutions (gates always have them).
    Input ``(B, in_c, H, W)`` in [0, 1], H and W multiples of 8 (the 8x8 patch-attention grid at full
    resolution); output :class:`NamedOutputs` as described in the module docstring.
    """

    size_multiple = 8

    def __init__(self, in_c: int = 3, out_c: int = 3, sn1_feats: int = 32, sn2_feats: int = 48, sn3_feats: int = 64,
                 feats_step1: int = 32, feats_step2: int = 16, kernel_size: int = 3, reduction: int = 8,
                 bias: bool = False) -> None:
        super().__init__()
        if in_c != out_c:
            raise ValueError(f'DSRIR restores residuals on the input image, so in_c ({in_c}) must equal '
                             f'out_c ({out_c})')
        for name, feats in (('sn1_feats', sn1_feats), ('sn2_feats', sn2_feats), ('sn3_feats', sn3_feats)):
            if feats // reduction < 1:
                raise ValueError(f'DSRIR: {name}={feats} leaves no channels after reduction={reduction}')
        self.splits = [sn1_feats, sn2_feats, sn3_feats]
        self.ebd = _conv(in_c, sum(self.splits), kernel_size, bias)

        self.SN1 = PABUNet(SN1_BLOCKS, SN1_GRIDS, sn1_feats, kernel_size, reduction, feats_step1, bias)
        self.PRU1 = PRU(sn1_feats, reduction)
        self.usau_1 = USAU(in_c, sn1_feats, out_c, kernel=3, bias=bias)

        self.channel_comp1 = _conv(sn1_feats + sn2_feats, sn2_feats, 1, bias)
        self.SN2 = PABUNet(SN2_BLOCKS, SN2_GRIDS, sn2_feats, kernel_size, reduction, feats_step2, bias)
        self.PRU2 = PRU(sn2_feats, reduction)
        self.usau_2 = USAU(in_c, sn2_feats, out_c, kernel=3, bias=bias)

        self.channel_comp2 = _conv(sn2_feats + sn3_feats, sn3_feats, 1, bias)
        self.SN3 = _PAGChain(SN3_GROUPS, SN3_GRIDS, sn3_feats, kernel_size, reduction, bias)
        self.PRU3 = PRU(sn3_feats, reduction)
        self.usau_3 = USAU(in_c, sn3_feats, out_c, kernel=3, bias=bias)

    def forward(self, img: torch.Tensor) -> NamedOutputs:
        require_multiple(img, self.size_multiple, 'DSRIR')
        x1, x2, x3 = torch.split(self.ebd(img), self.splits, dim=1)

        x, img1, var1 = self.usau_1(self.PRU1(self.SN1(x1)), img)
        x = self.channel_comp1(torch.cat([x, x2], dim=1))
        x, img2, var2 = self.usau_2(self.PRU2(self.SN2(x)), img)
        x = self.channel_comp2(torch.cat([x, x3], dim=1))
        _, img3, var3 = self.usau_3(self.PRU3(self.SN3(x)), img, last=True)

        return NamedOutputs({'stage:3': img3, 'stage:2': img2, 'stage:1': img1,
                             'var:3': var3, 'var:2': var2, 'var:1': var1}, pred='stage:3')
