"""PSNR and SSIM under the conventions papers report, each implemented once.

Every function takes two numpy images and returns a float. ``input_kind`` (set by :func:`expects`)
says what :func:`basicsr.metrics.compute_metrics` feeds them:

* ``'uint8'``: values on the 0..255 scale that were rounded to integers, as BasicSR's ``tensor2img``
  produces (the BasicSR and Restormer conventions).
* ``'float'``: float values in [0, 1], clipped, not rounded (the scikit-image convention of
  PromptIR and DSRIR evaluation scripts).

Called directly, they accept any (H, W), (H, W, C) or (C, H, W) array in the documented range.
"""
from functools import partial
from typing import Callable

import numpy as np

from basicsr.metrics.metric_util import (GAUSS_SIGMA, GAUSS_WIN_SIZE, check_same_shape, crop_border as crop,
                                         filter2d, filter_channels_replicate, gaussian_kernel_1d,
                                         mean_over_channels, psnr_from_mse, rgb_to_y, ssim_map, to_hwc,
                                         uniform_kernel_1d)
from basicsr.utils.registry import METRIC_REGISTRY

UINT8 = 'uint8'
FLOAT = 'float'


def expects(kind: str) -> Callable:
    """Mark a metric function with the input convention compute_metrics must prepare for it."""
    def mark(fn: Callable) -> Callable:
        fn.input_kind = kind
        return fn
    return mark


def _prepare(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str, test_y_channel: bool,
             channel_order: str, data_range: float, round_y: bool = False) -> tuple:
    """Shared front end: layout to HWC, float64, border crop, then optional BT.601 Y (rounded if ``round_y``)."""
    img = to_hwc(np.asarray(img), input_order).astype(np.float64)
    img2 = to_hwc(np.asarray(img2), input_order).astype(np.float64)
    check_same_shape(img, img2)
    img, img2 = crop(img, crop_border), crop(img2, crop_border)
    if test_y_channel and img.shape[2] == 3:
        img = rgb_to_y(img, data_range, channel_order)
        img2 = rgb_to_y(img2, data_range, channel_order)
        if round_y:
            # MATLAB rgb2ycbcr on uint8 returns uint8 Y: round half away from zero (Y > 0)
            img, img2 = np.floor(img + 0.5), np.floor(img2 + 0.5)
    return img, img2


def _psnr(img: np.ndarray, img2: np.ndarray, data_range: float) -> float:
    return psnr_from_mse(float(np.mean((img - img2) ** 2)), data_range)


# ---------------------------------------------------------------- BasicSR upstream (uint8 scale)
@METRIC_REGISTRY.register()
@expects(UINT8)
def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                   test_y_channel: bool = False, channel_order: str = 'bgr', round_y: bool = False) -> float:
    """PSNR in dB with peak 255 (BasicSR ``calculate_psnr``): MSE over all pixels and channels, float64.

    Args:
        img, img2: images on the 0..255 scale (BasicSR rounds them to uint8 first).
        crop_border: pixels dropped on every side before measuring.
        input_order: 'HWC' or 'CHW' (2-D images are accepted as they are).
        test_y_channel: measure the BT.601 Y channel (MATLAB coefficients, not rounded) of colour images.
        channel_order: colour order of the inputs, only used for Y: 'bgr' as BasicSR's ``tensor2img`` gives.
        round_y: round Y to integers as MATLAB ``rgb2ycbcr`` does on uint8 images (the deraining MATLAB
            scripts of Restormer/MPRNet); BasicSR keeps Y unrounded.
    Returns:
        PSNR in dB; ``inf`` for identical images. Stereo pairs (6 channels, left RGB | right RGB, NAFSSR)
        score the mean of the two views' PSNRs, as NAFNet's ``calculate_psnr``.
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, False, channel_order, 255.0)  # layout and crop
    if img.shape[2] == 6:
        return float(np.mean([calculate_psnr(img[..., v:v + 3], img2[..., v:v + 3], 0, 'HWC', test_y_channel,
                                             channel_order, round_y) for v in (0, 3)]))
    if test_y_channel and img.shape[2] == 3:
        img, img2 = _prepare(img, img2, 0, 'HWC', True, channel_order, 255.0, round_y)
    return _psnr(img, img2, 255.0)


def _ssim_wang_valid(img: np.ndarray, img2: np.ndarray, data_range: float) -> float:
    """SSIM of 2-D images as Wang's ``ssim_index.m``: 11x11 Gaussian (sigma 1.5), 'valid' filtering."""
    filt = partial(filter2d, kernel=gaussian_kernel_1d(), border='valid')
    return float(ssim_map(img, img2, filt, data_range).mean())


