"""Input-size rules of networks that downsample: check that H, W fit, or reflect-pad them inside forward.

A network that halves the resolution ``n`` times needs H and W divisible by ``2**n``. Networks whose official
code pads (UniRestorer's Restormer) call :func:`pad_to_multiple`; the others call :func:`require_multiple`
so that a wrong size fails with a message naming the multiple instead of a shape error deep inside.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ['pad_to_multiple', 'require_multiple']


def require_multiple(x: torch.Tensor, multiple: int, name: str) -> None:
    """Raise ValueError unless ``x`` is ``(B, C, H, W)`` with H and W divisible by ``multiple``."""
    if x.dim() != 4:
        raise ValueError(f'{name} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f'{name} needs H and W to be multiples of {multiple}, got {h}x{w}; pad the input '
                         f'(e.g. reflect-pad to {-(-h // multiple) * multiple}x{-(-w // multiple) * multiple}) '
                         f'and crop the output')


def pad_to_multiple(x: torch.Tensor, multiple: int, name: str) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Reflect-pad the bottom and right of ``(B, C, H, W)`` ``x`` so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for cropping the output back. Sizes that are
    already multiples come back unchanged (the same tensor), so results on them equal the unpadded network's.
    """
    if x.dim() != 4:
        raise ValueError(f'{name} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if pad_h >= h or pad_w >= w:
        # reflection needs more pixels than it mirrors
        raise ValueError(f'{name} reflect-pads H and W to a multiple of {multiple}; a {h}x{w} input is too small '
                         f'for that (each side must exceed its padding: use at least {multiple // 2 + 1} pixels, '
                         f'or a multiple of {multiple})')
    return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect'), (h, w)
