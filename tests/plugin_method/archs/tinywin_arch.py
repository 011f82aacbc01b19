"""TinyWinSR: a residual SR network that, like window-attention networks, needs inputs divisible by its window."""
import torch
from torch import nn

from basicsr.archs.arch_util import (ResidualBlockNoBN, Upsample, default_init_weights, make_layer, to_2tuple,
                                     trunc_normal_)
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class TinyWinSR(nn.Module):
    """conv -> residual blocks -> per-window channel gate -> pixel-shuffle upsampler -> conv."""

    def __init__(self, upscale: int = 2, num_feat: int = 8, num_block: int = 2, window_size: int = 8,
                 num_in_ch: int = 3, num_out_ch: int = 3) -> None:
        super().__init__()
        self.window_size = to_2tuple(window_size)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        self.gate = nn.Linear(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        default_init_weights([self.conv_first, self.conv_last], 0.1)
        trunc_normal_(self.gate.weight, std=.02)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        wh, ww = self.window_size
        if h % wh or w % ww:
            raise ValueError(f'TinyWinSR needs inputs divisible by the window {self.window_size}, got {h}x{w}')
        feat = self.conv_first(x)
        feat = self.body(feat) + feat
        b, c = feat.shape[:2]
        windows = feat.view(b, c, h // wh, wh, w // ww, ww).mean((3, 5))        # (B, C, h/wh, w/ww)
        gate = torch.sigmoid(self.gate(windows.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        feat = feat * gate.repeat_interleave(wh, 2).repeat_interleave(ww, 3)
        return self.conv_last(self.upsample(feat))
