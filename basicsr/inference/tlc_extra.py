"""TLC converters beyond the official TLC (an ablation; applied only with ``to_local(..., extra=True)`` or
``tlc: {extra: true}``). None of the papers' numbers use them.

* PromptIR ``PromptGenBlock``: the prompt weights come from a global mean of the features; here from the
  local mean over the calibrated window, so each pixel gets its own softmax mixture of the prompts.
* DSRIR ``PatchAttention``: the map is split into a fixed ``grid`` of cells, so cells grow with the
  image. Here the *cell size* is fixed at the training cell size (training feature size / grid) and the
  number of cells follows the image (``round(H / cell)``; the per-cell gate is nearest-upsampled).
  With the training grid the output is the original one.
* MiOIR ``PromptExtractor`` (adaptive prompts, ``*_AP``): the 64-d prompt is a global mean of the
  extractor's 1/8-resolution features; here it is the local mean over the calibrated window, a channel-last
  map ``(B, h, w, 64)``, so every modulation site gets per-pixel scale/shift maps (resized bilinearly to its
  features by ``basicsr.archs.prompt_blocks.modulate``). Explicit prompts (``*_EP``) read a fixed 128x128
  task map, not the image, so they are left alone.
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from basicsr.inference.tlc import LocalWindow, TLCSettings, expand_local
from basicsr.utils.registry import TLC_CONVERTER_REGISTRY

__all__ = ['LocalPromptGen', 'LocalPatchAttention', 'LocalPromptPool']


class LocalPromptGen(LocalWindow):
    """PromptIR prompt generation with per-pixel prompt weights from local means (keeps the parameters)."""

    def __init__(self, block: nn.Module, settings: TLCSettings) -> None:
        super().__init__(settings)
        self.prompt_param = block.prompt_param
        self.linear_layer = block.linear_layer
        self.conv3x3 = block.conv3x3

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        means, ratio = self.local_mean(x)
        logits = self.linear_layer(means.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, L, h', w')
        weights = expand_local(F.softmax(logits, dim=1), ratio, size)
        _, length, dim, ph, pw = self.prompt_param.shape
        # bilinear resizing is linear: resizing each prompt then mixing equals mixing then resizing
        prompts = F.interpolate(self.prompt_param.reshape(1, length * dim, ph, pw), size, mode='bilinear')
        prompt = (weights[:, :, None] * prompts.reshape(1, length, dim, *size)).sum(dim=1)
        return self.conv3x3(prompt)


class LocalPatchAttention(LocalWindow):
    """DSRIR patch attention with cells of the training size; ``kernel_size`` holds the cell size."""

    def __init__(self, block: nn.Module, settings: TLCSettings) -> None:
        super().__init__(settings)
        self.grid = tuple(block.grid)
        self.conv_du = block.conv_du

    def calibrate(self, h: int, w: int) -> None:
        self.kernel_size = (max(1, h // self.grid[0]), max(1, w // self.grid[1]))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        cell = self.window_for(x)
        cells = (max(1, round(h / cell[0])), max(1, round(w / cell[1])))
        gate = self.conv_du(F.adaptive_avg_pool2d(x, cells))
        return x * F.interpolate(gate, size=(h, w), mode='nearest')

    def extra_repr(self) -> str:
        return f'grid={self.grid}, cell_size={self.kernel_size}, train_size={self.train_size}'


class LocalPromptPool(LocalWindow):
    """MiOIR prompt pooling from local means: ``(B, C, h, w) -> (B, h, w, C)``, or the global ``(B, C)``
    when the window covers the map (then the network's output is the unconverted one)."""

    def forward(self, x: Tensor) -> Tensor:
        compact, ratio = self.local_mean(x)
        if ratio == (0, 0):
            return compact.flatten(1)
        return expand_local(compact, ratio, x.shape[-2:]).permute(0, 2, 3, 1)


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.prompt_blocks.PromptExtractor')
def convert_prompt_extractor(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """Visit an adaptive-prompt extractor's pooling (``extra`` only); keep explicit-prompt ones whole."""
    return None if settings.extra and module.in_channels != 1 else module


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.prompt_blocks.PromptPool')
def convert_prompt_pool(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """MiOIR prompt pooling from local means (reached only through :func:`convert_prompt_extractor`)."""
    return LocalPromptPool(settings)


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.promptir_arch.PromptGenBlock')
def convert_prompt_gen(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """PromptIR prompt weights from local means (``extra`` only)."""
    return LocalPromptGen(module, settings) if settings.extra else None


@TLC_CONVERTER_REGISTRY.register(name='basicsr.archs.dsrir_arch.PatchAttention')
def convert_patch_attention(module: nn.Module, settings: TLCSettings) -> Optional[nn.Module]:
    """DSRIR patch attention with a fixed cell size (``extra`` only). Otherwise the module is kept whole:
    with a 1x1 grid its pooling is global, and its gate expects one value per cell."""
    return LocalPatchAttention(module, settings) if settings.extra else module
