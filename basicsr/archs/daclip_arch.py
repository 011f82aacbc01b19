"""DA-CLIP's degradation encoder: the image path UniRestorer routes on, without open_clip.

Luo et al., "Controlling Vision-Language Models for Multi-Task Image Restoration", ICLR 2024 (official code:
Algolzw/daclip-uir ``da-clip/src/open_clip/{daclip_model,transformer}.py``; mrluin/UniRestorer ships a copy).
DA-CLIP adds to a frozen CLIP a trainable copy of its image tower, ``visual_control`` (a ViT whose transformer
is wrapped in a ``ControlTransformer`` holding one zero-initialised Linear per block). UniRestorer uses
``DaCLIP.encode_image(x, control=True)[1]``: the class token of ``visual_control`` after ``ln_post`` and the
``width -> output_dim`` projection, **not** L2-normalised -- a ``(B, 512)`` degradation feature for ViT-B/32.

Only that path is built here. ``encode_image`` also runs the frozen CLIP tower, fed the zero-Linear outputs
(the "control hiddens"), but UniRestorer discards that result, so neither the CLIP tower nor the hiddens
change the feature. The zero Linears are still built (``visual_control.transformer.zero_modules``) so the
official state dict loads strictly; they are never called.

Loading official weights: ``daclip.pt`` holds ``visual_control.*`` (loaded) and ``clip.*`` (the frozen CLIP:
image and text towers), ``visual.*`` (the same image tower again under DaCLIP's alias) and ``logit_scale``,
which this module ignores because the degradation feature does not depend on them (see
:data:`DACLIP_IGNORED_PREFIXES`). The same holds for the ``daclip_model.*`` entries of UniRestorer's
``model.pth``. ``load_state_dict(strict=True)`` drops exactly those entries and checks every other one.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.pretrained import IgnoresCheckpointEntries
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['DACLIPImageEncoder', 'DACLIP_IGNORED_PREFIXES', 'CLIP_MEAN', 'CLIP_STD']

Tensor = torch.Tensor

#: parts of a DA-CLIP checkpoint the degradation feature does not use: the frozen CLIP (``clip.*``: image
#: tower, text tower, its logit scale), DaCLIP's alias of the CLIP image tower (``visual.*``) and its own
#: ``logit_scale`` (contrastive training only)
DACLIP_IGNORED_PREFIXES = ('clip.', 'visual.', 'logit_scale')
#: OpenAI CLIP normalisation of RGB in [0, 1] (the DA-CLIP preprocessing)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block (sequence-first ``(L, B, width)`` tokens): attention, then a GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([('c_fc', nn.Linear(width, hidden)), ('gelu', nn.GELU()),
                                              ('c_proj', nn.Linear(hidden, width))]))

    def forward(self, x: Tensor) -> Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """``layers`` residual attention blocks."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class ControlTransformer(nn.Module):
    """DA-CLIP's wrapper: the transformer plus one zero-initialised Linear per block.

    The Linears make the control hiddens for the frozen CLIP tower; the degradation feature never uses them
    (kept for the official state dict).
    """

    def __init__(self, transformer: Transformer, width: int, layers: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.zero_modules = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        for p in self.zero_modules.parameters():
            nn.init.zeros_(p)

    def forward(self, x: Tensor) -> Tensor:
        return self.transformer(x)


class ControlVisionTransformer(nn.Module):
    """CLIP ViT with a control transformer: patchify, class token + positions, ln_pre, blocks, ln_post, proj."""

    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int, mlp_ratio: float,
                 output_dim: int) -> None:
        super().__init__()
        self.image_size = image_size
        grid = image_size // patch_size
        scale = width ** -0.5
        # parameters first, in the official order (they precede the submodules in the state dict)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = ControlTransformer(Transformer(width, layers, heads, mlp_ratio), width, layers)
        self.ln_post = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, grid*grid, width)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype,
                                                             device=x.device)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj


@ARCH_REGISTRY.register()
class DACLIPImageEncoder(IgnoresCheckpointEntries, nn.Module):
    """DA-CLIP degradation feature (defaults: ``daclip_ViT-B-32``, 94.9M parameters, output 512-d).

    Args:
        image_size: input side (square); patch_size: patch side; width, layers, heads, mlp_ratio: the ViT;
        output_dim: feature size (the projection's output).
    Input ``(B, 3, image_size, image_size)``: RGB after CLIP preprocessing (``(x - CLIP_MEAN) / CLIP_STD`` of
    an image in [0, 1]; the official pipeline resizes the short side to 224 bicubic and centre-crops 224).
    Output ``(B, output_dim)``, not normalised. :meth:`preprocess` makes the input from an image.
    """

    ignored_checkpoint_prefixes = DACLIP_IGNORED_PREFIXES

    def __init__(self, image_size: int = 224, patch_size: int = 32, width: int = 768, layers: int = 12,
                 heads: int = 12, mlp_ratio: float = 4.0, output_dim: int = 512) -> None:
        super().__init__()
        if image_size % patch_size or width % heads:
            raise ValueError(f'DACLIPImageEncoder: image_size must be a multiple of patch_size and width a '
                             f'multiple of heads, got image_size={image_size}, patch_size={patch_size}, '
                             f'width={width}, heads={heads}')
        self.output_dim = output_dim
        self.visual_control = ControlVisionTransformer(image_size, patch_size, width, layers, heads, mlp_ratio,
                                                       output_dim)

    def preprocess(self, lq: Tensor) -> Tensor:
        """The official DA-CLIP eval transform on ``(B, 3, H, W)`` RGB in [0, 1]: bicubic resize of the short
        side to ``image_size`` (long side ``int(image_size * long / short)``, antialiased, clamped to [0, 1]),
        centre crop ``image_size`` (torchvision's rounding), CLIP mean / std. The official transform resamples
        the 8-bit image with PIL, which rounds and clips between its two passes; on BSD68 images this float
        version differs by 0.3 8-bit levels on average (at most a few levels at sharp edges)."""
        size = self.visual_control.image_size
        h, w = lq.shape[-2:]
        short, long = (h, w) if h <= w else (w, h)
        long = int(size * long / short)
        new = (size, long) if h <= w else (long, size)
        x = lq if (h, w) == new else F.interpolate(lq, size=new, mode='bicubic', align_corners=False,
                                                   antialias=True).clamp(0, 1)
        top, left = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
        x = x[:, :, top:top + size, left:left + size]
        mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, image: Tensor) -> Tensor:
        size = self.visual_control.image_size
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, size, size):
            raise ValueError(f'DACLIPImageEncoder expects (B, 3, {size}, {size}) CLIP-preprocessed images, got '
                             f'shape {tuple(image.shape)} (resize the short side to {size} and centre-crop)')
        return self.visual_control(image)
