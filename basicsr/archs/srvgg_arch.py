"""``SRVGGNetCompact`` (Real-ESRGAN's compact x4 networks) with BasicSR's arguments and parameter names.

``num_conv + 2`` 3x3 convs with activations (``body.<i>``), a pixel shuffle to ``upscale`` and the nearest
upsampled input added. Registered as ``SRVGGNetCompact_basicsr`` like BasicSR (Real-ESRGAN's own class keeps the
plain name; ``type: SRVGGNetCompact`` finds this one when no plug-in defines it).
"""
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

_ACTIVATIONS = {'relu': lambda c: nn.ReLU(inplace=True), 'prelu': lambda c: nn.PReLU(num_parameters=c),
                'leakyrelu': lambda c: nn.LeakyReLU(negative_slope=0.1, inplace=True)}


@ARCH_REGISTRY.register(suffix='basicsr')
class SRVGGNetCompact(nn.Module):
    """(B, num_in_ch, H, W) -> (B, num_out_ch, upscale H, upscale W); ``act_type`` 'relu', 'prelu' or 'leakyrelu'."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = 'prelu') -> None:
        super().__init__()
        if act_type not in _ACTIVATIONS:
            raise ValueError(f'SRVGGNetCompact: act_type must be one of {sorted(_ACTIVATIONS)}, got {act_type!r}')
        self.num_in_ch, self.num_out_ch, self.num_feat = num_in_ch, num_out_ch, num_feat
        self.num_conv, self.upscale, self.act_type = num_conv, upscale, act_type
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _ACTIVATIONS[act_type](num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _ACTIVATIONS[act_type](num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode='nearest')
