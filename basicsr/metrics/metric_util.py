"""Shared pieces of the metric conventions: layout, border crop, BT.601 luma, filters and the SSIM map.

Every metric function in this package is built from these helpers, so a convention (say, the
11x11 Gaussian window with sigma 1.5) exists in exactly one place.
"""
from typing import Callable

import cv2
import numpy as np

# ITU-R BT.601 'studio swing' luma as in MATLAB rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + 24.966 B)
# for R, G, B in [0, 1]; Y then lies in [16, 235] (on the 0..255 scale).
BT601_Y_COEFFS_RGB = np.array([65.481, 128.553, 24.966])
BT601_Y_OFFSET = 16.0

# Wang et al.'s SSIM window and constants (ssim_index.m).
GAUSS_WIN_SIZE = 11
GAUSS_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

FilterFn = Callable[[np.ndarray], np.ndarray]


def to_hwc(img: np.ndarray, input_order: str = 'HWC') -> np.ndarray:
    """Return ``img`` as (H, W, C); a 2-D (H, W) image becomes (H, W, 1)."""
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise ValueError(f'expected an image with 2 or 3 dimensions, got shape {tuple(img.shape)}')
    return img.transpose(1, 2, 0) if input_order == 'CHW' else img


def check_same_shape(img: np.ndarray, img2: np.ndarray) -> None:
    """Raise ValueError when the two images (after layout normalisation) differ in shape."""
    if img.shape != img2.shape:
        raise ValueError(f'the images to compare have different shapes: {tuple(img.shape)} vs {tuple(img2.shape)}')


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels on every side of an (H, W, ...) image (0 keeps it whole)."""
    if border < 0:
        raise ValueError(f'crop_border must be >= 0, got {border}')
    if border == 0:
        return img
    h, w = img.shape[:2]
    if 2 * border >= min(h, w):
        raise ValueError(f'crop_border={border} leaves nothing of a {h}x{w} image')
    return img[border:-border, border:-border, ...]


def rgb_to_y(img: np.ndarray, data_range: float = 255.0, channel_order: str = 'rgb') -> np.ndarray:
    """BT.601 luma (MATLAB ``rgb2ycbcr`` Y, not rounded) of an (H, W, 3) image.

    Args:
        img: (H, W, 3) array with values in [0, data_range].
        data_range: 255 for 0..255 images (Y in [16, 235]) or 1 for [0, 1] images (Y in [16/255, 235/255]).
        channel_order: 'rgb' or 'bgr' (BasicSR's numpy metrics receive cv2-style BGR images).
    Returns:
        (H, W, 1) float64 array on the same scale as the input.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'the Y channel needs an (H, W, 3) image, got shape {tuple(img.shape)}')
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    coeffs = BT601_Y_COEFFS_RGB if channel_order == 'rgb' else BT601_Y_COEFFS_RGB[::-1]
    unit = img.astype(np.float64) / data_range
    y = unit @ coeffs + BT601_Y_OFFSET
    return (y * (data_range / 255.0))[..., None]


def psnr_from_mse(mse: float, data_range: float) -> float:
    """10*log10(peak^2 / MSE); ``inf`` for identical images, as BasicSR and scikit-image return."""
    if mse == 0:
        return float('inf')
    return float(10.0 * np.log10(data_range ** 2 / mse))


def gaussian_kernel_1d(size: int = GAUSS_WIN_SIZE, sigma: float = GAUSS_SIGMA) -> np.ndarray:
    """Normalised sampled Gaussian, identical to ``cv2.getGaussianKernel(size, sigma)`` (float64)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-x ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def uniform_kernel_1d(size: int) -> np.ndarray:
    """Box kernel of ``size`` taps (scikit-image's default SSIM window is 7 of them per axis)."""
    return np.full(size, 1.0 / size)


def filter2d(img: np.ndarray, kernel: np.ndarray, border: str, height_only: bool = False) -> np.ndarray:
    """Separable correlation of a 2-D float64 image with ``kernel`` on both axes (or only along the height axis).

    border='valid' keeps the outputs whose window lies inside the image (MATLAB ``filter2(..., 'valid')``);
    border='replicate' keeps the size and repeats the edge pixels (MATLAB ``imfilter(..., 'replicate')``).
    """
    pad = (len(kernel) - 1) // 2
    kx = np.ones(1) if height_only else kernel
    cv_border = cv2.BORDER_REPLICATE if border == 'replicate' else cv2.BORDER_REFLECT_101
    out = cv2.sepFilter2D(img, cv2.CV_64F, kx, kernel, borderType=cv_border)
    if border == 'valid':
        out = out[pad:-pad] if height_only else out[pad:-pad, pad:-pad]
    elif border != 'replicate':
        raise ValueError(f"border must be 'valid' or 'replicate', got {border!r}")
    return out


def filter_channels_replicate(vol: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an (H, W, C) volume with ``kernel`` along C, repeating the first/last channel."""
    pad = (len(kernel) - 1) // 2
    padded = np.pad(vol, ((0, 0), (0, 0), (pad, pad)), mode='edge')
    c = vol.shape[2]
    return sum(kernel[i] * padded[..., i:i + c] for i in range(len(kernel)))


def ssim_map(img: np.ndarray, img2: np.ndarray, filt: FilterFn, data_range: float,
             cov_norm: float = 1.0, k1: float = SSIM_K1, k2: float = SSIM_K2) -> np.ndarray:
    """Local SSIM values of two same-shaped float64 arrays, with local means taken by ``filt``.

    ``cov_norm`` scales the variances/covariance (scikit-image uses N/(N-1), the sample covariance,
    for its uniform window; Wang's MATLAB code uses 1).
    """
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu1, mu2 = filt(img), filt(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = cov_norm * (filt(img * img) - mu1_sq)
    sigma2_sq = cov_norm * (filt(img2 * img2) - mu2_sq)
    sigma12 = cov_norm * (filt(img * img2) - mu1_mu2)
    num = (2 * mu1_mu2 + c1) * (2 * sigma12 + c2)
    den = (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    return num / den


def mean_over_channels(img: np.ndarray, img2: np.ndarray,
                       per_channel: Callable[[np.ndarray, np.ndarray], float]) -> float:
    """Apply a 2-D metric to each channel of two (H, W, C) images and average the results."""
    return float(np.mean([per_channel(img[..., i], img2[..., i]) for i in range(img.shape[2])]))
