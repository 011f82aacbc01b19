"""NAFSSR (Chu et al., "NAFSSR: Stereo Image Super-Resolution Using NAFNet", CVPRW 2022).

Official code: megvii-research/NAFNet, basicsr/models/archs/NAFSSR_arch.py. A plain (no downsampling)
stack of NAF blocks applied to each view with shared weights; stereo cross-attention modules (SCAM)
exchange information between the left and right views along each row. The official ``NAFSSR`` class is
always TLC-converted (``train_size`` defaults to (1, 6, 30, 90)); here that conversion is the generic
:func:`basicsr.inference.tlc.convert_local_` applied to the plain network :class:`NAFNetSR`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.conv_blocks import LayerNorm2d, NAFBlock
from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor


class SCAM(nn.Module):
    """Stereo cross-attention: every pixel of a row attends to the pixels of the same row in the other view.

    Takes and returns ``(x_l, x_r)``, each (B, C, H, W); the attended features are added back scaled by
    the learned per-channel ``beta`` (right-to-left) and ``gamma`` (left-to-right), zero at init.
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = c ** -0.5
        self.norm_l = LayerNorm2d(c)
        self.norm_r = LayerNorm2d(c)
        self.l_proj1 = nn.Conv2d(c, c, 1)
        self.r_proj1 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.l_proj2 = nn.Conv2d(c, c, 1)
        self.r_proj2 = nn.Conv2d(c, c, 1)

    def forward(self, x_l: Tensor, x_r: Tensor) -> Tuple[Tensor, Tensor]:
        q_l = self.l_proj1(self.norm_l(x_l)).permute(0, 2, 3, 1)    # B, H, W, C
        q_r_t = self.r_proj1(self.norm_r(x_r)).permute(0, 2, 1, 3)  # B, H, C, W
        v_l = self.l_proj2(x_l).permute(0, 2, 3, 1)
        v_r = self.r_proj2(x_r).permute(0, 2, 3, 1)
        attention = torch.matmul(q_l, q_r_t) * self.scale           # B, H, W_l, W_r
        r2l = torch.matmul(torch.softmax(attention, dim=-1), v_r)
        l2r = torch.matmul(torch.softmax(attention.transpose(-1, -2), dim=-1), v_l)
        return x_l + r2l.permute(0, 3, 1, 2) * self.beta, x_r + l2r.permute(0, 3, 1, 2) * self.gamma


class DropPath(nn.Module):
    """Stochastic depth over a multi-view block: in training, skip ``module`` for the whole batch with
    probability ``drop_rate`` and otherwise rescale its update by ``1 / (1 - drop_rate)``; identity
    wrapper in eval. (The official code draws with NumPy; this draws with torch so one seed controls it.)"""

    def __init__(self, drop_rate: float, module: nn.Module) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        self.module = module

    def forward(self, *feats: Tensor) -> Tuple[Tensor, ...]:
        if not self.training or self.drop_rate <= 0:
            return self.module(*feats)
        if torch.rand(()).item() < self.drop_rate:
            return feats
        factor = 1. / (1 - self.drop_rate)
        return tuple(x + factor * (new - x) for x, new in zip(feats, self.module(*feats)))

    def extra_repr(self) -> str:
        return f'drop_rate={self.drop_rate}'


class NAFBlockSR(nn.Module):
    """A NAF block applied to every view (shared weights), then SCAM fusion if ``fusion``."""

    def __init__(self, c: int, fusion: bool = False, drop_out_rate: float = 0.) -> None:
        super().__init__()
        self.blk = NAFBlock(c, drop_out_rate=drop_out_rate)
        self.fusion = SCAM(c) if fusion else None

    def forward(self, *feats: Tensor) -> Tuple[Tensor, ...]:
        feats = tuple(self.blk(x) for x in feats)
        return self.fusion(*feats) if self.fusion is not None else feats


