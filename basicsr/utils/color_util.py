"""MATLAB-compatible BT.601 colour conversions with BasicSR's signatures (``basicsr.utils.color_util``).

Studio-swing YCbCr as MATLAB ``rgb2ycbcr``: for R, G, B in [0, 1], Y = 16 + 65.481 R + 128.553 G + 24.966 B
(Y in [16, 235], Cb/Cr in [16, 240] on the 0..255 scale). The numpy functions take uint8 (0..255) or float32
([0, 1]) HWC images and return the same dtype and scale (uint8 results are rounded); the BGR variants are the
RGB ones on channel-reversed images. The metrics use the same luma constants from
:mod:`basicsr.metrics.metric_util`.
"""
from __future__ import annotations

import numpy as np
import torch

from basicsr.metrics.metric_util import BT601_Y_COEFFS_RGB, BT601_Y_OFFSET

# rows: R, G, B; columns: Y, Cb, Cr (inputs in [0, 1], outputs on the 0..255 scale)
_RGB2YCBCR = np.array([BT601_Y_COEFFS_RGB, [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]).T
_YCBCR_OFFSET = np.array([BT601_Y_OFFSET, 128.0, 128.0])
# MATLAB ycbcr2rgb as BasicSR writes it (constants rounded to 8 decimals): rows Y, Cb, Cr -> columns R, G, B
_YCBCR2RGB = np.array([[0.00456621, 0.00456621, 0.00456621], [0, -0.00153632, 0.00791071],
                       [0.00625893, -0.00318811, 0]])
_YCBCR2RGB_OFFSET = np.array([-222.921, 135.576, -276.836])


def _to_unit(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255; float32 as is; anything else is an error (as BasicSR)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.float32:
        return img.astype(np.float32)
    raise TypeError(f'colour conversion takes np.uint8 (0..255) or np.float32 ([0, 1]) images, got {img.dtype}')


def _from_255(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values on the 0..255 scale back to ``dtype``: uint8 rounded, float32 divided by 255."""
    if dtype == np.uint8:
        return img.round().astype(np.uint8)
    return (img / 255.0).astype(np.float32)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """RGB (H, W, 3) -> YCbCr (H, W, 3), or Y (H, W) with ``y_only``; dtype and scale as the input."""
    unit = _to_unit(img)
    out = unit @ BT601_Y_COEFFS_RGB + BT601_Y_OFFSET if y_only else unit @ _RGB2YCBCR + _YCBCR_OFFSET
    return _from_255(out, img.dtype)


def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BGR (H, W, 3), as OpenCV reads images -> YCbCr (H, W, 3) in Y, Cb, Cr order, or Y (H, W) with ``y_only``."""
    return rgb2ycbcr(np.ascontiguousarray(img[..., ::-1]), y_only)


def ycbcr2rgb(img: np.ndarray) -> np.ndarray:
    """YCbCr (H, W, 3) -> RGB (H, W, 3); dtype and scale as the input."""
    out = (_to_unit(img) * 255.0) @ _YCBCR2RGB * 255.0 + _YCBCR2RGB_OFFSET
    return _from_255(out, img.dtype)


def ycbcr2bgr(img: np.ndarray) -> np.ndarray:
    """YCbCr (H, W, 3) -> BGR (H, W, 3); dtype and scale as the input."""
    return np.ascontiguousarray(ycbcr2rgb(img)[..., ::-1])


def rgb2ycbcr_pt(img: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """RGB tensor (N, 3, H, W) in [0, 1] -> YCbCr (N, 3, H, W) or Y (N, 1, H, W), in [0, 1] (not rounded)."""
    weight = torch.from_numpy(_RGB2YCBCR[:, :1] if y_only else _RGB2YCBCR).to(img)
    offset = torch.from_numpy(_YCBCR_OFFSET[:1] if y_only else _YCBCR_OFFSET).to(img).view(1, -1, 1, 1)
    out = torch.matmul(img.permute(0, 2, 3, 1), weight).permute(0, 3, 1, 2) + offset
    return out / 255.0
