"""PromptIR: Restormer U-Net whose decoder levels are conditioned on learned degradation prompts.

Potlapalli et al., "PromptIR: Prompting for All-in-One Blind Image Restoration", NeurIPS 2023
(official code: va1shn9v/PromptIR ``net/model.py``). Before decoder levels 3, 2 and 1 a prompt block mixes
5 learned prompt tensors with weights predicted from the features' global average, resizes the mixture to
the feature size and concatenates it; one transformer block and a 1x1 conv fuse it back.

Two registered types share this implementation:
- ``PromptIR``: the official network, default ``decoder=False``. It keeps six 1x1 convolutions that the
  official forward never uses, so official checkpoints load with ``strict=True``.
- ``PromptIR_MiOIR``: the copy in Xiangtaokong/MiOIR (``basicsr/archs/promptir_arch.py``): the same network
  without those six convolutions, default ``decoder=True``.

Only ``decoder=True`` runs: with ``decoder=False`` the official level-4 upsampler receives 8*dim channels but
was built for 4*dim, so that network can be built (and its checkpoints loaded) but not run; forward says so.
The prompt widths (64, 128, 320 channels) are fixed by the official code; the feature widths scale with
``dim`` (the official arithmetic equals this at its ``dim=48``, the only width it runs at).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.input_size import require_multiple
from basicsr.archs.transformer_blocks import (Downsample, OverlapPatchEmbed, TransformerBlock, Upsample, check_heads,
                                              level_dims, transformer_stage)
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['PromptGenBlock', 'PromptIRNet', 'PromptIR', 'PromptIRMiOIR']

PROMPT_LEN = 5  # learned prompts per decoder level
PROMPT_DIMS = (64, 128, 320)  # prompt channels before decoder levels 1, 2, 3
PROMPT_SIZES = (64, 32, 16)  # spatial size of the stored prompts (resized to the features)


class PromptGenBlock(nn.Module):
    """Input-conditioned prompt: ``softmax(Linear(mean_hw(x)))``-weighted sum of ``prompt_len`` learned
    ``(prompt_dim, prompt_size, prompt_size)`` tensors, bilinearly resized to x's H, W, then a 3x3 conv.

    ``(B, lin_dim, H, W)`` -> ``(B, prompt_dim, H, W)``.
    """

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # (B, prompt_len)
        prompt = (weights[:, :, None, None, None] * self.prompt_param).sum(dim=1)
        prompt = F.interpolate(prompt, x.shape[-2:], mode='bilinear')
        return self.conv3x3(prompt)


class PromptIRNet(nn.Module):
    """Shared PromptIR network; see the module docstring. ``keep_unused_convs`` adds the six 1x1 convs of the
    va1shn9v checkpoints (never used in forward)."""

    size_multiple = 8  # three 2x downsamplings

    def __init__(self, inp_channels: int, out_channels: int, dim: int, num_blocks: Sequence[int],
                 num_refinement_blocks: int, heads: Sequence[int], ffn_expansion_factor: float, bias: bool,
                 LayerNorm_type: str, decoder: bool, keep_unused_convs: bool, name: str) -> None:  # noqa: N803
        super().__init__()
        dims = level_dims(name, dim, num_blocks, heads)
        # the prompt-fusion blocks run with heads[2] at widths that include the prompt channels
        check_heads(f'{name} prompt fusion', [dims[1] + PROMPT_DIMS[0], dims[2] + PROMPT_DIMS[1],
                                              dims[3] + PROMPT_DIMS[2]], [heads[2]] * 3)
        if inp_channels != out_channels:
            raise ValueError(f'{name} adds the input image to its output, so inp_channels ({inp_channels}) must '
                             f'equal out_channels ({out_channels})')
        self.name = name
        self.decoder = decoder

        def stage(n: int, level: int, channels: int) -> nn.Sequential:
            return transformer_stage(n, channels, heads[level], ffn_expansion_factor, bias, LayerNorm_type)

        def fusion(channels: int) -> TransformerBlock:
            return TransformerBlock(channels, heads[2], ffn_expansion_factor, bias, LayerNorm_type)

        def conv1x1(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)

        # registration order = the official state_dict order
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        if decoder:
            self.prompt1 = PromptGenBlock(PROMPT_DIMS[0], PROMPT_LEN, PROMPT_SIZES[0], dims[1])
            self.prompt2 = PromptGenBlock(PROMPT_DIMS[1], PROMPT_LEN, PROMPT_SIZES[1], dims[2])
            self.prompt3 = PromptGenBlock(PROMPT_DIMS[2], PROMPT_LEN, PROMPT_SIZES[2], dims[3])
        if keep_unused_convs:
            self.chnl_reduce1 = conv1x1(64, 64)
            self.chnl_reduce2 = conv1x1(128, 128)
            self.chnl_reduce3 = conv1x1(320, 256)
            self.reduce_noise_channel_1 = conv1x1(dims[0] + 64, dims[0])
        self.encoder_level1 = stage(num_blocks[0], 0, dims[0])
        self.down1_2 = Downsample(dims[0])
        if keep_unused_convs:
            self.reduce_noise_channel_2 = conv1x1(dims[1] + 128, dims[1])
        self.encoder_level2 = stage(num_blocks[1], 1, dims[1])
        self.down2_3 = Downsample(dims[1])
        if keep_unused_convs:
            self.reduce_noise_channel_3 = conv1x1(dims[2] + 256, dims[2])
        self.encoder_level3 = stage(num_blocks[2], 2, dims[2])
        self.down3_4 = Downsample(dims[2])
        self.latent = stage(num_blocks[3], 3, dims[3])

        self.up4_3 = Upsample(dims[2])  # takes the prompt-fused latent, reduced to 4*dim channels
        self.reduce_chan_level3 = conv1x1(dims[1] + dims[2], dims[2])
        self.noise_level3 = fusion(dims[3] + PROMPT_DIMS[2])
        self.reduce_noise_level3 = conv1x1(dims[3] + PROMPT_DIMS[2], dims[2])
        self.decoder_level3 = stage(num_blocks[2], 2, dims[2])

        self.up3_2 = Upsample(dims[2])
        self.reduce_chan_level2 = conv1x1(dims[2], dims[1])
        self.noise_level2 = fusion(dims[2] + PROMPT_DIMS[1])
        self.reduce_noise_level2 = conv1x1(dims[2] + PROMPT_DIMS[1], dims[2])
        self.decoder_level2 = stage(num_blocks[1], 1, dims[1])

        self.up2_1 = Upsample(dims[1])
        self.noise_level1 = fusion(dims[1] + PROMPT_DIMS[0])
        self.reduce_noise_level1 = conv1x1(dims[1] + PROMPT_DIMS[0], dims[1])
        self.decoder_level1 = stage(num_blocks[0], 0, dims[1])
        self.refinement = stage(num_refinement_blocks, 0, dims[1])
        self.output = nn.Conv2d(dims[1], out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    @staticmethod
    def _fuse(x: torch.Tensor, prompt: nn.Module, block: nn.Module, reduce: nn.Module) -> torch.Tensor:
        return reduce(block(torch.cat([x, prompt(x)], 1)))

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in [0, 1] with H, W multiples of 8 -> restored ``(B, C, H, W)``."""
        if not self.decoder:
            raise RuntimeError(f'{self.name}(decoder=False) cannot run: as in the official code its level-4 '
                               f'upsampler expects the prompt-fused latent; build it with decoder=True')
        require_multiple(inp_img, self.size_multiple, self.name)
        enc1 = self.encoder_level1(self.patch_embed(inp_img))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        latent = self._fuse(latent, self.prompt3, self.noise_level3, self.reduce_noise_level3)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec3 = self._fuse(dec3, self.prompt2, self.noise_level2, self.reduce_noise_level2)

        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec2 = self._fuse(dec2, self.prompt1, self.noise_level1, self.reduce_noise_level1)

        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        return self.output(self.refinement(dec1)) + inp_img


@ARCH_REGISTRY.register()
class PromptIR(PromptIRNet):
    """Official PromptIR (va1shn9v). The released all-in-one checkpoints use ``decoder=True`` (35.6M params).

    Args: as :class:`~basicsr.archs.restormer_arch.Restormer` (no dual-pixel option), plus
        decoder: insert the prompt blocks before decoder levels 3, 2, 1 (needed to run; see module doc).
    """

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', decoder: bool = False) -> None:  # noqa: N803
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, decoder, keep_unused_convs=True,
                         name='PromptIR')


@ARCH_REGISTRY.register(name='PromptIR_MiOIR')
class PromptIRMiOIR(PromptIRNet):
    """PromptIR as copied in MiOIR: no unused convolutions, ``decoder=True`` by default (35.4M params)."""

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', decoder: bool = True) -> None:  # noqa: N803
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, decoder, keep_unused_convs=False,
                         name='PromptIR_MiOIR')
