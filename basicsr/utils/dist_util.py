"""BasicSR's ``basicsr.utils.dist_util`` names over :mod:`basicsr.utils.dist` (torchrun-style, one code path)."""
from __future__ import annotations

import functools
from typing import Any, Callable

from basicsr.utils.dist import get_dist_info, init_dist_from_env

__all__ = ['get_dist_info', 'init_dist', 'master_only']


def init_dist(launcher: str = 'pytorch', backend: str = 'nccl', **kwargs: Any) -> None:
    """Initialise the process group from the torchrun/``torch.distributed.launch`` environment.

    ``launcher`` is accepted for BasicSR's signature ('pytorch'; slurm jobs should start the script with
    ``srun ... torchrun``); ``backend`` falls back to gloo without CUDA.
    """
    if launcher not in ('pytorch', 'slurm', 'none'):
        raise ValueError(f"init_dist: launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    init_dist_from_env(backend)


def master_only(func: Callable) -> Callable:
    """Decorator: run ``func`` on rank 0 only (other ranks get None)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if get_dist_info()[0] == 0:
            return func(*args, **kwargs)
        return None
    return wrapper
