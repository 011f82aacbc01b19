"""BasicSR's image conventions for code written against BasicSR: numpy images in OpenCV's BGR order.

The toolbox itself keeps numpy images RGB (:mod:`basicsr.utils.img_util`); these functions carry BasicSR's
signatures and defaults (``bgr2rgb=True``, ``rgb2bgr=True``, uint8 rounding ``(x * 255).round()``) and are
exported as ``basicsr.utils.img2tensor``, ``tensor2img``, ``imfrombytes``, ``imwrite`` and ``crop_border``.
"""
from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

Arrays = Union[np.ndarray, List[np.ndarray]]
Tensors = Union[torch.Tensor, List[torch.Tensor]]

_IMREAD_FLAGS = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE, 'unchanged': cv2.IMREAD_UNCHANGED}


def img2tensor(imgs: Arrays, bgr2rgb: bool = True, float32: bool = True) -> Tensors:
    """HWC numpy image(s) -> CHW tensor(s); 3-channel images go BGR -> RGB with ``bgr2rgb``; values unchanged."""
    def one(img: np.ndarray) -> torch.Tensor:
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] == 3 and bgr2rgb:
            img = img[:, :, ::-1].astype(np.float32 if img.dtype == np.float64 else img.dtype)
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return t.float() if float32 else t
    return [one(i) for i in imgs] if isinstance(imgs, list) else one(imgs)


def _grid(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> one (C, H', W') mosaic as BasicSR's ``make_grid`` call: ``int(sqrt(N))`` images per
    row, 2-pixel zero padding around every image."""
    n, c, h, w = t.shape
    if n == 1:
        return t[0]
    ncol = min(int(math.sqrt(n)), n)
    nrow = int(math.ceil(n / ncol))
    pad = 2
    grid = t.new_zeros(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for k in range(n):
        r, col = divmod(k, ncol)
        grid[:, r * (h + pad) + pad:r * (h + pad) + pad + h, col * (w + pad) + pad:col * (w + pad) + pad + w] = t[k]
    return grid


def tensor2img(tensor: Tensors, rgb2bgr: bool = True, out_type: type = np.uint8,
               min_max: Tuple[float, float] = (0, 1)) -> Arrays:
    """Tensor(s) (CHW, 1CHW, NCHW or HW) -> HWC numpy image(s), clamped to ``min_max`` and rescaled to [0, 1];
    uint8 output is ``(x * 255).round()``; colour output in BGR with ``rgb2bgr``; gray comes back (H, W).
    A list in gives a list out, unless it has one element."""
    if not (torch.is_tensor(tensor) or (isinstance(tensor, list) and all(torch.is_tensor(t) for t in tensor))):
        raise TypeError(f'tensor2img takes a tensor or a list of tensors, got {type(tensor).__name__}')
    out = []
    for t in ([tensor] if torch.is_tensor(tensor) else tensor):
        t = t.squeeze(0).float().detach().cpu().clamp(*min_max)
        t = (t - min_max[0]) / (min_max[1] - min_max[0])
        if t.dim() == 4:
            t = _grid(t)
        if t.dim() == 3:
            img = t.numpy().transpose(1, 2, 0)
            if img.shape[2] == 1:
                img = img[:, :, 0]
            elif rgb2bgr:
                img = img[:, :, ::-1]
        elif t.dim() == 2:
            img = t.numpy()
        else:
            raise TypeError(f'tensor2img supports 2-D, 3-D and 4-D tensors, got {t.dim()}-D')
        if out_type == np.uint8:
            img = (img * 255.0).round()
        out.append(np.ascontiguousarray(img.astype(out_type)))
    return out[0] if len(out) == 1 else out


def imfrombytes(content: bytes, flag: str = 'color', float32: bool = False) -> np.ndarray:
    """Decode encoded image bytes with OpenCV ('color' -> BGR HWC, 'grayscale' -> HW, 'unchanged');
    ``float32`` divides by 255."""
    if flag not in _IMREAD_FLAGS:
        raise ValueError(f'imfrombytes: flag must be one of {list(_IMREAD_FLAGS)}, got {flag!r}')
    img = cv2.imdecode(np.frombuffer(content, np.uint8), _IMREAD_FLAGS[flag])
    if img is None:
        raise ValueError(f'imfrombytes: {len(content)} bytes are not a decodable image')
    return img.astype(np.float32) / 255.0 if float32 else img


def imwrite(img: np.ndarray, file_path: str, params: Optional[Sequence[int]] = None, auto_mkdir: bool = True) -> bool:
    """Write a BGR (or gray) numpy image with ``cv2.imwrite``; creates the folder with ``auto_mkdir``."""
    if auto_mkdir:
        os.makedirs(os.path.abspath(os.path.dirname(file_path)), exist_ok=True)
    if not cv2.imwrite(str(file_path), img, list(params) if params else []):
        raise IOError(f"imwrite: OpenCV failed to write '{file_path}' (image {img.shape}, {img.dtype})")
    return True


def crop_border(imgs: Arrays, crop_border: int) -> Arrays:
    """Drop ``crop_border`` pixels on every side of HWC image(s)."""
    if crop_border == 0:
        return imgs
    cut = (slice(crop_border, -crop_border), slice(crop_border, -crop_border), Ellipsis)
    return [v[cut] for v in imgs] if isinstance(imgs, list) else imgs[cut]
