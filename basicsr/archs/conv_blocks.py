"""Convolutional building blocks shared by NAFNet, Baseline, NAFSSR, HINet and MPRNet.

Attribute names follow the official implementations so that official checkpoints load with
``strict=True``. Every global average pooling is a plain ``nn.AdaptiveAvgPool2d(1)`` module (never a
functional call) so that the TLC converter (:mod:`basicsr.inference.tlc`) can find it and replace it by
a local window.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import List, Sequence
import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def conv_same(in_channels: int, out_channels: int, kernel_size: int, bias: bool = False,
              stride: int = 1) -> nn.Conv2d:
    """Convolution padded by ``kernel_size // 2`` (keeps H, W at stride 1); MPRNet's and HINet's ``conv``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


# ---------------------------------------------------------------------------------------------- norms
def is_channels_last(x: Tensor) -> bool:
    """True for a 4-D map stored NHWC (``speed.channels_last``) and not also plain NCHW-contiguous."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def channel_layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Layer norm over the channels of a (B, C, H, W) map with the fused kernel, on its NHWC view.

    For an NHWC input the view is free and the result stays NHWC: one pass instead of the five
    element-wise passes of mean/var over dim 1. An NCHW input is copied to NHWC and
    back (returned NCHW-contiguous). Same value as the composite formula up to float rounding (~1e-6).
    """
    out = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, eps).permute(0, 3, 1, 2)
    return out if is_channels_last(x) else out.contiguous()


class _LayerNorm2dFunction(torch.autograd.Function):
    """Channel layer norm with a hand-written backward that keeps only ``y`` and ``var`` alive.

    Same forward and gradients as the composite ops (the gradient is the exact analytic one); it is
    used because it stores two tensors instead of the five intermediates autograd would keep.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + eps).sqrt()
        ctx.eps = eps
        ctx.save_for_backward(y, var, weight)
        return weight.view(1, -1, 1, 1) * y + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        y, var, weight = ctx.saved_tensors
        g = grad_out * weight.view(1, -1, 1, 1)
        # d/dx of (x - mean) / std: remove the mean of g and its projection on y, then divide by std
        grad_x = (g - y * (g * y).mean(1, keepdim=True) - g.mean(1, keepdim=True)) / (var + ctx.eps).sqrt()
        return grad_x, (grad_out * y).sum(dim=(0, 2, 3)), grad_out.sum(dim=(0, 2, 3)), None


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of a (B, C, H, W) map, with per-channel affine (NAFNet).

    NCHW inputs use the official composite formula (bit-compatible with the reference code); NHWC inputs
    (``speed.channels_last``) the fused kernel, within ~1e-6 of it.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if is_channels_last(x):  # the fused kernel on the free NHWC view (speed.channels_last)
            return channel_layer_norm(x, self.weight, self.bias, self.eps)
        return _LayerNorm2dFunction.apply(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f'{self.weight.numel()}, eps={self.eps}'


# ---------------------------------------------------------------------------------------- attention
class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: (B, 2C, H, W) -> (B, C, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def simplified_channel_attention(channels: int) -> nn.Sequential:
    """NAFNet's SCA: global average pool then a 1x1 conv, no non-linearity; returns (B, C, 1, 1)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1, bias=True))


def _excitation(channels: int, hidden: int, bias: bool) -> List[nn.Module]:
    """1x1 conv down to ``hidden``, ReLU, 1x1 conv back, sigmoid: the squeeze-excitation weights."""
    return [nn.Conv2d(channels, hidden, 1, bias=bias), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=bias), nn.Sigmoid()]


