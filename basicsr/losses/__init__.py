"""Registry of loss functions (nn.Module) configured by train.*_opt."""
from typing import Any, Dict

from basicsr.utils.registry import LOSS_REGISTRY

__all__ = ['build_loss', 'LOSS_REGISTRY']


def build_loss(opt: Dict[str, Any], **extra: Any) -> Any:
    """Build opt['type'] from the LOSS registry; the other keys are keyword arguments."""
    return LOSS_REGISTRY.build(dict(opt), **extra)
