"""The HINet/NAFNet "grids" test: run the network on training-size crops and average the overlaps.

Crop positions follow the official rule (HINet ``ImageRestorationModel.grids``, reused by TLC's local
Restormer attention): ``n = ceil(size / crop)`` crops per axis with step ``ceil((size - crop) / (n - 1))``,
the last crop snapped to the border. Every crop has the same weight, so seams are averaged, not
blended; this is the baseline TLC is compared against.
"""
from __future__ import annotations

import math
from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['grid_starts', 'grid_windows', 'grids_forward']


def grid_starts(size: int, crop: int) -> List[int]:
    """Start offsets of the official grid along one axis of length ``size`` (``crop`` is clipped to it)."""
    crop = min(crop, size)
    n = (size - 1) // crop + 1
    step = crop if n == 1 else math.ceil((size - crop) / (n - 1) - 1e-8)
    starts, i = [], 0
    while True:
        if i + crop >= size:
            starts.append(size - crop)
            return starts
        starts.append(i)
        i += step


def grid_windows(h: int, w: int, crop: Tuple[int, int]) -> List[Tuple[int, int]]:
    """(top, left) of every crop in row-major order (the official order)."""
    return [(i, j) for i in grid_starts(h, crop[0]) for j in grid_starts(w, crop[1])]


def grids_forward(fn: Callable[[Tensor], Tensor], x: Tensor, crop_size: int | Sequence[int],
                  batch: int = 1) -> Tensor:
    """Apply ``fn`` to official-grid crops of ``x`` (B, C, H, W) and average the outputs where they overlap.

    Args:
        fn: maps (N, C, h, w) to (N, C', h * s, w * s) for an integer scale s (found from the first call).
        crop_size: crop side (int) or (h, w); usually the training patch size. Clipped to the image.
        batch: crops per call of ``fn``.
    Returns (B, C', H * s, W * s).
    """
    crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    h, w = x.shape[-2:]
    ch, cw = min(crop[0], h), min(crop[1], w)
    windows = grid_windows(h, w, (ch, cw))
    out = count = None
    scale = 1
    for first in range(0, len(windows), batch):
        chunk = windows[first:first + batch]
        parts = torch.cat([x[:, :, i:i + ch, j:j + cw] for i, j in chunk], dim=0)
        preds = fn(parts).split(x.shape[0], dim=0)
        if out is None:
            scale = preds[0].shape[-2] // ch
            out = preds[0].new_zeros(x.shape[0], preds[0].shape[1], h * scale, w * scale)
            count = preds[0].new_zeros(1, 1, h * scale, w * scale)
        for (i, j), pred in zip(chunk, preds):
            rows, cols = slice(i * scale, (i + ch) * scale), slice(j * scale, (j + cw) * scale)
            out[:, :, rows, cols] += pred
            count[:, :, rows, cols] += 1
    return out / count
