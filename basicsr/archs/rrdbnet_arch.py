"""RRDBNet (ESRGAN, Real-ESRGAN generator) with BasicSR's arguments and parameter names, so the released
ESRGAN/Real-ESRGAN weights load with ``strict=True``.

Residual-in-residual dense blocks (``body.<i>.rdb{1,2,3}.conv{1..5}``, dense growth ``num_grow_ch``, residual
scale 0.2) between ``conv_first`` and ``conv_body``; two nearest x2 upsamplings with convs. For ``scale`` 2 and 1
the input is first pixel-unshuffled by 2 and 4 (Real-ESRGAN's x2 / x1 models), so the body always upsamples x4.
"""
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.arch_util import default_init_weights, make_layer, pixel_unshuffle
from basicsr.utils.registry import ARCH_REGISTRY


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the input and all earlier outputs; ``x + 0.2 * conv5(...)``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        for i in range(1, 6):
            out = num_feat if i == 5 else num_grow_ch
            setattr(self, f'conv{i}', nn.Conv2d(num_feat + (i - 1) * num_grow_ch, out, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        default_init_weights([getattr(self, f'conv{i}') for i in range(1, 6)], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f'conv{i}')(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks in a row with a 0.2-scaled residual around them."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@ARCH_REGISTRY.register()
class RRDBNet(nn.Module):
    """(B, C, H, W) -> (B, num_out_ch, scale H, scale W) for scale 1, 2 or 4 (H, W divisible by 4 / scale)."""

    def __init__(self, num_in_ch: int, num_out_ch: int, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f'RRDBNet: scale must be 1, 2 or 4, got {scale}')
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle ** 2, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode='nearest')))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
