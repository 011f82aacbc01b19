"""MATLAB ``imresize`` (bicubic, with antialiasing) and the BT.601 colour conversions, at BasicSR's module path.

``imresize`` reproduces MATLAB's bicubic resize: Keys' cubic kernel (a = -0.5), 4 taps widened by
``1 / scale`` when shrinking with antialiasing, symmetric (edge-repeating) borders, and output size
``ceil(size * scale)``. It is separable: each axis is one dense (out x in) weight matrix applied by a
matrix product, computed in float32 like BasicSR's loop version (outputs agree to ~1e-7).
"""
from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import torch

from basicsr.utils.color_util import bgr2ycbcr, rgb2ycbcr, ycbcr2bgr, ycbcr2rgb

__all__ = ['cubic', 'resize_matrix', 'imresize', 'rgb2ycbcr', 'bgr2ycbcr', 'ycbcr2rgb', 'ycbcr2bgr']


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' bicubic kernel with a = -0.5 (MATLAB's): support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax ** 2, ax ** 3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1).to(x.dtype)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return near + far


def resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """(out_length, in_length) float32 matrix of one axis of MATLAB's bicubic resize.

    Output pixel i (1-based) is centred at ``i / scale + 0.5 * (1 - 1 / scale)`` in input coordinates;
    taps falling outside the image are folded back symmetrically (index -1 -> 0, n -> n - 1).
    """
    shrink_aa = scale < 1 and antialiasing
    width = 4.0 / scale if shrink_aa else 4.0
    x = torch.linspace(1, out_length, out_length)
    centre = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(centre - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float32)[None, :]   # 1-based input positions
    dist = centre[:, None] - idx
    weights = scale * cubic(dist * scale) if shrink_aa else cubic(dist)
    weights = weights / weights.sum(1, keepdim=True)
    zero_based = idx.long() - 1
    period = 2 * in_length
    folded = zero_based % period
    folded = torch.where(folded >= in_length, period - 1 - folded, folded)
    mat = torch.zeros(out_length, in_length, dtype=torch.float32)
    mat.scatter_add_(1, folded, weights)
    return mat


@torch.no_grad()
def imresize(img: Union[np.ndarray, torch.Tensor], scale: float,
             antialiasing: bool = True) -> Union[np.ndarray, torch.Tensor]:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an image in [0, 1] (not clipped, not rounded).

    Args:
        img: numpy (H, W, C) or (H, W), or tensor (C, H, W) or (H, W).
        scale: the same factor for height and width; the output is ``ceil(H * scale) x ceil(W * scale)``.
        antialiasing: widen the kernel when shrinking (MATLAB's default).
    Returns:
        float32 in the input's kind and layout: numpy (H', W', C) / (H', W'), or tensor (C, H', W') / (H', W').
    """
    is_numpy = isinstance(img, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(img)).float() if is_numpy else img.float()
    flat = t.dim() == 2
    if flat:
        t = t[None] if not is_numpy else t[:, :, None]
    chw = t.permute(2, 0, 1) if is_numpy else t
    _, h, w = chw.shape
    out_hw: Tuple[int, int] = (math.ceil(h * scale), math.ceil(w * scale))
    mat_h = resize_matrix(h, out_hw[0], scale, antialiasing).to(chw.device)
    mat_w = resize_matrix(w, out_hw[1], scale, antialiasing).to(chw.device)
    out = torch.matmul(torch.matmul(mat_h, chw), mat_w.t())
    if is_numpy:
        out = out[0] if flat else out.permute(1, 2, 0)
        return np.ascontiguousarray(out.cpu().numpy())
    return out[0] if flat else out
