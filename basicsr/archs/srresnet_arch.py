"""SRResNet family: a conv head, a stack of residual blocks without batch norm, a conv tail.

* :class:`MSRResNet` -- BasicSR's modified SRResNet (Ledig et al., CVPR 2017, without BN, as in EDSR):
  pixel-shuffle upsampling x2/x3/x4 and a bilinear-upsampled input added to the output
  (XPixelGroup/BasicSR ``basicsr/archs/srresnet_arch.py``).
* :class:`SRResNet` -- Xiangtaokong/MiOIR's same-size restoration variant: no upsampler and the input
  itself added to the output.
* :class:`SRResNet_EP` / :class:`SRResNet_AP` -- MiOIR's prompt-learning variants: a prompt extractor, and
  a FiLM-style modulation (``basicsr.archs.prompt_blocks``) after every residual block, after ``conv_hr`` and
  on the 3-channel output before the global residual.

All share :class:`ResNetSRBase` (head, body, tail); only the upsampling step, the global residual and the
modulation sites differ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from typing import Any, Optional

from basicsr.archs.prompt_blocks import (PROMPT_NF, ExplicitPrompt, PromptExtractor, add_prompt_linears, modulate,
                                          split_prompt_input)
from basicsr.archs.sr_blocks import default_init_weights, residual_stack
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor

__all__ = ['ResNetSRBase', 'MSRResNet', 'SRResNet', 'SRResNet_EP', 'SRResNet_AP']


class ResNetSRBase(nn.Module):
    """``conv_first`` + LeakyReLU(0.1), ``num_block`` residual blocks, [upsampler], ``conv_hr`` + LeakyReLU,
    ``conv_last``. Subclasses add their upsampling convs in :meth:`build_upsampler` (called between the body
    and ``conv_hr`` so the state-dict order is the official one) and the global residual in ``forward``.
    Prompt variants also override :meth:`build_prompt` (modules created first, as in the official order),
    :meth:`build_body` / :meth:`run_body` and :meth:`site` (the modulation after ``conv_hr`` and ``conv_last``).
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int, num_block: int) -> None:
        super().__init__()
        self.build_prompt(num_feat, num_block, num_out_ch)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.build_body(num_block, num_feat)
        upsample_convs = self.build_upsampler(num_feat)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first, *upsample_convs, self.conv_hr, self.conv_last], 0.1)

    def build_prompt(self, num_feat: int, num_block: int, num_out_ch: int) -> None:
        """Create the prompt modules (none for the plain networks)."""

    def build_body(self, num_block: int, num_feat: int) -> None:
        self.body = residual_stack(num_block, num_feat)

    def run_body(self, feat: Tensor, prompt: Optional[Tensor]) -> Tensor:
        return self.body(feat)

    def site(self, key: str, feat: Tensor, prompt: Optional[Tensor]) -> Tensor:
        """Modulation site ``key`` ('hr' or 'out'); identity for the plain networks."""
        return feat

    def build_upsampler(self, num_feat: int) -> list:
        """Create the upsampling modules; return the convs to initialise. Default: none (same size)."""
        return []

    def upsample(self, feat: Tensor) -> Tensor:
        return feat

    def residual(self, x: Tensor, prompt: Optional[Tensor] = None) -> Tensor:
        """``(B, C, H, W)`` map of the learned residual (everything but the global skip)."""
        feat = self.run_body(self.lrelu(self.conv_first(x)), prompt)
        feat = self.site('hr', self.lrelu(self.conv_hr(self.upsample(feat))), prompt)
        return self.site('out', self.conv_last(feat), prompt)


