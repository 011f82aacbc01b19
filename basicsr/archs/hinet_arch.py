"""HINet (Chen et al., "HINet: Half Instance Normalization Network for Image Restoration", CVPRW 2021).

Official code: megvii-model/HINet, basicsr/models/archs/hinet_arch.py. Two U-Nets in sequence; the
first one's output image goes through a supervised attention module into the second, and the second's
encoder receives cross-stage features from the first (CSFF). Half instance normalisation normalises
half of the channels after the first conv of an encoder block with a plain ``nn.InstanceNorm2d`` so that
the TLC converter can replace its statistics by local ones.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from basicsr.archs.conv_blocks import SupervisedAttention, conv_same
from basicsr.archs.outputs import NamedOutputs
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor


class UNetConvBlock(nn.Module):
    """Two 3x3 conv + LeakyReLU with a 1x1 residual; optional HIN, CSFF inputs and 4x4 stride-2 downsampling.

    Returns ``(downsampled, full_resolution)`` when ``downsample`` is set, else the full-resolution map.
    """

    def __init__(self, in_size: int, out_size: int, downsample: bool, relu_slope: float,
                 use_csff: bool = False, use_HIN: bool = False) -> None:
        super().__init__()
        self.identity = nn.Conv2d(in_size, out_size, 1)
        self.use_csff = use_csff
        self.conv_1 = nn.Conv2d(in_size, out_size, 3, padding=1, bias=True)
        self.relu_1 = nn.LeakyReLU(relu_slope)
        self.conv_2 = nn.Conv2d(out_size, out_size, 3, padding=1, bias=True)
        self.relu_2 = nn.LeakyReLU(relu_slope)
        if downsample and use_csff:
            self.csff_enc = nn.Conv2d(out_size, out_size, 3, padding=1)
            self.csff_dec = nn.Conv2d(out_size, out_size, 3, padding=1)
        self.use_HIN = use_HIN
        if use_HIN:
            self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        self.downsample = nn.Conv2d(out_size, out_size, 4, stride=2, padding=1, bias=False) if downsample else None

    def forward(self, x: Tensor, enc: Optional[Tensor] = None, dec: Optional[Tensor] = None):
        out = self.conv_1(x)
        if self.use_HIN:
            normed, kept = out.chunk(2, dim=1)
            out = torch.cat([self.norm(normed), kept], dim=1)
        out = self.relu_2(self.conv_2(self.relu_1(out))) + self.identity(x)
        if enc is not None and dec is not None:
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class UNetUpBlock(nn.Module):
    """2x2 stride-2 transposed conv, concatenation with the skip, then a conv block."""

    def __init__(self, in_size: int, out_size: int, relu_slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2, bias=True)
        self.conv_block = UNetConvBlock(in_size, out_size, False, relu_slope)

    def forward(self, x: Tensor, bridge: Tensor) -> Tensor:
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))


@ARCH_REGISTRY.register()
class HINet(nn.Module):
    """Two-stage HINet.

    Args:
        in_chn: image channels (input and output).
        wf: channels of the first level (doubled at every level).
        depth: levels per U-Net (``depth - 1`` downsamplings).
        relu_slope: LeakyReLU negative slope.
        hin_position_left / hin_position_right: encoder levels (inclusive range) that use half instance
            normalisation.
    Input (B, in_chn, H, W) with H and W multiples of ``2 ** (depth - 1)`` (16 by default).
    Returns ``NamedOutputs`` in the official order: ``stage:1`` (first U-Net's image), then ``stage:2``
    (the final output, ``pred``).
    """

    def __init__(self, in_chn: int = 3, wf: int = 64, depth: int = 5, relu_slope: float = 0.2,
                 hin_position_left: int = 0, hin_position_right: int = 4) -> None:
        super().__init__()
        self.depth = depth
        self.down_path_1 = nn.ModuleList()
        self.down_path_2 = nn.ModuleList()
        self.conv_01 = nn.Conv2d(in_chn, wf, 3, 1, 1)
        self.conv_02 = nn.Conv2d(in_chn, wf, 3, 1, 1)

        prev = wf
        for i in range(depth):
            use_hin = hin_position_left <= i <= hin_position_right
            downsample = i + 1 < depth
            chn = (2 ** i) * wf
            self.down_path_1.append(UNetConvBlock(prev, chn, downsample, relu_slope, use_HIN=use_hin))
            self.down_path_2.append(UNetConvBlock(prev, chn, downsample, relu_slope, use_csff=downsample,
                                                  use_HIN=use_hin))
            prev = chn

        self.up_path_1 = nn.ModuleList()
        self.up_path_2 = nn.ModuleList()
        self.skip_conv_1 = nn.ModuleList()
        self.skip_conv_2 = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            chn = (2 ** i) * wf
            self.up_path_1.append(UNetUpBlock(prev, chn, relu_slope))
            self.up_path_2.append(UNetUpBlock(prev, chn, relu_slope))
            self.skip_conv_1.append(nn.Conv2d(chn, chn, 3, 1, 1))
            self.skip_conv_2.append(nn.Conv2d(chn, chn, 3, 1, 1))
            prev = chn
        self.sam12 = SupervisedAttention(prev, kernel_size=3, bias=True, img_channels=in_chn)
        self.cat12 = nn.Conv2d(prev * 2, prev, 1, 1, 0)
        self.last = conv_same(prev, in_chn, 3, bias=True)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this."""
        return 2 ** (self.depth - 1)

    def forward(self, x: Tensor) -> NamedOutputs:
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f'HINet (depth={self.depth}) needs H and W to be multiples of {m}, got {h}x{w}; '
                             f'pad the input (e.g. the inference padding wrapper) first')
        # stage 1: plain U-Net
        x1 = self.conv_01(x)
        encs = []
        for down in self.down_path_1[:-1]:
            x1, skip = down(x1)
            encs.append(skip)
        x1 = self.down_path_1[-1](x1)
        decs = []
        for up, skip_conv, skip in zip(self.up_path_1, self.skip_conv_1, reversed(encs)):
            x1 = up(x1, skip_conv(skip))
            decs.append(x1)
        sam_feature, out_1 = self.sam12(x1, x)

        # stage 2: U-Net fed with the SAM features and the stage-1 encoder/decoder maps (CSFF)
        x2 = self.cat12(torch.cat([self.conv_02(x), sam_feature], dim=1))
        blocks = []
        for down, enc, dec in zip(self.down_path_2[:-1], encs, reversed(decs)):
            x2, skip = down(x2, enc, dec)
            blocks.append(skip)
        x2 = self.down_path_2[-1](x2)
        for up, skip_conv, skip in zip(self.up_path_2, self.skip_conv_2, reversed(blocks)):
            x2 = up(x2, skip_conv(skip))
        out_2 = self.last(x2) + x
        return NamedOutputs({'stage:1': out_1, 'stage:2': out_2}, pred='stage:2')
