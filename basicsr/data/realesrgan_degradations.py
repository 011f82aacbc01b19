"""Real-ESRGAN's degradation synthesis with BasicSR's names, signatures and random draws.

Exported from :mod:`basicsr.data.degradations` (BasicSR's module path). Blur kernels are numpy (k x k, summing
to 1): isotropic/anisotropic Gaussian, generalized Gaussian (exponent ``beta``), plateau (``1 / (1 + q^beta)``)
and the circular low-pass (sinc) kernel; ``random_mixed_kernels`` picks one type with ``random.choices`` and
draws its parameters with ``np.random.uniform`` in BasicSR's order, so seeded runs give BasicSR's kernels. Noise
comes in numpy (HWC, [0, 1], BGR for the gray conversion) and torch (B, C, H, W, RGB) forms; the ``_pt``
versions draw one sigma/scale and one gray decision per image with ``torch.rand``. ``clip`` clamps to [0, 1],
``rounds`` quantises to 1/255. Differences: the circular kernel uses ``torch.special.bessel_j1`` (no scipy),
gray Gaussian noise for a batch draws one (H, W) field per image (BasicSR's draw only works for batch 1, where
both agree), and the gray conversion of the torch Poisson noise is ITU-R 601 luma like torchvision's.
"""
from __future__ import annotations

import math
import random
from typing import Any, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

Range = Sequence[float]
Scalar = Union[float, torch.Tensor]
# torchvision's rgb_to_grayscale weights (ITU-R 601)
_GRAY_RGB = (0.2989, 0.587, 0.114)


# ---------------------------------------------------------------------------------------------- kernels
def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """2x2 covariance ``R diag(sig_x^2, sig_y^2) R^T`` with R the rotation by ``theta`` (radians)."""
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return rot @ np.diag([sig_x ** 2, sig_y ** 2]) @ rot.T


def mesh_grid(kernel_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xy, xx, yy)``: pixel offsets from the centre, xy of shape (k, k, 2) in (x, y) order."""
    ax = np.arange(-kernel_size // 2 + 1., kernel_size // 2 + 1.)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1), xx, yy


def _quadratic_form(sigma_matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``q = g^T Sigma^-1 g`` at every grid point."""
    return np.sum(np.dot(grid, np.linalg.inv(sigma_matrix)) * grid, 2)