@ARCH_REGISTRY.register()
class MSRResNet(ResNetSRBase):
    """Modified SRResNet. Input ``(B, num_in_ch, H, W)``, output ``(B, num_out_ch, H*upscale, W*upscale)``
    = learned residual + bilinear upsampling of the input (so ``num_in_ch`` must equal ``num_out_ch``).

    Args (official defaults): num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4 (2, 3 or 4).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4) -> None:
        if upscale not in (2, 3, 4):
            raise ValueError(f'MSRResNet supports upscale 2, 3 or 4, got {upscale!r} (SRResNet is the same-size '
                             f'variant)')
        if num_in_ch != num_out_ch:
            raise ValueError(f'MSRResNet adds the upsampled input to the output, so num_in_ch ({num_in_ch}) must '
                             f'equal num_out_ch ({num_out_ch})')
        self.upscale = upscale
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block)

    def build_upsampler(self, num_feat: int) -> list:
        if self.upscale in (2, 3):
            self.upconv1 = nn.Conv2d(num_feat, num_feat * self.upscale ** 2, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(self.upscale)
            return [self.upconv1]
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        return [self.upconv1, self.upconv2]

    def upsample(self, feat: Tensor) -> Tensor:
        feat = self.lrelu(self.pixel_shuffle(self.upconv1(feat)))
        if self.upscale == 4:
            feat = self.lrelu(self.pixel_shuffle(self.upconv2(feat)))
        return feat

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual(x)
        out += F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        return out


@ARCH_REGISTRY.register()
class SRResNet(ResNetSRBase):
    """MiOIR's same-size SRResNet: output = learned residual + input, ``(B, C, H, W)`` for any H, W.

    Args (official defaults): num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16. ``upscale`` is accepted
    for option-file compatibility and must be 1: the network has no upsampler (the official default of 4
    fails in the official constructor, so 1 is the default here).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 1) -> None:
        if upscale != 1:
            raise ValueError(f'SRResNet (MiOIR) restores at the input size and has no upsampler; upscale must be 1, '
                             f'got {upscale!r} (use MSRResNet for super-resolution)')
        if num_in_ch != num_out_ch:
            raise ValueError(f'SRResNet adds the input to the output, so num_in_ch ({num_in_ch}) must equal '
                             f'num_out_ch ({num_out_ch})')
        self.upscale = upscale
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block)

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual(x)
        out += x
        return out


class _SRResNetPrompt(SRResNet):
    """MiOIR SRResNet with prompt learning (official ``SRResNet_EP`` / ``SRResNet_AP``).

    One :class:`PromptExtractor` (``F_ext_net``) turns the prompt into a 64-d vector; modulation sites
    ``1..num_block`` follow the residual blocks (``body1``, ``body2``, ... each a one-block stack, the official
    names), ``hr`` follows ``conv_hr`` + LeakyReLU and ``out`` the last conv, before the input is added.
    ``forward(x, task=None)``: ``x`` is the official ``[lq, prompt]`` or the image alone (see
    :func:`basicsr.archs.prompt_blocks.split_prompt_input`). Output ``(B, num_out_ch, H, W)``.
    """

    explicit_prompt = False

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, prompt_nf: int = PROMPT_NF,
                 num_block: int = 16, upscale: int = 1) -> None:
        if prompt_nf != PROMPT_NF:
            raise ValueError(f'{type(self).__name__}: prompt_nf must be {PROMPT_NF} (the prompt extractor width '
                             f'is fixed in MiOIR), got {prompt_nf!r}')
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale)

    def build_prompt(self, num_feat: int, num_block: int, num_out_ch: int) -> None:
        self.F_ext_net = PromptExtractor(1 if self.explicit_prompt else 3)
        sites = [(str(i), num_feat) for i in range(1, num_block + 1)] + [('hr', num_feat), ('out', num_out_ch)]
        add_prompt_linears(self, sites)

    def build_body(self, num_block: int, num_feat: int) -> None:
        self.num_block = num_block
        for i in range(1, num_block + 1):
            setattr(self, f'body{i}', residual_stack(1, num_feat))

    def run_body(self, feat: Tensor, prompt: Optional[Tensor]) -> Tensor:
        for i in range(1, self.num_block + 1):
            feat = modulate(self, str(i), getattr(self, f'body{i}')(feat), prompt)
        return feat

    def site(self, key: str, feat: Tensor, prompt: Optional[Tensor]) -> Tensor:
        return modulate(self, key, feat, prompt)

    def forward(self, x: Any, task: Optional[Any] = None) -> Tensor:
        image, prompt = split_prompt_input(x, task, self.explicit_prompt, type(self).__name__)
        out = self.residual(image, self.F_ext_net(prompt))
        out += image
        return out


@ARCH_REGISTRY.register()
class SRResNet_EP(ExplicitPrompt, _SRResNetPrompt):  # noqa: N801 (official name)
    """MiOIR SRResNet with an explicit prompt: the task's fixed 128x128 map, ``[lq, map]`` or ``task=ids``."""


@ARCH_REGISTRY.register()
class SRResNet_AP(_SRResNetPrompt):  # noqa: N801 (official name)
    """MiOIR SRResNet with an adaptive prompt: the extractor reads the degraded image itself."""