def squeeze_excitation(channels: int, hidden: int, bias: bool = True) -> nn.Sequential:
    """Pool + excitation in one ``nn.Sequential`` (Baseline's ``se``); returns weights (B, C, 1, 1)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), *_excitation(channels, hidden, bias))


class CALayer(nn.Module):
    """Channel attention of RCAN/MPRNet: ``x * sigmoid(W2 relu(W1 avgpool(x)))``."""

    def __init__(self, channel: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(*_excitation(channel, channel // reduction, bias))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class SupervisedAttention(nn.Module):
    """Supervised attention module (SAM) of MPRNet and HINet.

    Predicts a restored image ``img = conv2(x) + x_img`` from the features and gates the features with
    ``sigmoid(conv3(img))``. Returns ``(features (B, C, H, W), img (B, img_channels, H, W))``.
    """

    def __init__(self, n_feat: int, kernel_size: int = 3, bias: bool = True, img_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = conv_same(n_feat, n_feat, kernel_size, bias=bias)
        self.conv2 = conv_same(n_feat, img_channels, kernel_size, bias=bias)
        self.conv3 = conv_same(img_channels, n_feat, kernel_size, bias=bias)

    def forward(self, x: Tensor, x_img: Tensor):
        img = self.conv2(x) + x_img
        gated = self.conv1(x) * torch.sigmoid(self.conv3(img))
        return gated + x, img


# ------------------------------------------------------------------------------------ NAFNet blocks
class _TwoBranchBlock(nn.Module, ABC):
    """Shared body of NAFNet's ``NAFBlock`` and the paper's ``BaselineBlock``.

    Spatial branch: norm1 -> 1x1 expand -> 3x3 depthwise -> activation -> channel attention -> 1x1;
    channel branch: norm2 -> 1x1 expand -> activation -> 1x1. Each branch is added back scaled by a
    learned per-channel factor (``beta``, ``gamma``, zero at init). Subclasses pick the activation and
    the attention (and their official attribute names); a gating activation halves the channels.
    """

    attention_name = ''
    activation_name = ''
    gated = False

    def __init__(self, c: int, dw_expand: int, ffn_expand: int, drop_out_rate: float) -> None:
        super().__init__()
        dw_channel = c * dw_expand
        ffn_channel = c * ffn_expand
        mid = dw_channel // 2 if self.gated else dw_channel
        self.conv1 = nn.Conv2d(c, dw_channel, 1, bias=True)
        self.conv2 = nn.Conv2d(dw_channel, dw_channel, 3, padding=1, groups=dw_channel, bias=True)
        self.conv3 = nn.Conv2d(mid, c, 1, bias=True)
        self.add_module(self.attention_name, self.make_attention(dw_channel))
        self.add_module(self.activation_name, self.make_activation())
        self.conv4 = nn.Conv2d(c, ffn_channel, 1, bias=True)
        self.conv5 = nn.Conv2d(ffn_channel // 2 if self.gated else ffn_channel, c, 1, bias=True)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0. else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0. else nn.Identity()
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))

    @abstractmethod
    def make_attention(self, dw_channel: int) -> nn.Module:
        """The channel-attention branch (NAFNet: simplified CA; Baseline: squeeze-excitation)."""

    @abstractmethod
    def make_activation(self) -> nn.Module:
        """The nonlinearity (NAFNet: SimpleGate; Baseline: GELU)."""

    def forward(self, inp: Tensor) -> Tensor:
        act = getattr(self, self.activation_name)
        attention = getattr(self, self.attention_name)
        x = act(self.conv2(self.conv1(self.norm1(inp))))
        x = self.dropout1(self.conv3(x * attention(x)))
        y = inp + x * self.beta
        x = self.dropout2(self.conv5(act(self.conv4(self.norm2(y)))))
        return y + x * self.gamma


class NAFBlock(_TwoBranchBlock):
    """NAFNet block: SimpleGate instead of activations, simplified channel attention ``sca``."""

    attention_name = 'sca'
    activation_name = 'sg'
    gated = True

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.) -> None:
        super().__init__(c, dw_expand, ffn_expand, drop_out_rate)

    def make_attention(self, dw_channel: int) -> nn.Module:
        return simplified_channel_attention(dw_channel // 2)

    def make_activation(self) -> nn.Module:
        return SimpleGate()


class BaselineBlock(_TwoBranchBlock):
    """The NAFNet paper's baseline block: GELU and squeeze-excitation channel attention ``se``."""

    attention_name = 'se'
    activation_name = 'gelu'
    gated = False

    def __init__(self, c: int, dw_expand: int = 1, ffn_expand: int = 2, drop_out_rate: float = 0.) -> None:
        super().__init__(c, dw_expand, ffn_expand, drop_out_rate)

    def make_attention(self, dw_channel: int) -> nn.Module:
        return squeeze_excitation(dw_channel, dw_channel // 2, bias=True)

    def make_activation(self) -> nn.Module:
        return nn.GELU()


class NAFUNet(nn.Module):
    """The U-shaped body shared by NAFNet and Baseline (official attribute names).

    intro 3x3 conv -> per level: blocks, stride-2 2x2 conv doubling channels -> middle blocks -> per
    level: 1x1 conv + PixelShuffle(2) halving channels, add the skip, blocks -> ending 3x3 conv, plus the
    input. Input (B, img_channel, H, W), any H, W: zero-padded on the bottom/right to a multiple of
    ``2 ** len(enc_blk_nums)`` and cropped back, as officially. Output has the input's shape.
    """

    def __init__(self, block: type, img_channel: int, width: int, middle_blk_num: int,
                 enc_blk_nums: Sequence[int], dec_blk_nums: Sequence[int], **block_kwargs) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f'enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} must have '
                             f'the same length (one decoder level per encoder level)')
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1, bias=True)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1, bias=True)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()

        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[block(chan, **block_kwargs) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks.extend([block(chan, **block_kwargs) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[block(chan, **block_kwargs) for _ in range(num)]))
        self.padder_size = 2 ** len(self.encoders)

    def forward(self, inp: Tensor) -> Tensor:
        h, w = inp.shape[-2:]
        inp = F.pad(inp, (0, -w % self.padder_size, 0, -h % self.padder_size))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :h, :w]
