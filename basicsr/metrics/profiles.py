"""Named metric profiles and :func:`compute_metrics`, the one entry point that scores restored images.

A profile fixes everything that changes a reported number: colour space, border crop, rounding and the
SSIM variant. Results files record the profile name, so two numbers are comparable when their profile
names match. ``val.metrics`` blocks in BasicSR's format (``{psnr: {type: calculate_psnr, crop_border: 0}}``)
are accepted too; each metric type then brings its own input conversion.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Union

import numpy as np
import torch

from basicsr.metrics.psnr_ssim import FLOAT, UINT8
from basicsr.utils.registry import METRIC_REGISTRY, RegistryError, check_kwargs

# Keys of a BasicSR metric block that steer the validation loop, not the metric function.
NON_METRIC_KEYS = ('type', 'better')


@dataclass(frozen=True)
class MetricProfile:
    """A named set of metrics: ``metrics`` maps a result key to a BasicSR-style ``{type: ..., **kwargs}``."""

    name: str
    description: str
    metrics: Dict[str, Dict[str, Any]] = field(default_factory=dict)


def _m(type_: str, **kwargs: Any) -> Dict[str, Any]:
    return {'type': type_, **kwargs}


_PROFILES = [
    MetricProfile('basicsr_rgb', 'BasicSR upstream: uint8-rounded RGB, PSNR peak 255, SSIM Gaussian 11/1.5 '
                  'valid window per channel, no border crop',
                  {'psnr': _m('calculate_psnr', crop_border=0), 'ssim': _m('calculate_ssim', crop_border=0)}),
    MetricProfile('basicsr_y', 'BasicSR upstream on the BT.601 Y channel (unrounded Y of uint8-rounded RGB), '
                  'no border crop',
                  {'psnr': _m('calculate_psnr', crop_border=0, test_y_channel=True),
                   'ssim': _m('calculate_ssim', crop_border=0, test_y_channel=True)}),
    MetricProfile('matlab_y', 'MATLAB deraining scripts (Restormer/MPRNet evaluate_PSNR_SSIM.m): Y of rgb2ycbcr '
                  'on uint8 images, rounded to integers; PSNR peak 255 and ssim_index (Gaussian 11/1.5, valid)',
                  {'psnr': _m('calculate_psnr', crop_border=0, test_y_channel=True, round_y=True),
                   'ssim': _m('calculate_ssim', crop_border=0, test_y_channel=True, round_y=True)}),
    MetricProfile('mioir', 'MiOIR protocol: BasicSR PSNR on uint8-rounded RGB with a 4-pixel border crop',
                  {'psnr': _m('calculate_psnr', crop_border=4)}),
    MetricProfile('restormer', 'Restormer/NAFNet/HINet forks: BasicSR PSNR on uint8-rounded RGB, volumetric '
                  '11x11x11 replicate-padded SSIM (imitates MATLAB ssim() on RGB)',
                  {'psnr': _m('calculate_psnr', crop_border=0),
                   'ssim': _m('calculate_ssim_volumetric', crop_border=0)}),
    MetricProfile('restormer_y', 'Restormer fork on the BT.601 Y channel: BasicSR Y-PSNR, Gaussian 11/1.5 SSIM '
                  'with replicated borders and no valid crop',
                  {'psnr': _m('calculate_psnr', crop_border=0, test_y_channel=True),
                   'ssim': _m('calculate_ssim_volumetric', crop_border=0, test_y_channel=True)}),
    MetricProfile('skimage_float', 'scikit-image on float RGB clipped to [0,1] (PromptIR, DSRIR noise/haze): '
                  'PSNR data_range 1, SSIM 7x7 box window, sample covariance, per channel',
                  {'psnr': _m('calculate_psnr_float'), 'ssim': _m('calculate_ssim_float')}),
    MetricProfile('skimage_float_y', 'scikit-image on the float BT.601 Y channel (data_range 1), 2-D SSIM with '
                  'the 7x7 box window',
                  {'psnr': _m('calculate_psnr_float', test_y_channel=True),
                   'ssim': _m('calculate_ssim_float', test_y_channel=True)}),
    MetricProfile('dsrir_y', "DSRIR Rain100L protocol: float Y-PSNR (data_range 1) and DSRIR's column-wise "
                  'SSIM of the Y image (skimage channel_axis=-1 on a 2-D image)',
                  {'psnr': _m('calculate_psnr_float', test_y_channel=True),
                   'ssim': _m('calculate_ssim_float', test_y_channel=True, y_as_columns=True)}),
]
PROFILES: Dict[str, MetricProfile] = {p.name: p for p in _PROFILES}


def get_profile(name: str) -> MetricProfile:
    """Return the profile called ``name``; a KeyError (RegistryError) lists the known names and their descriptions."""
    if name not in PROFILES:
        listing = '\n'.join(f'  {p.name}: {p.description}' for p in _PROFILES)
        raise RegistryError(f"unknown metric profile '{name}'; known profiles:\n{listing}")
    return PROFILES[name]


ProfileOrOpts = Union[str, MetricProfile, Mapping[str, Mapping[str, Any]]]
Image = Union[torch.Tensor, np.ndarray]


def resolve_metrics(profile_or_metric_opts: ProfileOrOpts) -> Dict[str, Dict[str, Any]]:
    """The ``{result_key: {type: ..., **kwargs}}`` mapping of a profile name, profile or metric-options dict."""
    if isinstance(profile_or_metric_opts, str):
        return get_profile(profile_or_metric_opts).metrics
    if isinstance(profile_or_metric_opts, MetricProfile):
        return profile_or_metric_opts.metrics
    if isinstance(profile_or_metric_opts, Mapping):
        for key, opt in profile_or_metric_opts.items():
            if not isinstance(opt, Mapping) or 'type' not in opt:
                raise ValueError(f"val.metrics.{key} must be a mapping with a 'type' key, got {opt!r}")
        return {k: dict(v) for k, v in profile_or_metric_opts.items()}
    raise TypeError(f'expected a profile name, a MetricProfile or a metrics dict, got {type(profile_or_metric_opts)}')


def profile_name(profile_or_metric_opts: ProfileOrOpts) -> str:
    """The name to write into results files.

    A profile gives its name; a ``val.metrics`` dict gives the name of the profile it equals (ignoring
    ``better`` keys and default-valued ``crop_border: 0``), otherwise ``'custom'``.
    """
    if isinstance(profile_or_metric_opts, str):
        return get_profile(profile_or_metric_opts).name
    if isinstance(profile_or_metric_opts, MetricProfile):
        return profile_or_metric_opts.name

    def canonical(metrics: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
        return {k: {a: b for a, b in v.items() if a != 'better' and not (a == 'crop_border' and b == 0)}
                for k, v in metrics.items()}

    wanted = canonical(resolve_metrics(profile_or_metric_opts))
    return next((p.name for p in _PROFILES if canonical(p.metrics) == wanted), 'custom')


def _to_float_hwc_batch(img: Image, what: str) -> np.ndarray:
    """(B, H, W, C) float64 RGB in [0, 1] from a torch tensor or a numpy image (see compute_metrics)."""
    if isinstance(img, torch.Tensor):
        arr = img.detach().to('cpu', torch.float64).numpy()
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4:
            raise ValueError(f'{what}: expected a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(img.shape)}')
        return arr.transpose(0, 2, 3, 1)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f'{what}: expected an (H, W) or (H, W, C) numpy image, got shape {arr.shape}')
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return (arr.astype(np.float64) / scale)[None]


def _convert(img: np.ndarray, kind: str, use_image: bool = True) -> np.ndarray:
    """Apply a metric's input convention to a float [0, 1] image. ``use_image=False`` (NAFNet/Restormer's
    ``val.use_image: false``): uint8-scale metrics score the network output itself, x255, neither clamped nor
    rounded (the official code passes the output tensors to the metric instead of the saved image)."""
    if kind == UINT8 and not use_image:
        return img.astype(np.float64) * 255.0
    img = np.clip(img, 0.0, 1.0)
    if kind == UINT8:
        # as tensor2img on a float32 network output: clamp, x255 in float32, round half to even
        return np.round(img.astype(np.float32) * np.float32(255.0)).astype(np.float64)
    if kind == FLOAT:
        return img
    raise ValueError(f'unknown metric input kind {kind!r}')


def compute_metrics_per_image(pred: Image, gt: Image, profile_or_metric_opts: ProfileOrOpts,
                              use_image: bool = True) -> List[Dict[str, float]]:
    """Like :func:`compute_metrics`, but one ``{result_key: value}`` dict per image of the batch."""
    metrics = resolve_metrics(profile_or_metric_opts)
    preds = _to_float_hwc_batch(pred, 'pred')
    gts = _to_float_hwc_batch(gt, 'gt')
    if preds.shape != gts.shape:
        raise ValueError(f'pred and gt differ in shape: {preds.shape} vs {gts.shape} (as B, H, W, C)')
    funcs = {key: METRIC_REGISTRY.get(opt['type']) for key, opt in metrics.items()}
    results: List[Dict[str, float]] = []
    for p, g in zip(preds, gts):
        row = {}
        for key, opt in metrics.items():
            fn = funcs[key]
            kind = getattr(fn, 'input_kind', UINT8)
            kwargs = {k: v for k, v in opt.items() if k not in NON_METRIC_KEYS}
            kwargs.setdefault('channel_order', 'rgb')
            check_kwargs(fn, kwargs, f"metric '{key}' (type {opt['type']})")
            row[key] = float(fn(_convert(p, kind, use_image), _convert(g, kind, use_image), **kwargs))
        results.append(row)
    return results


def compute_metrics(pred: Image, gt: Image, profile_or_metric_opts: ProfileOrOpts,
                    use_image: bool = True) -> Dict[str, float]:
    """Score restored images against ground truth under a metric profile or a ``val.metrics`` dict.

    Args:
        pred, gt: the same kind and shape, either
            * torch tensors (C, H, W) or (B, C, H, W), RGB, float in [0, 1] (the toolbox convention), or
            * numpy images (H, W) or (H, W, C), RGB: uint8 in [0, 255] or float in [0, 1].
            Values outside [0, 1] are clipped.
        profile_or_metric_opts: a profile name (``'basicsr_rgb'``, see ``PROFILES``), a
            :class:`MetricProfile`, or a BasicSR ``val.metrics`` dict ``{key: {type: ..., **kwargs}}``
            (``better`` keys are ignored).
    Returns:
        ``{result_key: value}``, e.g. ``{'psnr': 31.2, 'ssim': 0.88}``; for a batch the mean of the
        per-image values (BasicSR's aggregation: mean of PSNRs, not the PSNR of the mean MSE).

    Each metric applies its own conversion first: BasicSR/Restormer metrics see the image clamped,
    multiplied by 255 and rounded to integers (as ``tensor2img`` does); scikit-image-style metrics see
    the clipped float image. ``use_image=False`` scores the unrounded output instead (see ``_convert``).
    """
    rows = compute_metrics_per_image(pred, gt, profile_or_metric_opts, use_image)
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
