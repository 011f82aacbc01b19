"""Blocks shared by the super-resolution and window-transformer networks (SwinIR, Uformer, (M)SRResNet).

* residual conv blocks without batch norm and pixel-shuffle upsamplers (EDSR / SRResNet family);
* the Swin window machinery used by SwinIR and Uformer: window partition / reverse on ``(B, H, W, C)``
  maps, the relative-position-bias table with its index buffer, the shifted-window attention mask,
  windowed multi-head attention, the two-layer MLP and stochastic depth.

Attribute and buffer names are the official ones (``relative_position_bias_table``,
``relative_position_index``, ``fc1``/``fc2``, ``conv1``/``conv2``), so official checkpoints load with
``strict=True``.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

__all__ = ['default_init_weights', 'ResidualBlockNoBN', 'residual_stack', 'Upsample', 'UpsampleOneStep',
           'DropPath', 'drop_path_or_identity', 'Mlp', 'window_partition', 'window_reverse', 'shifted_window_mask',
           'relative_position_index', 'RelativePositionBias', 'windowed_attention', 'trunc_normal_init']

# value added to attention logits between tokens that a cyclic shift brought together (official constant)
MASK_VALUE = -100.0


# ------------------------------------------------------------------------------------------ initialisation
@torch.no_grad()
def default_init_weights(modules: Union[nn.Module, Iterable[nn.Module]], scale: float = 1.0,
                         bias_fill: float = 0.0, **kwargs) -> None:
    """Kaiming-normal init of every Conv2d / Linear inside ``modules``, weights scaled by ``scale``
    (0.1 keeps deep residual stacks close to identity at start), biases filled with ``bias_fill``;
    batch-norm weights set to 1. ``kwargs`` go to ``nn.init.kaiming_normal_`` (BasicSR's signature)."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, **kwargs)
                m.weight.mul_(scale)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
            else:
                continue
            if m.bias is not None:
                m.bias.fill_(bias_fill)


@torch.no_grad()
def trunc_normal_init(module: nn.Module) -> None:
    """Transformer init (apply with ``net.apply``): Linear weights ~ N(0, 0.02) truncated to [-2, 2],
    zero biases; LayerNorm weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ------------------------------------------------------------------------------------------ conv blocks
class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv2(relu(conv1(x)))`` with two 3x3 convs of ``num_feat`` channels, no batch norm."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0, pytorch_init: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        if not pytorch_init:
            default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        # x * 1.0 == x exactly: skip the multiply (a full-tensor pass per block) in the common case
        return x + out if self.res_scale == 1 else x + out * self.res_scale


def residual_stack(num_block: int, num_feat: int) -> nn.Sequential:
    """``num_block`` :class:`ResidualBlockNoBN` in a row (checkpoint names ``body.<i>.conv1``...)."""
    return nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))


def _check_scale(scale: int, supported: str) -> None:
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f'upscale must be a positive integer, got {scale!r}; supported: {supported}')


class Upsample(nn.Sequential):
    """Pixel-shuffle upsampler: ``log2(scale)`` x (3x3 conv to 4C, shuffle 2) for powers of two, one
    (3x3 conv to 9C, shuffle 3) for 3; scale 1 is empty (identity). Children are ``0, 1, ...``."""

    def __init__(self, scale: int, num_feat: int) -> None:
        _check_scale(scale, '2**n and 3')
        layers = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f'upscale {scale} is not supported by the pixel-shuffle upsampler; supported: 2**n and 3')
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """Lightweight upsampler: one 3x3 conv straight to ``scale**2 * num_out_ch`` channels, one shuffle."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        _check_scale(scale, 'any positive integer')
        super().__init__(nn.Conv2d(num_feat, scale ** 2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


# ------------------------------------------------------------------------------------------ transformer parts
class DropPath(nn.Module):
    """Stochastic depth per sample: in training, zero a sample's residual branch with probability
    ``drop_prob`` and scale the kept ones by ``1 / (1 - drop_prob)``; identity in eval."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


def drop_path_or_identity(rate: float) -> nn.Module:
    """The official blocks use ``nn.Identity`` when the rate is 0 (no module state either way)."""
    return DropPath(rate) if rate > 0 else nn.Identity()


class Mlp(nn.Module):
    """Token MLP ``fc2(drop(act(fc1(x))))`` followed by dropout, on ``(..., in_features)``."""

    def __init__(self, in_features: int, hidden_features: Optional[int] = None, out_features: Optional[int] = None,
                 act_layer: type = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features or in_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: Tensor, win: int) -> Tensor:
    """``(B, H, W, C)`` -> ``(B * H/win * W/win, win, win, C)``, windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // win, win, w // win, win, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, win, win, c)


def window_reverse(windows: Tensor, win: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, win, win, C)`` -> ``(B, H, W, C)``."""
    b = windows.shape[0] // ((h // win) * (w // win))
    x = windows.view(b, h // win, w // win, win, win, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def shifted_window_mask(h: int, w: int, win: int, shift: int, device=None, dtype=torch.float32) -> Tensor:
    """Attention mask of shifted-window attention on an ``h x w`` map: ``(nW, win*win, win*win)``, 0 between
    tokens from the same region before the cyclic shift, -100 between tokens the roll brought together."""
    region = torch.zeros((1, h, w, 1), device=device, dtype=dtype)
    bands = (slice(0, -win), slice(-win, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, win).reshape(-1, win * win)  # may be a non-contiguous view
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, MASK_VALUE).masked_fill(diff == 0, 0.0)


def relative_position_index(win_h: int, win_w: int) -> Tensor:
    """``(win_h*win_w, win_h*win_w)`` int64: for each token pair, the row of the bias table holding their
    relative offset ``(dy + win_h - 1) * (2*win_w - 1) + (dx + win_w - 1)``."""
    ys, xs = torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + win_h - 1
    dx = xs[:, None] - xs[None, :] + win_w - 1
    return dy * (2 * win_w - 1) + dx


class RelativePositionBias(nn.Module):
    """Base of window-attention modules: owns the learned ``relative_position_bias_table``
    ``((2*Wh-1)*(2*Ww-1), heads)`` and the ``relative_position_index`` buffer (kept in the state dict
    because the official checkpoints contain it). Subclasses add their projections after calling this
    ``__init__``, which keeps the official state-dict order."""

    def __init__(self, window_size: Tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.num_heads = num_heads
        win_h, win_w = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * win_h - 1) * (2 * win_w - 1), num_heads))
        self.register_buffer('relative_position_index', relative_position_index(win_h, win_w))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def position_bias(self) -> Tensor:
        """``(heads, N, N)`` bias added to the attention logits of every window (N = Wh * Ww)."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1)


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, bias: Optional[Tensor], mask: Optional[Tensor],
                       dropout: float = 0.0) -> Tensor:
    """Multi-head attention inside windows with an additive position bias and optional shift mask.

    Args:
        q: ``(B*nW, heads, N, d)``; k, v: ``(B*nW, heads, M, d)``.
        scale: logit scale (``d ** -0.5`` unless overridden).
        bias: ``(heads, N, M)`` relative position bias or None.
        mask: ``(nW, N, M)`` of 0 / -100 or None.
        dropout: attention dropout probability (training only).
    Returns ``(B*nW, heads, N, d)``: ``softmax(scale * q k^T + bias + mask) v``.
    """
    bn, heads, n, m = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, bias)):
        # training: the step-by-step form backpropagates faster on CPU than the fused kernel with a
        # learned additive mask (which materialises the expanded mask gradient)
        logits = (q * scale) @ k.transpose(-2, -1)
        if bias is not None:
            logits = logits + bias.unsqueeze(0)
        if mask is not None:
            n_win = mask.shape[0]
            logits = logits.view(bn // n_win, n_win, heads, n, m) + mask.unsqueeze(1).unsqueeze(0)
            logits = logits.view(bn, heads, n, m)
        attn = logits.softmax(dim=-1)
        return (F.dropout(attn, dropout) if dropout > 0 else attn) @ v
    attn_bias = bias
    if mask is not None:
        # one additive term per (window, head): bias + mask, expanded over the images of the batch
        n_win = mask.shape[0]
        combined = mask.unsqueeze(1) if bias is None else bias.unsqueeze(0) + mask.unsqueeze(1)
        attn_bias = combined.unsqueeze(0).expand(bn // n_win, n_win, heads, n, m).reshape(bn, heads, n, m)
    elif bias is not None:
        attn_bias = bias.unsqueeze(0).expand(bn, heads, n, m)  # a stride-0 view; faster than broadcasting
    if attn_bias is not None:
        attn_bias = attn_bias.to(q.dtype)  # fp32 bias/mask with half-precision activations (autocast)
    # inference: the fused kernel computes the same softmax(scale * q k^T + bias + mask) v (equal to float
    # rounding) faster on CPU
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout, scale=scale)