@ARCH_REGISTRY.register()
class NAFNetSR(nn.Module):
    """NAF blocks for super-resolution, single view or stereo (``dual``), without TLC.

    Args:
        up_scale: upscaling factor (pixel shuffle).
        width: channels; num_blks: blocks; img_channel: channels of one view.
        drop_path_rate: stochastic-depth probability of every block; drop_out_rate: dropout in blocks.
        fusion_from / fusion_to: blocks ``i`` with ``fusion_from <= i <= fusion_to`` end with SCAM.
        dual: the input holds two views stacked on channels (left first).
    Input (B, V * img_channel, H, W), V = 2 if ``dual`` else 1, any H, W, values in [0, 1]; output
    (B, V * img_channel, up_scale * H, up_scale * W): per view a residual on the bilinear upsampling.
    """

    def __init__(self, up_scale: int = 4, width: int = 48, num_blks: int = 16, img_channel: int = 3,
                 drop_path_rate: float = 0., drop_out_rate: float = 0., fusion_from: int = -1,
                 fusion_to: int = -1, dual: bool = False) -> None:
        super().__init__()
        self.dual = dual
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1, bias=True)
        self.body = nn.ModuleList([
            DropPath(drop_path_rate, NAFBlockSR(width, fusion=fusion_from <= i <= fusion_to,
                                                drop_out_rate=drop_out_rate))
            for i in range(num_blks)])
        self.up = nn.Sequential(nn.Conv2d(width, img_channel * up_scale ** 2, 3, padding=1, bias=True),
                                nn.PixelShuffle(up_scale))
        self.up_scale = up_scale

    def forward(self, inp: Tensor) -> Tensor:
        inp_hr = F.interpolate(inp, scale_factor=self.up_scale, mode='bilinear')
        views = inp.chunk(2, dim=1) if self.dual else (inp,)
        feats = tuple(self.intro(v) for v in views)
        for block in self.body:
            feats = block(*feats)
        return torch.cat([self.up(f) for f in feats], dim=1) + inp_hr


@ARCH_REGISTRY.register()
class NAFSSR(NAFNetSR):
    """Stereo NAFSSR: :class:`NAFNetSR` with two RGB views (6 input channels, left first), SCAM after
    every block by default, and TLC-converted like the official class.

    Args (beyond :class:`NAFNetSR`'s ``up_scale``, ``width``, ``num_blks``, ``drop_path_rate``,
    ``drop_out_rate``, ``fusion_from``, ``fusion_to``):
        train_size: ``(N, 6, H, W)`` of the training crops; the channel-attention pooling becomes a local
            mean over ``1.5 x (H, W)`` windows (official default (1, 6, 30, 90)). ``None`` keeps global
            pooling (the unconverted network).
        base_size: TLC window at the input resolution, int or (H, W); default 1.5 x the training H, W
            (the official rule; the official class has no such argument).
        fast_imp: TLC's approximate (strided) box filter.
    The conversion adds no parameters: official checkpoints load strict either way.
    """

    def __init__(self, up_scale: int = 4, width: int = 48, num_blks: int = 16, drop_path_rate: float = 0.,
                 drop_out_rate: float = 0., fusion_from: int = -1, fusion_to: int = 1000,
                 train_size: Optional[Sequence[int]] = (1, 6, 30, 90),
                 base_size: Optional[Union[int, Sequence[int]]] = None, fast_imp: bool = False) -> None:
        super().__init__(up_scale=up_scale, width=width, num_blks=num_blks, img_channel=3,
                         drop_path_rate=drop_path_rate, drop_out_rate=drop_out_rate, fusion_from=fusion_from,
                         fusion_to=fusion_to, dual=True)
        if train_size is None:
            if fast_imp or base_size is not None:
                raise ValueError('NAFSSR: fast_imp / base_size configure TLC, which needs a train_size '
                                 '(e.g. [1, 6, 30, 90]); train_size=None keeps global pooling')
            return
        if not isinstance(train_size, (list, tuple)) or len(train_size) != 4 or train_size[1] != 6:
            raise ValueError(f'NAFSSR: train_size must be [N, 6, H, W] (two RGB views), got {train_size!r}')
        # imported here: the TLC package is needed only by networks that convert themselves
        from basicsr.inference.tlc import convert_local_
        convert_local_(self, train_size=tuple(int(v) for v in train_size), base_size=base_size, fast_imp=fast_imp)
