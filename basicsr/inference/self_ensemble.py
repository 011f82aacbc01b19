"""x8 self-ensemble (geometric test-time augmentation): run the network on the 8 flips/rotations of the
input (the dihedral group of the square), undo each transform on the output and average.

The 8 passes run one after another, so memory stays at one pass (plus the running sum); rotations by
90 degrees swap H and W, so a network with a size multiple gets both orientations of a valid size.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ['dihedral', 'dihedral_inverse', 'self_ensemble']


def dihedral(x: Tensor, k: int) -> Tensor:
    """Transform ``k`` in 0..7 of (..., H, W): a horizontal flip if ``k >= 4``, then ``k % 4`` quarter turns."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def dihedral_inverse(x: Tensor, k: int) -> Tensor:
    """Undo :func:`dihedral` ``k``."""
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean over the 8 transforms of ``fn(transform(x))`` mapped back; ``fn``: (B, C, H, W) -> (B, C', H', W')."""
    total = None
    for k in range(8):
        out = dihedral_inverse(fn(dihedral(x, k)), k)
        total = out if total is None else total.add_(out)
    return total / 8
