"""GAN discriminators with BasicSR's names, arguments and parameter names (its released weights load).

* ``VGGStyleDiscriminator`` (SRGAN/ESRGAN): five (or six) stages of 3x3 conv + 4x4 stride-2 conv with batch
  norm and leaky ReLU, then two linear layers: one logit per image; inputs must be ``input_size`` square.
* ``UNetDiscriminatorSN`` (Real-ESRGAN): a spectral-normalised U-Net giving one logit per pixel. Registered as
  ``UNetDiscriminatorSN_basicsr`` like BasicSR, so a method's own ``UNetDiscriminatorSN`` keeps the plain name;
  ``type: UNetDiscriminatorSN`` finds this one when no plug-in defines it.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from basicsr.utils.registry import ARCH_REGISTRY


def _vgg_stage(c_in: int, c_out: int, idx: int, first: bool) -> List[tuple]:
    """(name, module) pairs of one stage: ``conv<i>_0`` (3x3) [+ ``bn<i>_0``], ``conv<i>_1`` (4x4, /2) + ``bn<i>_1``."""
    mods = [(f'conv{idx}_0', nn.Conv2d(c_in, c_out, 3, 1, 1, bias=first))]
    if not first:
        mods.append((f'bn{idx}_0', nn.BatchNorm2d(c_out, affine=True)))
    mods += [(f'conv{idx}_1', nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False)),
             (f'bn{idx}_1', nn.BatchNorm2d(c_out, affine=True))]
    return mods


@ARCH_REGISTRY.register()
class VGGStyleDiscriminator(nn.Module):
    """VGG-style discriminator for 128x128 or 256x256 inputs: (B, C, S, S) -> (B, 1) logits.

    Args:
        num_in_ch: input channels.
        num_feat: channels of the first stage (doubling up to 8x).
        input_size: 128 (5 stages) or 256 (6 stages).
    """

    def __init__(self, num_in_ch: int, num_feat: int, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f'VGGStyleDiscriminator: input_size must be 128 or 256, got {input_size}')
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8] + \
            ([num_feat * 8] if input_size == 256 else [])
        self.num_stages = len(widths)
        c_in = num_in_ch
        for i, c_out in enumerate(widths):
            for name, module in _vgg_stage(c_in, c_out, i, first=i == 0):
                self.add_module(name, module)
            c_in = c_out
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f'VGGStyleDiscriminator: input must be {self.input_size}x{self.input_size}, '
                             f'got {tuple(x.shape[-2:])}')
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f'bn{i}_0')(getattr(self, f'conv{i}_0')(feat)))
            feat = self.lrelu(getattr(self, f'bn{i}_1')(getattr(self, f'conv{i}_1')(feat)))
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))


@ARCH_REGISTRY.register(suffix='basicsr')
class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: (B, C, H, W) -> (B, 1, H, W) logits (H, W
    multiples of 8).

    Args:
        num_in_ch: input channels.
        num_feat: channels of the first level.
        skip_connection: add the encoder features to the decoder's (U-Net skips).
    """

    def __init__(self, num_in_ch: int, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, kernel_size=3, stride=1, padding=1)
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2, inplace=True)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode='bilinear', align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        x4 = x4 + x2 if self.skip_connection else x4
        x5 = act(self.conv5(up(x4)))
        x5 = x5 + x1 if self.skip_connection else x5
        x6 = act(self.conv6(up(x5)))
        x6 = x6 + x0 if self.skip_connection else x6
        out = act(self.conv8(act(self.conv7(x6))))
        return self.conv9(out)
