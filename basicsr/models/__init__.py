"""Registry of training/evaluation models that own networks, losses and optimisers."""
from typing import Any, Dict

from basicsr.utils.registry import MODEL_REGISTRY

__all__ = ['build_model', 'MODEL_REGISTRY']


def build_model(opt: Dict[str, Any]) -> Any:
    """Build the model named by ``opt['model_type']`` from the full (validated) option dict."""
    return MODEL_REGISTRY.get(opt['model_type'])(opt)