def pdf2(sigma_matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Unnormalised bivariate Gaussian ``exp(-q / 2)``."""
    return np.exp(-0.5 * _quadratic_form(sigma_matrix, grid))


def _covariance(sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    return np.array([[sig_x ** 2, 0], [0, sig_x ** 2]]) if isotropic else sigma_matrix2(sig_x, sig_y, theta)


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / np.sum(kernel)


def bivariate_Gaussian(kernel_size: int, sig_x: float, sig_y: float, theta: float, grid: Optional[np.ndarray] = None,
                       isotropic: bool = True) -> np.ndarray:
    """Gaussian kernel (isotropic: ``sig_x`` only)."""
    grid = mesh_grid(kernel_size)[0] if grid is None else grid
    return _normalised(pdf2(_covariance(sig_x, sig_y, theta, isotropic), grid))


def bivariate_generalized_Gaussian(kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float,
                                   grid: Optional[np.ndarray] = None, isotropic: bool = True) -> np.ndarray:
    """Generalized Gaussian ``exp(-q^beta / 2)``."""
    grid = mesh_grid(kernel_size)[0] if grid is None else grid
    q = _quadratic_form(_covariance(sig_x, sig_y, theta, isotropic), grid)
    return _normalised(np.exp(-0.5 * np.power(q, beta)))


def bivariate_plateau(kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float,
                      grid: Optional[np.ndarray] = None, isotropic: bool = True) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (q^beta + 1)``."""
    grid = mesh_grid(kernel_size)[0] if grid is None else grid
    q = _quadratic_form(_covariance(sig_x, sig_y, theta, isotropic), grid)
    return _normalised(np.reciprocal(np.power(q, beta) + 1))


def _check_range(name: str, value: Range) -> None:
    if not value[0] < value[1]:
        raise ValueError(f'{name} must be an increasing (low, high) pair, got {tuple(value)}')


def _draw_shape(kernel_size: int, sigma_x_range: Range, sigma_y_range: Range, rotation_range: Range,
                isotropic: bool) -> Tuple[float, float, float]:
    """sigma_x, then (anisotropic) sigma_y and rotation, each ``np.random.uniform`` over its range."""
    if kernel_size % 2 != 1:
        raise ValueError(f'kernel_size must be odd, got {kernel_size}')
    _check_range('sigma_x_range', sigma_x_range)
    sig_x = np.random.uniform(sigma_x_range[0], sigma_x_range[1])
    if isotropic:
        return sig_x, sig_x, 0
    _check_range('sigma_y_range', sigma_y_range)
    _check_range('rotation_range', rotation_range)
    sig_y = np.random.uniform(sigma_y_range[0], sigma_y_range[1])
    return sig_x, sig_y, np.random.uniform(rotation_range[0], rotation_range[1])


def _draw_beta(beta_range: Range) -> float:
    """Half the time below 1, half above (``beta_range`` = (low, high) around 1)."""
    if np.random.uniform() < 0.5:
        return np.random.uniform(beta_range[0], 1)
    return np.random.uniform(1, beta_range[1])


def _with_noise(kernel: np.ndarray, noise_range: Optional[Range]) -> np.ndarray:
    """Multiplicative uniform noise on every tap (``noise_range``), then renormalised."""
    if noise_range is not None:
        _check_range('noise_range', noise_range)
        kernel = kernel * np.random.uniform(noise_range[0], noise_range[1], size=kernel.shape)
    return _normalised(kernel)


def random_bivariate_Gaussian(kernel_size: int, sigma_x_range: Range, sigma_y_range: Range, rotation_range: Range,
                              noise_range: Optional[Range] = None, isotropic: bool = True) -> np.ndarray:
    sig_x, sig_y, theta = _draw_shape(kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic)
    return _with_noise(bivariate_Gaussian(kernel_size, sig_x, sig_y, theta, isotropic=isotropic), noise_range)


def random_bivariate_generalized_Gaussian(kernel_size: int, sigma_x_range: Range, sigma_y_range: Range,
                                          rotation_range: Range, beta_range: Range,
                                          noise_range: Optional[Range] = None, isotropic: bool = True) -> np.ndarray:
    sig_x, sig_y, theta = _draw_shape(kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic)
    kernel = bivariate_generalized_Gaussian(kernel_size, sig_x, sig_y, theta, _draw_beta(beta_range),
                                            isotropic=isotropic)
    return _with_noise(kernel, noise_range)


def random_bivariate_plateau(kernel_size: int, sigma_x_range: Range, sigma_y_range: Range, rotation_range: Range,
                             beta_range: Range, noise_range: Optional[Range] = None,
                             isotropic: bool = True) -> np.ndarray:
    sig_x, sig_y, theta = _draw_shape(kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic)
    kernel = bivariate_plateau(kernel_size, sig_x, sig_y, theta, _draw_beta(beta_range), isotropic=isotropic)
    return _with_noise(kernel, noise_range)


def random_mixed_kernels(kernel_list: Sequence[str], kernel_prob: Sequence[float], kernel_size: int = 21,
                         sigma_x_range: Range = (0.6, 5), sigma_y_range: Range = (0.6, 5),
                         rotation_range: Range = (-math.pi, math.pi), betag_range: Range = (0.5, 8),
                         betap_range: Range = (0.5, 8), noise_range: Optional[Range] = None) -> np.ndarray:
    """One kernel of a type drawn from ``kernel_list`` ('iso', 'aniso', 'generalized_iso', 'generalized_aniso',
    'plateau_iso', 'plateau_aniso') with probabilities ``kernel_prob``; plateau kernels get no tap noise."""
    kind = random.choices(kernel_list, kernel_prob)[0]
    shape = (kernel_size, sigma_x_range, sigma_y_range, rotation_range)
    iso = not kind.endswith('aniso')
    if kind in ('iso', 'aniso'):
        return random_bivariate_Gaussian(*shape, noise_range=noise_range, isotropic=iso)
    if kind in ('generalized_iso', 'generalized_aniso'):
        return random_bivariate_generalized_Gaussian(*shape, betag_range, noise_range=noise_range, isotropic=iso)
    if kind in ('plateau_iso', 'plateau_aniso'):
        return random_bivariate_plateau(*shape, betap_range, noise_range=None, isotropic=iso)
    raise ValueError(f"random_mixed_kernels: unknown kernel type '{kind}'")


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """2-D sinc (ideal circular low-pass) kernel ``cutoff J1(cutoff r) / (2 pi r)``, centre ``cutoff^2 / (4 pi)``,
    normalised; zero-padded to ``pad_to`` when that is larger (odd sizes)."""
    if kernel_size % 2 != 1:
        raise ValueError(f'kernel_size must be odd, got {kernel_size}')
    c = (kernel_size - 1) / 2
    yy, xx = np.meshgrid(np.arange(kernel_size) - c, np.arange(kernel_size) - c)
    r = np.sqrt(xx ** 2 + yy ** 2)
    j1 = torch.special.bessel_j1(torch.from_numpy(cutoff * r)).numpy()
    with np.errstate(divide='ignore', invalid='ignore'):
        kernel = cutoff * j1 / (2 * np.pi * r)
    kernel[int(c), int(c)] = cutoff ** 2 / (4 * np.pi)
    kernel = _normalised(kernel)
    if pad_to > kernel_size:
        pad = (pad_to - kernel_size) // 2
        kernel = np.pad(kernel, ((pad, pad), (pad, pad)))
    return kernel


# ---------------------------------------------------------------------------------------------- noise
def _finish(out: Any, clip: bool, rounds: bool) -> Any:
    """Optional quantisation to 1/255 and clamping to [0, 1] (numpy or torch)."""
    lib = torch if torch.is_tensor(out) else np
    if rounds:
        out = (out * 255.0).round()
        return (lib.clip(out, 0, 255) if clip else out) / 255.
    return lib.clip(out, 0, 1) if clip else out


def generate_gaussian_noise(img: np.ndarray, sigma: float = 10, gray_noise: bool = False) -> np.ndarray:
    """Gaussian noise with std ``sigma`` on the 0..255 scale (returned on [0, 1]'s scale); gray: one channel
    repeated."""
    if gray_noise:
        noise = np.float32(np.random.randn(*img.shape[:2])) * sigma / 255.
        return np.repeat(noise[:, :, None], 3, axis=2)
    return np.float32(np.random.randn(*img.shape)) * sigma / 255.


def add_gaussian_noise(img: np.ndarray, sigma: float = 10, clip: bool = True, rounds: bool = False,
                       gray_noise: bool = False) -> np.ndarray:
    return _finish(img + generate_gaussian_noise(img, sigma, gray_noise), clip, rounds)


def _draw_np(value_range: Range, gray_prob: float) -> Tuple[float, bool]:
    """One value uniform in ``value_range``, then a gray decision (probability ``gray_prob``), from ``np.random``."""
    value = np.random.uniform(value_range[0], value_range[1])
    return value, np.random.uniform() < gray_prob


def random_generate_gaussian_noise(img: np.ndarray, sigma_range: Range = (0, 10), gray_prob: float = 0) -> np.ndarray:
    return generate_gaussian_noise(img, *_draw_np(sigma_range, gray_prob))


def random_add_gaussian_noise(img: np.ndarray, sigma_range: Range = (0, 1.0), gray_prob: float = 0,
                              clip: bool = True, rounds: bool = False) -> np.ndarray:
    return _finish(img + random_generate_gaussian_noise(img, sigma_range, gray_prob), clip, rounds)


def _per_image(value: Scalar, b: int) -> Scalar:
    return value if isinstance(value, (float, int)) else value.view(b, 1, 1, 1)


def _any_gray(gray_noise: Scalar) -> bool:
    return bool(gray_noise > 0) if isinstance(gray_noise, (float, int)) else bool(torch.sum(gray_noise) > 0)


def generate_gaussian_noise_pt(img: torch.Tensor, sigma: Scalar = 10, gray_noise: Scalar = 0) -> torch.Tensor:
    """Noise for (B, C, H, W) images; ``sigma`` and ``gray_noise`` (0/1 mix) scalars or one per image."""
    b, _, h, w = img.shape
    sigma, gray = _per_image(sigma, b), _per_image(gray_noise, b)
    use_gray = _any_gray(gray_noise)
    if use_gray:
        noise_gray = torch.randn(b, 1, h, w, dtype=img.dtype, device=img.device) * sigma / 255.
    noise = torch.randn(*img.shape, dtype=img.dtype, device=img.device) * sigma / 255.
    return noise * (1 - gray) + noise_gray * gray if use_gray else noise


def add_gaussian_noise_pt(img: torch.Tensor, sigma: Scalar = 10, gray_noise: Scalar = 0, clip: bool = True,
                          rounds: bool = False) -> torch.Tensor:
    return _finish(img + generate_gaussian_noise_pt(img, sigma, gray_noise), clip, rounds)


def _draw_pt(img: torch.Tensor, value_range: Range, gray_prob: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per image: a value uniform in ``value_range`` and a gray decision (probability ``gray_prob``)."""
    value = torch.rand(img.size(0), dtype=img.dtype, device=img.device) * (value_range[1] - value_range[0]) \
        + value_range[0]
    gray = (torch.rand(img.size(0), dtype=img.dtype, device=img.device) < gray_prob).float()
    return value, gray


def random_generate_gaussian_noise_pt(img: torch.Tensor, sigma_range: Range = (0, 10),
                                      gray_prob: float = 0) -> torch.Tensor:
    return generate_gaussian_noise_pt(img, *_draw_pt(img, sigma_range, gray_prob))


def random_add_gaussian_noise_pt(img: torch.Tensor, sigma_range: Range = (0, 1.0), gray_prob: float = 0,
                                 clip: bool = True, rounds: bool = False) -> torch.Tensor:
    return _finish(img + random_generate_gaussian_noise_pt(img, sigma_range, gray_prob), clip, rounds)


def _levels(count: int) -> float:
    """Poisson 'photon' levels: the number of distinct values rounded up to a power of two."""
    return 2 ** np.ceil(np.log2(count))


def generate_poisson_noise(img: np.ndarray, scale: float = 1.0, gray_noise: bool = False) -> np.ndarray:
    """Poisson (shot) noise of the image quantised to 1/255, times ``scale``; gray: from the BGR luma."""
    if gray_noise:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    img = np.clip((img * 255.0).round(), 0, 255) / 255.
    vals = _levels(len(np.unique(img)))
    noise = np.float32(np.random.poisson(img * vals) / float(vals)) - img
    if gray_noise:
        noise = np.repeat(noise[:, :, None], 3, axis=2)
    return noise * scale


def add_poisson_noise(img: np.ndarray, scale: float = 1.0, clip: bool = True, rounds: bool = False,
                      gray_noise: bool = False) -> np.ndarray:
    return _finish(img + generate_poisson_noise(img, scale, gray_noise), clip, rounds)


def random_generate_poisson_noise(img: np.ndarray, scale_range: Range = (0, 1.0), gray_prob: float = 0) -> np.ndarray:
    return generate_poisson_noise(img, *_draw_np(scale_range, gray_prob))


def random_add_poisson_noise(img: np.ndarray, scale_range: Range = (0, 1.0), gray_prob: float = 0,
                             clip: bool = True, rounds: bool = False) -> np.ndarray:
    return _finish(img + random_generate_poisson_noise(img, scale_range, gray_prob), clip, rounds)


def _poisson_pt(img: torch.Tensor) -> torch.Tensor:
    """Poisson noise of (B, C, H, W) images quantised to 1/255, levels counted per image."""
    img = torch.clamp((img * 255.0).round(), 0, 255) / 255.
    vals = img.new_tensor([_levels(len(torch.unique(img[i]))) for i in range(img.size(0))]).view(-1, 1, 1, 1)
    return torch.poisson(img * vals) / vals - img


def generate_poisson_noise_pt(img: torch.Tensor, scale: Scalar = 1.0, gray_noise: Scalar = 0) -> torch.Tensor:
    """Poisson noise for (B, 3, H, W) RGB images; ``scale`` and ``gray_noise`` scalars or one per image."""
    b, _, h, w = img.shape
    gray = _per_image(gray_noise, b)
    use_gray = _any_gray(gray_noise)
    if use_gray:
        luma = sum(wt * img[:, i:i + 1] for i, wt in enumerate(_GRAY_RGB))
        noise_gray = _poisson_pt(luma).expand(b, 3, h, w)
    noise = _poisson_pt(img)
    if use_gray:
        noise = noise * (1 - gray) + noise_gray * gray
    return noise * _per_image(scale, b)


def add_poisson_noise_pt(img: torch.Tensor, scale: Scalar = 1.0, clip: bool = True, rounds: bool = False,
                         gray_noise: Scalar = 0) -> torch.Tensor:
    return _finish(img + generate_poisson_noise_pt(img, scale, gray_noise), clip, rounds)


def random_generate_poisson_noise_pt(img: torch.Tensor, scale_range: Range = (0, 1.0),
                                     gray_prob: float = 0) -> torch.Tensor:
    return generate_poisson_noise_pt(img, *_draw_pt(img, scale_range, gray_prob))


def random_add_poisson_noise_pt(img: torch.Tensor, scale_range: Range = (0, 1.0), gray_prob: float = 0,
                                clip: bool = True, rounds: bool = False) -> torch.Tensor:
    return _finish(img + random_generate_poisson_noise_pt(img, scale_range, gray_prob), clip, rounds)


# ---------------------------------------------------------------------------------------------- JPEG
def add_jpg_compression(img: np.ndarray, quality: float = 90) -> np.ndarray:
    """OpenCV JPEG round trip of an HWC [0, 1] float image at ``quality`` (truncated to an integer)."""
    ok, enc = cv2.imencode('.jpg', np.clip(img, 0, 1) * 255., [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f'add_jpg_compression: OpenCV cannot encode an image of shape {img.shape}')
    return np.float32(cv2.imdecode(enc, 1)) / 255.


def random_add_jpg_compression(img: np.ndarray, quality_range: Range = (90, 100)) -> np.ndarray:
    return add_jpg_compression(img, np.random.uniform(quality_range[0], quality_range[1]))
