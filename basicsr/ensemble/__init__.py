"""Registry of training-free ensembling of several restorers' outputs.

Registered: ``EnsIR`` (:mod:`basicsr.ensemble.ensir`), ``Average``, ``ZZPM``, ``Median``
(:mod:`basicsr.ensemble.baselines`). Build from an ``ensemble:`` option block (load or fit a table) with
:func:`basicsr.ensemble.runner.build_ensemble_from_opt`.
"""
from typing import Any, Dict

from basicsr.utils.registry import ENSEMBLE_REGISTRY

__all__ = ['build_ensembler', 'ENSEMBLE_REGISTRY']


def build_ensembler(opt: Dict[str, Any], **extra: Any) -> Any:
    """Build opt['type'] from the ENSEMBLE registry; the other keys are keyword arguments."""
    return ENSEMBLE_REGISTRY.build(dict(opt), **extra)
