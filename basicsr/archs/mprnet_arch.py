"""MPRNet (Zamir et al., "Multi-Stage Progressive Image Restoration", CVPR 2021).

Official code: swz30/MPRNet, {Deblurring,Deraining,Denoising}/MPRNet.py. The three task files define the
same network and differ only in constructor defaults; this class takes the Deblurring defaults and the
other tasks pass theirs as keyword arguments (see ``MPRNET_CONFIGS``).

Stage 1 runs an encoder-decoder on the four quarters of the image, stage 2 on the two halves, stage 3 a
full-resolution subnetwork; supervised attention modules hand features and intermediate images from one
stage to the next. Here the patches of a stage are stacked on the batch axis and processed in one call
(every layer is per-sample, so this equals the official patch-by-patch loop).
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from basicsr.archs.conv_blocks import CALayer, SupervisedAttention, conv_same
from basicsr.archs.outputs import NamedOutputs
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor

#: constructor kwargs of the three official task folders (the Deblurring ones are the class defaults)
MPRNET_CONFIGS: Dict[str, dict] = {
    'deblurring': dict(n_feat=96, scale_unetfeats=48, scale_orsnetfeats=32),
    'denoising': dict(n_feat=80, scale_unetfeats=48, scale_orsnetfeats=32),
    'deraining': dict(n_feat=40, scale_unetfeats=20, scale_orsnetfeats=16),
}


class CAB(nn.Module):
    """Channel attention block: conv - act - conv, channel attention, plus the input."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> None:
        super().__init__()
        self.CA = CALayer(n_feat, reduction, bias=bias)
        self.body = nn.Sequential(conv_same(n_feat, n_feat, kernel_size, bias=bias), act,
                                  conv_same(n_feat, n_feat, kernel_size, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.CA(self.body(x)) + x


def _cabs(n: int, n_feat: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> List[CAB]:
    return [CAB(n_feat, kernel_size, reduction, bias, act) for _ in range(n)]


def _resample_1x1(in_channels: int, out_channels: int, scale: float) -> nn.Sequential:
    """Bilinear resize by ``scale`` then a bias-free 1x1 conv (MPRNet's Down/UpSample bodies)."""
    return nn.Sequential(nn.Upsample(scale_factor=scale, mode='bilinear', align_corners=False),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False))


class DownSample(nn.Module):
    """Halve H, W and add ``s_factor`` channels."""

    def __init__(self, in_channels: int, s_factor: int) -> None:
        super().__init__()
        self.down = _resample_1x1(in_channels, in_channels + s_factor, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(x)


class UpSample(nn.Module):
    """Double H, W and drop ``s_factor`` channels."""

    def __init__(self, in_channels: int, s_factor: int) -> None:
        super().__init__()
        self.up = _resample_1x1(in_channels + s_factor, in_channels, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(x)


class SkipUpSample(UpSample):
    """:class:`UpSample` followed by the addition of a skip connection."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return self.up(x) + y


class Encoder(nn.Module):
    """Three-level encoder (two CABs per level); with ``csff`` it adds the previous stage's maps."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 scale_unetfeats: int, csff: bool) -> None:
        super().__init__()
        chans = [n_feat + k * scale_unetfeats for k in range(3)]
        self.encoder_level1 = nn.Sequential(*_cabs(2, chans[0], kernel_size, reduction, bias, act))
        self.encoder_level2 = nn.Sequential(*_cabs(2, chans[1], kernel_size, reduction, bias, act))
        self.encoder_level3 = nn.Sequential(*_cabs(2, chans[2], kernel_size, reduction, bias, act))
        self.down12 = DownSample(chans[0], scale_unetfeats)
        self.down23 = DownSample(chans[1], scale_unetfeats)
        if csff:
            for k, c in enumerate(chans, start=1):
                self.add_module(f'csff_enc{k}', nn.Conv2d(c, c, 1, bias=bias))
            for k, c in enumerate(chans, start=1):
                self.add_module(f'csff_dec{k}', nn.Conv2d(c, c, 1, bias=bias))

    def forward(self, x: Tensor, encoder_outs: List[Tensor] | None = None,
                decoder_outs: List[Tensor] | None = None) -> List[Tensor]:
        levels = (self.encoder_level1, self.encoder_level2, self.encoder_level3)
        downs = (self.down12, self.down23, None)
        outs = []
        for k, (level, down) in enumerate(zip(levels, downs)):
            x = level(x)
            if encoder_outs is not None and decoder_outs is not None:
                x = (x + getattr(self, f'csff_enc{k + 1}')(encoder_outs[k])
                     + getattr(self, f'csff_dec{k + 1}')(decoder_outs[k]))
            outs.append(x)
            if down is not None:
                x = down(x)
        return outs


class Decoder(nn.Module):
    """Three-level decoder with channel-attention skip connections; returns [dec1, dec2, dec3]."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 scale_unetfeats: int) -> None:
        super().__init__()
        chans = [n_feat + k * scale_unetfeats for k in range(3)]
        self.decoder_level1 = nn.Sequential(*_cabs(2, chans[0], kernel_size, reduction, bias, act))
        self.decoder_level2 = nn.Sequential(*_cabs(2, chans[1], kernel_size, reduction, bias, act))
        self.decoder_level3 = nn.Sequential(*_cabs(2, chans[2], kernel_size, reduction, bias, act))
        self.skip_attn1 = CAB(chans[0], kernel_size, reduction, bias, act)
        self.skip_attn2 = CAB(chans[1], kernel_size, reduction, bias, act)
        self.up21 = SkipUpSample(chans[0], scale_unetfeats)
        self.up32 = SkipUpSample(chans[1], scale_unetfeats)

    def forward(self, outs: List[Tensor]) -> List[Tensor]:
        enc1, enc2, enc3 = outs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: ``num_cab`` CABs and a conv, plus the input."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 num_cab: int) -> None:
        super().__init__()
        # the trailing conv has no bias whatever ``bias`` says, as officially
        self.body = nn.Sequential(*_cabs(num_cab, n_feat, kernel_size, reduction, bias, act),
                                  conv_same(n_feat, n_feat, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class ORSNet(nn.Module):
    """Stage 3: three ORBs, each followed by the stage-2 encoder/decoder maps of one level."""

    def __init__(self, n_feat: int, scale_orsnetfeats: int, kernel_size: int, reduction: int, act: nn.Module,
                 bias: bool, scale_unetfeats: int, num_cab: int) -> None:
        super().__init__()
        c = n_feat + scale_orsnetfeats
        self.orb1 = ORB(c, kernel_size, reduction, act, bias, num_cab)
        self.orb2 = ORB(c, kernel_size, reduction, act, bias, num_cab)
        self.orb3 = ORB(c, kernel_size, reduction, act, bias, num_cab)
        self.up_enc1 = UpSample(n_feat, scale_unetfeats)
        self.up_dec1 = UpSample(n_feat, scale_unetfeats)
        self.up_enc2 = nn.Sequential(UpSample(n_feat + scale_unetfeats, scale_unetfeats),
                                     UpSample(n_feat, scale_unetfeats))
        self.up_dec2 = nn.Sequential(UpSample(n_feat + scale_unetfeats, scale_unetfeats),
                                     UpSample(n_feat, scale_unetfeats))
        for name in ('conv_enc1', 'conv_enc2', 'conv_enc3', 'conv_dec1', 'conv_dec2', 'conv_dec3'):
            self.add_module(name, nn.Conv2d(n_feat, c, 1, bias=bias))

    def forward(self, x: Tensor, encoder_outs: List[Tensor], decoder_outs: List[Tensor]) -> Tensor:
        x = self.orb1(x)
        x = x + self.conv_enc1(encoder_outs[0]) + self.conv_dec1(decoder_outs[0])
        x = self.orb2(x)
        x = x + self.conv_enc2(self.up_enc1(encoder_outs[1])) + self.conv_dec2(self.up_dec1(decoder_outs[1]))
        x = self.orb3(x)
        return x + self.conv_enc3(self.up_enc2(encoder_outs[2])) + self.conv_dec3(self.up_dec2(decoder_outs[2]))


def _split(x: Tensor, parts: int, dim: int) -> Tensor:
    """Cut ``x`` in ``parts`` equal pieces along ``dim`` and stack them on the batch axis (piece-major)."""
    return torch.cat(x.chunk(parts, dim=dim), dim=0)


def _merge(x: Tensor, parts: int, dim: int) -> Tensor:
    """Inverse of :func:`_split`."""
    return torch.cat(x.chunk(parts, dim=0), dim=dim)


@ARCH_REGISTRY.register()
class MPRNet(nn.Module):
    """Three-stage MPRNet; defaults are the Deblurring ones (``MPRNET_CONFIGS`` lists all three tasks).

    Args:
        in_c / out_c: input / output channels.
        n_feat: base channels; ``scale_unetfeats`` channels are added per U-Net level and
            ``scale_orsnetfeats`` in stage 3.
        num_cab: CABs per original-resolution block; kernel_size, reduction (channel attention), bias.
    Input (B, in_c, H, W) with H and W multiples of 8 (the quarters are downsampled twice).
    Returns ``NamedOutputs`` in the official order ``stage:3`` (final image, ``pred``), ``stage:2``,
    ``stage:1``.
    """

    size_multiple = 8

    def __init__(self, in_c: int = 3, out_c: int = 3, n_feat: int = 96, scale_unetfeats: int = 48,
                 scale_orsnetfeats: int = 32, num_cab: int = 8, kernel_size: int = 3, reduction: int = 4,
                 bias: bool = False) -> None:
        super().__init__()
        # one PReLU shared by every CAB, as officially (its slope appears under many state_dict names)
        act = nn.PReLU()
        self.shallow_feat1 = nn.Sequential(conv_same(in_c, n_feat, kernel_size, bias=bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.shallow_feat2 = nn.Sequential(conv_same(in_c, n_feat, kernel_size, bias=bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.shallow_feat3 = nn.Sequential(conv_same(in_c, n_feat, kernel_size, bias=bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.stage1_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=False)
        self.stage1_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage2_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=True)
        self.stage2_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage3_orsnet = ORSNet(n_feat, scale_orsnetfeats, kernel_size, reduction, act, bias,
                                    scale_unetfeats, num_cab)
        self.sam12 = SupervisedAttention(n_feat, kernel_size=1, bias=bias, img_channels=in_c)
        self.sam23 = SupervisedAttention(n_feat, kernel_size=1, bias=bias, img_channels=in_c)
        self.concat12 = conv_same(n_feat * 2, n_feat, kernel_size, bias=bias)
        self.concat23 = conv_same(n_feat * 2, n_feat + scale_orsnetfeats, kernel_size, bias=bias)
        self.tail = conv_same(n_feat + scale_orsnetfeats, out_c, kernel_size, bias=bias)

    def forward(self, x3_img: Tensor) -> NamedOutputs:
        h, w = x3_img.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f'MPRNet needs H and W to be multiples of {self.size_multiple}, got {h}x{w}; '
                             f'pad the input (e.g. reflect, as the official RealBlur test does) first')
        halves = _split(x3_img, 2, dim=2)      # (2B): top, bottom
        quarters = _split(halves, 2, dim=3)    # (4B): top-left, bottom-left, top-right, bottom-right

        # stage 1: the four quarters; their features are joined left|right into top and bottom halves
        feat1 = [_merge(f, 2, dim=3) for f in self.stage1_encoder(self.shallow_feat1(quarters))]
        res1 = self.stage1_decoder(feat1)
        sam_feats12, stage1_halves = self.sam12(res1[0], halves)
        stage1_img = _merge(stage1_halves, 2, dim=2)

        # stage 2: the two halves, joined top/bottom into the full image
        x2 = self.concat12(torch.cat([self.shallow_feat2(halves), sam_feats12], dim=1))
        feat2 = [_merge(f, 2, dim=2) for f in self.stage2_encoder(x2, feat1, res1)]
        res2 = self.stage2_decoder(feat2)
        sam_feats23, stage2_img = self.sam23(res2[0], x3_img)

        # stage 3: full resolution
        x3 = self.concat23(torch.cat([self.shallow_feat3(x3_img), sam_feats23], dim=1))
        stage3_img = self.tail(self.stage3_orsnet(x3, feat2, res2)) + x3_img
        return NamedOutputs({'stage:3': stage3_img, 'stage:2': stage2_img, 'stage:1': stage1_img},
                            pred='stage:3')
