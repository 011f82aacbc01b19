"""Datasets, degradations (registered transforms), samplers and loaders."""
from typing import Any, Dict

from basicsr.utils.registry import DATASET_REGISTRY, DEGRADATION_REGISTRY

__all__ = ['build_dataset', 'build_degradation', 'DATASET_REGISTRY', 'DEGRADATION_REGISTRY']


def build_dataset(opt: Dict[str, Any]) -> Any:
    """Build a dataset from its option block; the whole block is passed as ``opt`` (BasicSR convention)."""
    cls = DATASET_REGISTRY.get(opt['type'])
    return cls(dict(opt))


def build_degradation(opt: Dict[str, Any]) -> Any:
    """Build a registered degradation transform from ``{'type': ..., **kwargs}``."""
    return DEGRADATION_REGISTRY.build(dict(opt))
