"""Degradations synthesised on the fly: registered, seeded transforms of clean images.

Every degradation is a callable class registered in ``DEGRADATION_REGISTRY``::

    deg = build_degradation({'type': 'GaussianNoise', 'sigma': 25})
    noisy = deg(clean, rng)     # clean: (H, W, C) float32 in [0, 1]; rng: numpy Generator

A degradation draws all its randomness from ``rng`` (never from global state), so the dataset decides
the seed of every sample and the same seed always gives the same degraded image. A degradation may
change the size (SR downsampling) but not the channel count. Later degradations (blur, JPEG, rain, haze,
low light, downsampling) are added here or in sibling modules with the same signature.

BasicSR's Real-ESRGAN functions (``random_mixed_kernels``, ``circular_lowpass_kernel``,
``random_add_gaussian_noise_pt``, ...) are importable from here too, at BasicSR's module path; they live in
:mod:`basicsr.data.realesrgan_degradations` and use BasicSR's global-RNG draws.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from basicsr.data.realesrgan_degradations import (  # noqa: F401 - BasicSR's names at its module path
    add_gaussian_noise,
    add_gaussian_noise_pt,
    add_jpg_compression,
    add_poisson_noise,
    add_poisson_noise_pt,
    bivariate_Gaussian,
    bivariate_generalized_Gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    generate_gaussian_noise,
    generate_gaussian_noise_pt,
    generate_poisson_noise,
    generate_poisson_noise_pt,
    mesh_grid,
    pdf2,
    random_add_gaussian_noise,
    random_add_gaussian_noise_pt,
    random_add_jpg_compression,
    random_add_poisson_noise,
    random_add_poisson_noise_pt,
    random_bivariate_Gaussian,
    random_bivariate_generalized_Gaussian,
    random_bivariate_plateau,
    random_generate_gaussian_noise,
    random_generate_gaussian_noise_pt,
    random_generate_poisson_noise,
    random_generate_poisson_noise_pt,
    random_mixed_kernels,
    sigma_matrix2)
from basicsr.utils.registry import DEGRADATION_REGISTRY


def _check_range(name: str, value: Sequence[float]) -> List[float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and value[0] <= value[1]):
        raise ValueError(f'{name} must be [low, high] with low <= high, got {value!r}')
    return [float(value[0]), float(value[1])]


@DEGRADATION_REGISTRY.register()
class GaussianNoise:
    """Additive white Gaussian noise, sigma in 0..255 units (sigma=25 means std 25/255 on [0, 1] images).

    Exactly one of:
        sigma: fixed standard deviation.
        sigma_range: [low, high]; sigma drawn uniformly per image (Restormer's ``sigma_type: random``).
        sigma_choices: list; sigma drawn uniformly from it per image (``sigma_type: choice``).

    Args:
        clip: clip the result to [0, 1] (off by default: DnCNN/Restormer benchmarks feed unclipped noise).
        quantize: False (float output), 'round' (or True) -> rounded to 8-bit levels, 'floor' -> truncated
            to 8-bit levels like ``np.uint8(...)`` casts in PromptIR-style pipelines. Quantising implies clip.
        round_sigma: round the drawn sigma to an integer (MiOIR draws ``round(U(15, 50))``).
    """

    def __init__(self, sigma: Optional[float] = None, sigma_range: Optional[Sequence[float]] = None,
                 sigma_choices: Optional[Sequence[float]] = None, clip: bool = False,
                 quantize: Union[bool, str] = False, round_sigma: bool = False) -> None:
        given = [n for n, v in (('sigma', sigma), ('sigma_range', sigma_range), ('sigma_choices', sigma_choices))
                 if v is not None]
        if len(given) != 1:
            raise ValueError(f'GaussianNoise needs exactly one of sigma, sigma_range, sigma_choices; got '
                             f"{', '.join(given) or 'none'}")
        self.sigma = None if sigma is None else float(sigma)
        self.sigma_range = None if sigma_range is None else _check_range('sigma_range', sigma_range)
        self.sigma_choices = None if sigma_choices is None else [float(s) for s in sigma_choices]
        if self.sigma_choices is not None and not self.sigma_choices:
            raise ValueError('GaussianNoise sigma_choices is empty')
        for s in [self.sigma] if self.sigma is not None else (self.sigma_range or self.sigma_choices):
            if s < 0:
                raise ValueError(f'GaussianNoise sigma must be >= 0 (0..255 units), got {s}')
        if quantize is True:
            quantize = 'round'
        if quantize not in (False, 'round', 'floor'):
            raise ValueError(f"GaussianNoise quantize must be false, 'round' or 'floor', got {quantize!r}")
        self.quantize = quantize
        self.clip = clip or bool(quantize)
        self.round_sigma = bool(round_sigma)

    def draw_sigma(self, rng: np.random.Generator) -> float:
        """Sigma (0..255 units) for one image."""
        if self.sigma is not None:
            sigma = self.sigma
        elif self.sigma_range is not None:
            sigma = float(rng.uniform(*self.sigma_range))
        else:
            sigma = self.sigma_choices[int(rng.integers(0, len(self.sigma_choices)))]
        return float(np.round(sigma)) if self.round_sigma else sigma

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float in [0, 1] -> same shape, float32, noisy."""
        sigma = self.draw_sigma(rng)
        noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)
        out = img.astype(np.float32) + noise
        if self.clip:
            out = np.clip(out, 0.0, 1.0)
        if self.quantize == 'round':
            out = np.round(out * 255.0) / 255.0
        elif self.quantize == 'floor':
            out = np.floor(out * 255.0) / 255.0
        return out.astype(np.float32)

    def __repr__(self) -> str:
        level = self.sigma if self.sigma is not None else (self.sigma_range or self.sigma_choices)
        rounded = ', round_sigma=True' if self.round_sigma else ''
        return f'GaussianNoise(sigma={level}{rounded}, clip={self.clip}, quantize={self.quantize})'


class DegradationPipeline:
    """Several degradations applied in order, all drawing from the same per-sample generator."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.steps = list(steps)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            img = step(img, rng)
        return img

    def __repr__(self) -> str:
        return f"DegradationPipeline([{', '.join(repr(s) for s in self.steps)}])"


def build_degradations(opt: Union[Dict[str, Any], Sequence[Dict[str, Any]]], key: str = 'degradation'
                       ) -> DegradationPipeline:
    """Build from one ``{type: ..., **kwargs}`` block or a list of them; ``key`` names the option in errors."""
    blocks = [opt] if isinstance(opt, dict) else list(opt or [])
    if not blocks:
        raise ValueError(f"option '{key}' is empty: give a degradation block such as "
                         "{type: GaussianNoise, sigma: 25} or a list of them")
    steps = []
    for i, block in enumerate(blocks):
        where = key if isinstance(opt, dict) else f'{key}[{i}]'
        if not isinstance(block, dict) or 'type' not in block:
            raise ValueError(f"option '{where}' must be a mapping with a 'type' key, got {block!r}")
        try:
            steps.append(DEGRADATION_REGISTRY.build(dict(block)))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"option '{where}': {exc}") from exc
    return DegradationPipeline(steps)
