"""Image-quality metrics (registry) and the named metric profiles.

``compute_metrics(pred, gt, 'basicsr_rgb')`` is the one way to score restored images; see
:mod:`basicsr.metrics.profiles` for the profiles and the accepted inputs.
"""
import functools
import inspect
from typing import Any, Dict

from basicsr.utils.registry import METRIC_REGISTRY, check_kwargs

__all__ = ['build_metric', 'calculate_metric', 'METRIC_REGISTRY', 'compute_metrics', 'compute_metrics_per_image', 'get_profile',
           'PROFILES', 'MetricProfile', 'profile_name']


def build_metric(opt: Dict[str, Any], **extra: Any) -> Any:
    """Build opt['type'] from the METRIC registry; the other keys are keyword arguments.

    Metric functions come back with their keyword arguments bound: ``build_metric({'type':
    'calculate_psnr', 'crop_border': 4})(img, img2)``. Unknown keys raise a TypeError listing the accepted ones.
    """
    opt = dict(opt)
    target = METRIC_REGISTRY.get(opt.get('type')) if isinstance(opt.get('type'), str) else None
    if inspect.isfunction(target):
        kwargs = {k: v for k, v in opt.items() if k not in ('type', 'better')}
        kwargs.update(extra)
        check_kwargs(target, kwargs, f"metric '{opt['type']}'")
        return functools.wraps(target)(functools.partial(target, **kwargs))
    return METRIC_REGISTRY.build(opt, **extra)


def __getattr__(name: str) -> Any:
    # profiles import torch and numpy; keep `import basicsr.metrics` cheap until they are used
    if name in ('compute_metrics', 'compute_metrics_per_image', 'get_profile', 'PROFILES', 'MetricProfile',
                'profile_name'):
        from basicsr.metrics import profiles
        return getattr(profiles, name)
    raise AttributeError(f"module 'basicsr.metrics' has no attribute {name!r}")


def calculate_metric(data: Dict[str, Any], opt: Dict[str, Any]) -> float:
    """BasicSR's dispatcher: ``opt['type']`` from the registry called with ``**data`` (``img``, ``img2``) and
    the other keys of ``opt`` (``better`` is ignored), e.g. ``{'type': 'calculate_psnr', 'crop_border': 4}``."""
    return build_metric(opt)(**data)
