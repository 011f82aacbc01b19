"""Input-size rules of networks that downsample: check that H, W fit, or reflect-pad them inside forward.

A network that halves the resolution ``n`` times needs H and W divisible by ``2**n``. Networks whose official
code pads (UniRestorer's Restormer) call :func:`pad_to_multiple`; the others call :func:`require_multiple`
so that a wrong size fails with a message naming the multiple instead of a shape error deep inside.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ['pad_to_multiple', 'reflect_pad', 'require_multiple']


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
    Inputs smaller than their padding (a 3x3 image padded to 16) are reflected repeatedly (each pass pads
    at most ``size - 1``, what one reflection can), and a side of 1 pixel is replicated; where one
    reflection suffices the result is exactly ``F.pad(..., mode='reflect')``.
    """
    if x.dim() != 4:
        raise ValueError(f'{name} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    return reflect_pad(x, (0, pad_w, 0, pad_h)), (h, w)


def reflect_pad(x: torch.Tensor, pads: Tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, pads, mode='reflect')`` (pads: left, right, top, bottom) for any pad size.

    One reflection pads at most ``size - 1`` per side; larger pads reflect the padded result again
    (a mirrored periodic extension), and a 1-pixel side is replicated. Pads one reflection can do give
    exactly ``F.pad(..., mode='reflect')``.
    """
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f'cannot pad an empty {h}x{w} input')
    left, right, top, bottom = pads
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        if (h == 1 and (top or bottom)) or (w == 1 and (left or right)):  # nothing to mirror: replicate
            one_col, one_row = w == 1, h == 1
            steps = (left * one_col, right * one_col, top * one_row, bottom * one_row)
            x = F.pad(x, steps, mode='replicate')
        else:
            steps = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
            x = F.pad(x, steps, mode='reflect')
        left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), steps))
    return x
