"""Overlapped tiling with smooth blending, for images too large to restore in one piece.

Tiles of ``size`` overlap by at least ``overlap`` pixels (the stride is rounded down to the network's
size multiple, so every tile sits on the network's downsampling grid) and the last tile of a row or
column is snapped to the border. The output is a weighted average of the tile outputs. A tile's weight
along an axis, on a side that has a neighbour, is 0 for the first ``margin = (overlap - blend) // 2``
pixels, rises linearly over ``blend`` pixels and is 1 inside; sides on the image border keep weight 1.
The weights are separable (row ramp x column ramp).

Exactness: pixels closer than ``margin`` to a tile's inner edge get weight 0, so for a network whose
receptive-field radius is at most ``margin`` (a purely convolutional net), the tiled output equals the
whole-image output up to float rounding. The default ``blend = 2`` (a two-pixel cross-fade in the middle
of the overlap) keeps that true for every receptive field smaller than the overlap; a wider ``blend``
gives a softer seam for networks with global operators (whose tiles disagree) and stays exact for
receptive-field radii up to ``(overlap - blend) // 2``.

Memory: the input, the output and a (1, 1, H, W) weight sum live on the input's device; tiles go to
the network's device one batch at a time, so the network never sees more than ``batch`` tiles.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['tile_starts', 'tile_weights', 'tile_forward', 'check_tile_options']


def check_tile_options(size: int, overlap: int, multiple: int = 1, blend: Optional[int] = None,
                       batch: int = 1, where: str = 'tile') -> int:
    """Validate tiling options; returns the blend width. Messages name the option (``<where>.size``)."""
    for key, value, low in (('size', size, 1), ('overlap', overlap, 0), ('batch', batch, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f'{where}.{key} must be an int >= {low}, got {value!r}')
    if overlap >= size:
        raise ValueError(f'{where}.overlap ({overlap}) must be smaller than {where}.size ({size})')
    if size % multiple:
        raise ValueError(f'{where}.size ({size}) must be a multiple of the network size multiple {multiple} '
                         f'(e.g. {max(multiple, size - size % multiple)})')
    if (size - overlap) // multiple == 0:
        raise ValueError(f'{where}.size - {where}.overlap ({size - overlap}) must be at least the network size '
                         f'multiple {multiple} so that tiles advance')
    if blend is None:
        blend = max(1, min(2, overlap))
    if not isinstance(blend, int) or blend < 1 or (overlap and blend > overlap):
        raise ValueError(f'{where}.blend must be an int in [1, overlap={overlap}], got {blend!r}')
    return blend


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> List[int]:
    """Start offsets along one axis: stride ``tile - overlap`` rounded down to ``multiple``, the last
    tile ending at the border. ``tile`` is clipped to ``length``."""
    tile = min(tile, length)
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(tile: int, lead: bool, trail: bool, overlap: int, blend: int) -> Tensor:
    """1-D weight of one tile: ramps on the sides that have a neighbour (``lead`` = before, ``trail`` = after)."""
    margin = (overlap - blend) // 2
    i = torch.arange(tile, dtype=torch.float32)
    w = torch.ones(tile)
    if lead:
        w = torch.minimum(w, ((i - margin + 1) / (blend + 1)).clamp(0, 1))
    if trail:
        w = torch.minimum(w, ((tile - i - margin) / (blend + 1)).clamp(0, 1))
    return w


def tile_weights(starts: List[int], tile: int, length: int, overlap: int, blend: int, scale: int = 1) -> List[Tensor]:
    """Per-tile 1-D weights along one axis, at output resolution (``scale`` x)."""
    tile = min(tile, length)
    ramps = []
    for s in starts:
        w = _ramp(tile, lead=s > 0, trail=s + tile < length, overlap=overlap, blend=blend)
        ramps.append(w.repeat_interleave(scale) if scale > 1 else w)
    return ramps


def tile_forward(fn: Callable[[Tensor], Tensor], x: Tensor, size: int, overlap: int, batch: int = 1,
                 multiple: int = 1, blend: Optional[int] = None,
                 device: Optional[torch.device] = None) -> Tensor:
    """Apply ``fn`` to overlapping tiles of ``x`` and blend the outputs.

    Args:
        fn: (N, C, t, t') -> (N, C', t * s, t' * s) for an integer scale s (found from the first batch).
        x: (B, C, H, W) input; H and W must be multiples of ``multiple`` (pad first).
        size / overlap: tile side and minimum overlap in input pixels.
        batch: tiles per call of ``fn`` (each image of a batch counts: a call gets ``batch * B`` images).
        multiple: the network's size multiple (tile size and stride are kept on it).
        blend: ramp width (default 2), see the module notes.
        device: where ``fn`` runs (tiles are moved there); default ``x.device``.
    Returns (B, C', H * s, W * s) on ``x``'s device, float32 unless ``fn`` returns another float type.
    """
    blend = check_tile_options(size, overlap, multiple, blend, batch)
    b, _, h, w = x.shape
    if h % multiple or w % multiple:
        raise ValueError(f'tiling needs H, W ({h}x{w}) to be multiples of {multiple}: pad the input first')
    th, tw = min(size, h), min(size, w)
    rows, cols = tile_starts(h, size, overlap, multiple), tile_starts(w, size, overlap, multiple)
    positions: List[Tuple[int, int, int, int]] = [(r, c, i, j) for r, i in enumerate(rows)
                                                  for c, j in enumerate(cols)]
    device = device or x.device
    out = weight_sum = None
    row_w = col_w = None
    scale = 1
    for first in range(0, len(positions), batch):
        chunk = positions[first:first + batch]
        tiles = torch.cat([x[:, :, i:i + th, j:j + tw] for _, _, i, j in chunk], dim=0).to(device)
        preds = fn(tiles)
        if out is None:
            scale = preds.shape[-2] // th
            if preds.shape[-2] != th * scale or preds.shape[-1] != tw * scale or scale < 1:
                raise ValueError(f'tiling needs an integer output/input size ratio; a {th}x{tw} tile gave '
                                 f'{tuple(preds.shape[-2:])}')
            out = torch.zeros(b, preds.shape[1], h * scale, w * scale, dtype=preds.dtype, device=x.device)
            weight_sum = torch.zeros(1, 1, h * scale, w * scale, dtype=preds.dtype, device=x.device)
            row_w = tile_weights(rows, size, h, overlap, blend, scale)
            col_w = tile_weights(cols, size, w, overlap, blend, scale)
        preds = preds.to(x.device)
        for n, (r, c, i, j) in enumerate(chunk):
            weight = (row_w[r][:, None] * col_w[c][None, :]).to(device=x.device, dtype=preds.dtype)
            rs, cs = slice(i * scale, (i + th) * scale), slice(j * scale, (j + tw) * scale)
            out[:, :, rs, cs] += preds[n * b:(n + 1) * b] * weight
            weight_sum[:, :, rs, cs] += weight
    return out.div_(weight_sum)
