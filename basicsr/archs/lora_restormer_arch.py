"""LoRARestormer: Restormer whose convolutions carry low-rank (LoRA) updates, as UniRestorer's experts.

Official code: mrluin/UniRestorer ``basicsr/models/archs/restormer_lora_arch.py`` (convolutions from
``loralib`` 0.1.2 ``ConvLoRA``; no loralib dependency here). A LoRA convolution computes a conv with weight
``W + (B @ A).view(W.shape) * lora_alpha / r``; ``W`` is frozen, ``A`` and ``B`` are trained.

Merging: in eval mode (``merge_weights=True``) the update is folded into one effective conv weight once and
reused, as the official layer does, and ``train()`` drops it again. Unlike the official layer, which adds
the update to ``W`` in place (and subtracts it again on ``train()``), the parameter ``W`` itself is never
modified: ``state_dict()`` always holds the official (unmerged) layout, even from a network kept in eval mode
such as an EMA copy, so a saved checkpoint never carries the update twice, and W does not drift by rounding
over eval/train cycles. The outputs are the same floating-point operations; the price is one extra copy of
the conv weights while in eval mode.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from basicsr.archs.restormer_arch import RestormerUNet
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['LoRAConv2d', 'LoRARestormer', 'lora_state_from_base']


class LoRAConv2d(nn.Module):
    """``nn.Conv2d`` (child ``conv``) plus a rank-``r`` update (parameters ``lora_A``, ``lora_B``).

    Shapes follow loralib's ConvLoRA for a ``k x k`` kernel: ``lora_A (r*k, in_channels*k)``,
    ``lora_B (out_channels//groups*k, r*k)``; their product reshaped to the conv weight is the update.
    With ``r == 0`` the layer is a plain convolution (only ``conv.*`` parameters).

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d`` (square kernels only).
        r: rank of the update; 0 disables it.
        lora_alpha: the update is scaled by ``lora_alpha / r``.
        lora_dropout: accepted for the official signature; loralib's ConvLoRA never applies it, so it has no
            effect here either.
        merge_weights: fold the update into one conv weight while in eval mode (numerically the same).
        **conv_kwargs: ``stride``, ``padding``, ``groups``, ``bias``... for the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, r: int = 0, lora_alpha: float = 1,
                 lora_dropout: float = 0.0, merge_weights: bool = True, **conv_kwargs) -> None:
        super().__init__()
        if not isinstance(kernel_size, int):
            raise ValueError(f'LoRAConv2d needs an int kernel_size (square kernel), got {kernel_size!r}')
        if r < 0 or lora_dropout < 0:
            raise ValueError(f'LoRAConv2d needs r >= 0 and lora_dropout >= 0, got r={r}, lora_dropout={lora_dropout}')
        self.r = r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.merge_weights = merge_weights
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, **conv_kwargs)
        if r > 0:
            groups = self.conv.groups
            self.lora_A = nn.Parameter(torch.empty(r * kernel_size, in_channels * kernel_size))
            self.lora_B = nn.Parameter(torch.zeros(out_channels // groups * kernel_size, r * kernel_size))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # B = 0: the update starts at zero
            self.scaling = lora_alpha / r
            self.conv.weight.requires_grad = False  # only the low-rank factors (and bias) are trained
        self._merged: Optional[torch.Tensor] = None
        self._merged_key: Optional[Tuple] = None

    def delta_weight(self) -> torch.Tensor:
        """The LoRA update, shaped like ``conv.weight``."""
        return (self.lora_B @ self.lora_A).view(self.conv.weight.shape) * self.scaling

    def _source_key(self) -> Tuple:
        # changes whenever a source tensor is written in place (optimizer step, load_state_dict) or replaced
        # (.to()); a weight folded under inference_mode cannot serve a later autograd-enabled forward
        tensors = (self.conv.weight, self.lora_A, self.lora_B)
        return (torch.is_inference_mode_enabled(),) + tuple((t.data_ptr(), t._version, t.dtype, t.device)
                                                            for t in tensors)

    @property
    def merged(self) -> bool:
        """True while eval mode holds a folded weight (made by the first eval forward; ``train()`` drops it)."""
        return self._merged is not None

    def merged_weight(self) -> torch.Tensor:
        """``W + update`` as one tensor (cached in eval mode when ``merge_weights``)."""
        if self.training or not self.merge_weights:
            return self.conv.weight + self.delta_weight()
        key = self._source_key()
        if self._merged is None or self._merged_key != key:
            with torch.no_grad():
                self._merged = self.conv.weight + self.delta_weight()
            self._merged_key = key
        return self._merged

    def train(self, mode: bool = True) -> 'LoRAConv2d':
        super().train(mode)
        if mode:
            self._merged, self._merged_key = None, None
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.r == 0:
            return self.conv(x)
        return self.conv._conv_forward(x, self.merged_weight(), self.conv.bias)

    def extra_repr(self) -> str:
        return f'r={self.r}, lora_alpha={self.lora_alpha}, merge_weights={self.merge_weights}'


def _per_level(name: str, value: Sequence, what: str) -> Sequence:
    if len(value) != 4:
        raise ValueError(f'LoRARestormer: {what} needs 4 entries (one per level), got {name}={list(value)}')
    return value


@ARCH_REGISTRY.register()
class LoRARestormer(RestormerUNet):
    """Restormer with a LoRA update on every convolution except the dual-pixel skip (official layout).

    Args: those of :class:`~basicsr.archs.restormer_arch.Restormer` (without ``global_residual``: the input
    is always added), plus
        r: LoRA rank per level (a convolution uses the level of its input).
        lora_alpha: LoRA scale numerator per level (update scaled by ``lora_alpha / r``).
        lora_dropout: accepted for the official signature; never applied (as in loralib's ConvLoRA).
        merge_weights: fold the updates into the conv weights in eval mode.
    Input ``(B, inp_channels, H, W)`` in [0, 1], any H, W (reflect-padded to a multiple of 8 internally).
    ``dual_pixel_task`` behaves as in swz30's Restormer (1x1 skip from the embedding, no residual); the
    official LoRA copy builds that skip but never calls it, which cannot run with 6 input channels.
    """

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = 'WithBias', dual_pixel_task: bool = False,  # noqa: N803
                 r: Sequence[int] = (8, 8, 8, 8), lora_alpha: Sequence[float] = (8, 8, 8, 8),
                 lora_dropout: float = 0.0, merge_weights: bool = True) -> None:
        r = _per_level('r', r, 'the rank')
        lora_alpha = _per_level('lora_alpha', lora_alpha, 'the scale')

        def conv_for_level(level: int):
            return partial(LoRAConv2d, r=r[level], lora_alpha=lora_alpha[level], lora_dropout=lora_dropout,
                           merge_weights=merge_weights)

        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task, global_residual=True,
                         conv_for_level=conv_for_level, name='LoRARestormer')


def lora_state_from_base(net: LoRARestormer, base: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A state dict for ``net`` whose base weights are those of a plain Restormer state dict ``base`` (conv
    ``x.weight`` -> ``x.conv.weight``) and whose LoRA factors are ``net``'s own (initially a zero update):
    UniRestorer's LoRA experts start from the root expert."""
    out = {}
    for key, value in net.state_dict().items():
        src = key if key in base else key.replace('.conv.', '.')
        if src in base and 'lora_' not in key:
            if base[src].shape != value.shape:
                raise ValueError(f'lora_state_from_base: {src} has shape {tuple(base[src].shape)}, the LoRA network '
                                 f'expects {tuple(value.shape)} for {key}: build it with the base configuration')
            out[key] = base[src]
        elif 'lora_' in key:
            out[key] = value
        else:
            raise KeyError(f'lora_state_from_base: the base state dict has no {src} (for {key}); is it a Restormer '
                           f'of the same configuration?')
    return out
