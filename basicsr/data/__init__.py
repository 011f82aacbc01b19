"""Datasets, degradations (registered transforms), samplers and loaders."""
from typing import Any, Dict, Optional

from basicsr.utils.registry import DATASET_REGISTRY, DEGRADATION_REGISTRY

__all__ = ['build_dataset', 'build_dataloader', 'build_degradation', 'DATASET_REGISTRY', 'DEGRADATION_REGISTRY']


def build_dataset(opt: Dict[str, Any]) -> Any:
    """Build a dataset from its option block; the whole block is passed as ``opt`` (BasicSR convention)."""
    cls = DATASET_REGISTRY.get(opt['type'])
    return cls(dict(opt))


def build_dataloader(dataset: Any, dataset_opt: Dict[str, Any], num_gpu: int = 1, dist: bool = False,
                     sampler: Any = None, seed: Optional[int] = None) -> Any:
    """BasicSR's signature for :func:`basicsr.data.loader.build_dataloader` (batch size and workers per process)."""
    from basicsr.data.loader import build_dataloader as build
    return build(dataset, dataset_opt, num_gpu=num_gpu, dist=dist, sampler=sampler, seed=seed or 0)


def build_degradation(opt: Dict[str, Any]) -> Any:
    """Build a registered degradation transform from ``{'type': ..., **kwargs}``."""
    return DEGRADATION_REGISTRY.build(dict(opt))
