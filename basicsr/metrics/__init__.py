"""Registry of image-quality metrics and the named metric profiles."""
from typing import Any, Dict

from basicsr.utils.registry import METRIC_REGISTRY

__all__ = ['build_metric', 'METRIC_REGISTRY']


def build_metric(opt: Dict[str, Any], **extra: Any) -> Any:
    """Build opt['type'] from the METRIC registry; the other keys are keyword arguments."""
    return METRIC_REGISTRY.build(dict(opt), **extra)