@METRIC_REGISTRY.register()
@expects(UINT8)
def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                   test_y_channel: bool = False, channel_order: str = 'bgr', round_y: bool = False) -> float:
    """SSIM as upstream BasicSR ``calculate_ssim`` (= Wang's MATLAB ``ssim_index.m``).

    11x11 Gaussian window (sigma 1.5), only the positions where the window fits in the image ('valid'),
    C1 = (0.01*255)^2, C2 = (0.03*255)^2, float64; colour images: SSIM per channel, then the mean.
    Arguments as :func:`calculate_psnr`; the images must be at least 11x11 after cropping.
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, channel_order, 255.0, round_y)
    _check_min_size(img, GAUSS_WIN_SIZE)
    return mean_over_channels(img, img2, partial(_ssim_wang_valid, data_range=255.0))


@METRIC_REGISTRY.register()
@expects(UINT8)
def calculate_skimage_ssim(img: np.ndarray, img2: np.ndarray, input_order: str = 'HWC',
                           channel_order: str = 'bgr') -> float:
    """NAFNet's ``calculate_skimage_ssim`` (NAFSSR): scikit-image ``structural_similarity(img, img2,
    multichannel=True)`` of uint8 images: data range 255 (the uint8 range), 7x7 box window, sample covariance,
    the mean over all channels (the 6 of a stereo pair). ``channel_order`` is accepted and unused."""
    return calculate_ssim_float(img, img2, input_order=input_order, data_range=255.0)


# ---------------------------------------------------------------- Restormer / NAFNet / HINet forks
@METRIC_REGISTRY.register()
@expects(UINT8)
def calculate_ssim_volumetric(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                              test_y_channel: bool = False, channel_order: str = 'bgr') -> float:
    """SSIM of the Restormer/NAFNet/HINet forks, which imitates MATLAB's built-in ``ssim()``.

    Colour: the image is one (H, W, C) volume filtered by an 11x11x11 Gaussian (sigma 1.5 on every axis)
    with edge replication on all three axes and no crop ('same' size), then the map is averaged. The
    channel order does not matter. Y channel: 2-D 11x11 Gaussian with edge replication, no crop.
    Peak 255, C1 = (0.01*255)^2, C2 = (0.03*255)^2. The forks compute this in float32 on the GPU;
    here it is float64 (differences ~1e-6). Arguments as :func:`calculate_psnr`.
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, channel_order, 255.0)
    kernel = gaussian_kernel_1d()
    if img.shape[2] == 1:
        filt = partial(filter2d, kernel=kernel, border='replicate')
        return float(ssim_map(img[..., 0], img2[..., 0], filt, 255.0).mean())

    def filt3d(vol: np.ndarray) -> np.ndarray:
        planes = np.stack([filter2d(vol[..., c], kernel, 'replicate') for c in range(vol.shape[2])], axis=2)
        return filter_channels_replicate(planes, kernel)

    return float(ssim_map(img, img2, filt3d, 255.0).mean())


# ---------------------------------------------------------------- scikit-image style (float [0, 1])
@METRIC_REGISTRY.register()
@expects(FLOAT)
def calculate_psnr_float(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                         test_y_channel: bool = False, channel_order: str = 'rgb', data_range: float = 1.0) -> float:
    """PSNR of float images as ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=1)``.

    Inputs are float in [0, data_range], not rounded. With ``test_y_channel`` the BT.601 Y channel on the
    same scale is measured (DSRIR's Rain100L protocol: Y in [16/255, 235/255], data_range still 1).
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, channel_order, data_range)
    return _psnr(img, img2, data_range)


@METRIC_REGISTRY.register()
@expects(FLOAT)
def calculate_ssim_float(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, input_order: str = 'HWC',
                         test_y_channel: bool = False, channel_order: str = 'rgb', data_range: float = 1.0,
                         win_size: int = 7, gaussian_weights: bool = False, use_sample_covariance: bool = True,
                         y_as_columns: bool = False) -> float:
    """SSIM as ``skimage.metrics.structural_similarity(gt, pred, data_range=1, channel_axis=-1)``.

    Defaults are scikit-image's: a ``win_size`` x ``win_size`` box window, sample covariance (N/(N-1)),
    K1 = 0.01, K2 = 0.03, a border of (win_size-1)//2 dropped from the SSIM map; colour images: per channel,
    then the mean. ``gaussian_weights`` uses the 11x11 sigma-1.5 Gaussian instead (as scikit-image does).

    ``y_as_columns`` reproduces DSRIR's Y-channel evaluation, which passes the 2-D Y image with
    ``channel_axis=-1``: every image column is then scored as a 1-D signal (window of ``win_size`` along
    the height) and the column scores are averaged. It gives a different (lower) number than 2-D SSIM.
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, channel_order, data_range)
    kernel = gaussian_kernel_1d(GAUSS_WIN_SIZE, GAUSS_SIGMA) if gaussian_weights else uniform_kernel_1d(win_size)
    size = len(kernel)
    if y_as_columns:
        if img.shape[2] != 1:
            raise ValueError('y_as_columns applies to single-channel (Y or gray) images only; '
                             'set test_y_channel: true or drop y_as_columns')
        _check_min_size(img, size, height_only=True)
        cov_norm = size / (size - 1) if use_sample_covariance else 1.0
        filt = partial(filter2d, kernel=kernel, border='valid', height_only=True)
        return float(ssim_map(img[..., 0], img2[..., 0], filt, data_range, cov_norm).mean())
    _check_min_size(img, size)
    cov_norm = size ** 2 / (size ** 2 - 1) if use_sample_covariance else 1.0
    filt = partial(filter2d, kernel=kernel, border='valid')
    return mean_over_channels(img, img2, lambda a, b: float(ssim_map(a, b, filt, data_range, cov_norm).mean()))


def _check_min_size(img: np.ndarray, size: int, height_only: bool = False) -> None:
    h, w = img.shape[:2]
    if h < size or (not height_only and w < size):
        raise ValueError(f'SSIM with a {size}-pixel window needs images of at least {size}x{size} pixels '
                         f'(after crop_border), got {h}x{w}')
