"""Restormer: a 4-level U-Net of transposed-attention transformer blocks.

Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022
(official code: swz30/Restormer ``basicsr/models/archs/restormer_arch.py``). One class covers the official
task configurations and the copies in Xiangtaokong/MiOIR (``global_residual`` switch) and mrluin/UniRestorer
(reflect padding to a multiple of 8 inside ``forward``, so any H, W works). The padding is a no-op on sizes
that are already multiples of 8, where results equal the swz30 network's. ``dual_pixel_task`` follows swz30
(UniRestorer's copy drops that branch from its forward; its experts never set it).

:class:`RestormerUNet` is the shared skeleton; :class:`LoRARestormer` reuses it with low-rank-adapted
convolutions (``lora_restormer_arch.py``), and MiOIR's prompt-learning :class:`Restormer_EP` /
:class:`Restormer_AP` add FiLM-style modulations at six sites of it (``basicsr.archs.prompt_blocks``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from basicsr.archs.input_size import pad_to_multiple
from basicsr.archs.prompt_blocks import (ExplicitPrompt, PromptExtractor, add_prompt_linears, modulate,
                                          split_prompt_input)
from basicsr.archs.transformer_blocks import (ConvFactory, Downsample, OverlapPatchEmbed, Upsample, level_dims,
                                              transformer_stage)
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['RestormerUNet', 'Restormer', 'Restormer_EP', 'Restormer_AP']


class RestormerUNet(nn.Module):
    """Restormer skeleton: patch embedding, 3 encoder levels, latent level, 3 decoder levels, refinement, head.

    Level ``l`` (0..3) runs at ``H / 2**l`` with ``dim * 2**l`` channels; decoder level 1 and the refinement
    stay at ``2 * dim`` channels (the level-1 skip is concatenated without a channel reduction).

    Args:
        conv_for_level: ``level -> conv factory`` for the convolutions of that level (a module belongs to
            the level of its input); plain ``nn.Conv2d`` for Restormer, LoRA convolutions for LoRARestormer.
        name: network name used in error messages.
        The other arguments are Restormer's (see :class:`Restormer`).

    Prompt variants override :meth:`build_prompt` (modules created first, the official state-dict order) and
    :meth:`site`, called on the latent (``'1'``), decoder levels 3, 2, 1 (``'2'``, ``'3'``, ``'4'``), the
    refinement (``'5'``) and the output conv (``'out'``, before the global residual).
    """

    size_multiple = 8  # three 2x downsamplings; forward reflect-pads to this multiple

    def __init__(self, inp_channels: int, out_channels: int, dim: int, num_blocks: Sequence[int],
                 num_refinement_blocks: int, heads: Sequence[int], ffn_expansion_factor: float, bias: bool,
                 LayerNorm_type: str, dual_pixel_task: bool, global_residual: bool,  # noqa: N803
                 conv_for_level: Callable[[int], ConvFactory], name: str) -> None:
        super().__init__()
        dims = level_dims(name, dim, num_blocks, heads)
        if not dual_pixel_task and global_residual and inp_channels != out_channels:
            raise ValueError(f'{name}: global_residual adds the input to the output, so inp_channels '
                             f'({inp_channels}) must equal out_channels ({out_channels}); set '
                             f'global_residual=False or dual_pixel_task=True')
        self.name = name
        self.dual_pixel_task = dual_pixel_task
        self.global_residual = global_residual
        self.build_prompt(dims, out_channels)

        def stage(n: int, level: int, channels: int, conv_level: int) -> nn.Sequential:
            return transformer_stage(n, channels, heads[level], ffn_expansion_factor, bias, LayerNorm_type,
                                     conv_for_level(conv_level))

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim, conv=conv_for_level(0))
        self.encoder_level1 = stage(num_blocks[0], 0, dims[0], 0)
        self.down1_2 = Downsample(dims[0], conv_for_level(0))
        self.encoder_level2 = stage(num_blocks[1], 1, dims[1], 1)
        self.down2_3 = Downsample(dims[1], conv_for_level(1))
        self.encoder_level3 = stage(num_blocks[2], 2, dims[2], 2)
        self.down3_4 = Downsample(dims[2], conv_for_level(2))
        self.latent = stage(num_blocks[3], 3, dims[3], 3)

        self.up4_3 = Upsample(dims[3], conv_for_level(3))
        self.reduce_chan_level3 = conv_for_level(2)(dims[3], dims[2], kernel_size=1, bias=bias)
        self.decoder_level3 = stage(num_blocks[2], 2, dims[2], 2)
        self.up3_2 = Upsample(dims[2], conv_for_level(2))
        self.reduce_chan_level2 = conv_for_level(1)(dims[2], dims[1], kernel_size=1, bias=bias)
        self.decoder_level2 = stage(num_blocks[1], 1, dims[1], 1)
        self.up2_1 = Upsample(dims[1], conv_for_level(1))
        self.decoder_level1 = stage(num_blocks[0], 0, dims[1], 0)
        self.refinement = stage(num_refinement_blocks, 0, dims[1], 0)

        if dual_pixel_task:
            # the official LoRA variant keeps this skip a plain convolution too
            self.skip_conv = nn.Conv2d(dims[0], dims[1], kernel_size=1, bias=bias)
        self.output = conv_for_level(0)(dims[1], out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    def build_prompt(self, dims: Sequence[int], out_channels: int) -> None:
        """Create the prompt modules (none for the plain networks)."""

    def site(self, key: str, feat: torch.Tensor, prompts: Any) -> torch.Tensor:
        """Modulation site ``key``; identity for the plain networks."""
        return feat

    def forward_features(self, embedded: torch.Tensor, prompts: Any = None) -> torch.Tensor:
        """U-Net body on patch-embedded features ``(B, dim, H, W)`` -> refined ``(B, 2*dim, H, W)``."""
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.site('1', self.latent(self.down3_4(enc3)), prompts)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec3 = self.site('2', dec3, prompts)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec2 = self.site('3', dec2, prompts)
        dec1 = self.site('4', self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)), prompts)
        return self.site('5', self.refinement(dec1), prompts)

    def forward_image(self, inp_img: torch.Tensor, prompts: Any = None) -> torch.Tensor:
        """``(B, inp_channels, H, W)`` -> ``(B, out_channels, H, W)``; any H, W (reflect-padded internally)."""
        x, (h, w) = pad_to_multiple(inp_img, self.size_multiple, self.name)
        embedded = self.patch_embed(x)
        feat = self.forward_features(embedded, prompts)
        if self.dual_pixel_task:
            out = self.output(feat + self.skip_conv(embedded))
        elif self.global_residual:
            out = self.site('out', self.output(feat), prompts) + x
        else:
            out = self.site('out', self.output(feat), prompts)
        return out[:, :, :h, :w]

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        """``(B, inp_channels, H, W)`` -> ``(B, out_channels, H, W)``; any H, W (reflect-padded internally)."""
        return self.forward_image(inp_img)


@ARCH_REGISTRY.register()
class Restormer(RestormerUNet):
    """Restormer (official defaults: the motion-deblurring / deraining configuration, 26.1M parameters).

    Args:
        inp_channels, out_channels: image channels (1 for gray denoising; 6 in, 3 out for dual-pixel).
        dim: channels of level 1 (levels 2-4 have 2x, 4x, 8x).
        num_blocks: transformer blocks per level (encoder and decoder of a level use the same count).
        num_refinement_blocks: blocks after decoder level 1.
        heads: attention heads per level.
        ffn_expansion_factor: GDFN hidden width = ``int(channels * factor)``.
        bias: biases in the convolutions.
        LayerNorm_type: 'WithBias' or 'BiasFree' (denoising configurations).
        dual_pixel_task: dual-pixel defocus deblurring: adds a 1x1 skip from the embedding before the head
            and no global residual (input 6 channels = two views).
        global_residual: add the input image to the output (MiOIR's switch; official networks always do).
    Input ``(B, inp_channels, H, W)`` in [0, 1], any H, W; output ``(B, out_channels, H, W)``.
    """

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', dual_pixel_task: bool = False,  # noqa: N803
                 global_residual: bool = True) -> None:
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task, global_residual,
                         conv_for_level=lambda level: nn.Conv2d, name='Restormer')


class _RestormerPrompt(RestormerUNet):
    """MiOIR Restormer with prompt learning (official ``Restormer_EP`` / ``Restormer_AP``).

    Four prompt extractors ``F_ext_net1..4``: the first modulates the latent (``8 dim`` channels), the second
    decoder level 3 (``4 dim``), the third decoder levels 2 and 1 and the refinement (``2 dim`` each), the
    fourth the output conv before the global residual. ``forward(x, task=None)``: ``x`` is the official
    ``[lq, prompt]`` or the image alone (see :func:`basicsr.archs.prompt_blocks.split_prompt_input`); the
    prompts are computed on the unpadded input. Output ``(B, out_channels, H, W)``.
    Arguments are :class:`Restormer`'s.
    """

    explicit_prompt = False
    # extractor (index into the prompts) feeding each modulation site
    _SITE_PROMPT = {'1': 0, '2': 1, '3': 2, '4': 2, '5': 2, 'out': 3}

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', global_residual: bool = True,  # noqa: N803
                 dual_pixel_task: bool = False) -> None:
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task, global_residual,
                         conv_for_level=lambda level: nn.Conv2d, name=type(self).__name__)

    def build_prompt(self, dims: Sequence[int], out_channels: int) -> None:
        for i in range(1, 5):
            setattr(self, f'F_ext_net{i}', PromptExtractor(1 if self.explicit_prompt else 3))
        add_prompt_linears(self, [('1', dims[3]), ('2', dims[2]), ('3', dims[1]), ('4', dims[1]), ('5', dims[1]),
                                  ('out', out_channels)])

    def site(self, key: str, feat: torch.Tensor, prompts: Any) -> torch.Tensor:
        return modulate(self, key, feat, prompts[self._SITE_PROMPT[key]])

    def forward(self, x: Any, task: Optional[Any] = None) -> torch.Tensor:
        image, prompt = split_prompt_input(x, task, self.explicit_prompt, self.name)
        prompts = [getattr(self, f'F_ext_net{i}')(prompt) for i in range(1, 5)]
        return self.forward_image(image, prompts)


@ARCH_REGISTRY.register()
class Restormer_EP(ExplicitPrompt, _RestormerPrompt):  # noqa: N801 (official name)
    """MiOIR Restormer with an explicit prompt: the task's fixed 128x128 map, ``[lq, map]`` or ``task=ids``."""


@ARCH_REGISTRY.register()
class Restormer_AP(_RestormerPrompt):  # noqa: N801 (official name)
    """MiOIR Restormer with an adaptive prompt: the extractors read the degraded image itself."""
