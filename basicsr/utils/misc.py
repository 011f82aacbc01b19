"""BasicSR's ``basicsr.utils.misc`` helpers: seeding, time stamps, experiment folders, directory scans."""
from __future__ import annotations

import os
import random
import time
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from basicsr.utils.dist_util import master_only
from basicsr.utils.logger import get_logger

__all__ = ['set_random_seed', 'get_time_str', 'mkdir_and_rename', 'make_exp_dirs', 'scandir', 'check_resume',
           'sizeof_fmt']


def set_random_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_time_str() -> str:
    """Local time as ``YYYYmmdd_HHMMSS`` (log and archive names)."""
    return time.strftime('%Y%m%d_%H%M%S', time.localtime())


@master_only
def mkdir_and_rename(path: str) -> None:
    """Create ``path``; an existing folder is first renamed ``<path>_archived_<time>`` (logged, not silent)."""
    if os.path.exists(path):
        new_name = f'{path}_archived_{get_time_str()}'
        get_logger().warning(f"folder '{path}' exists: renamed to '{new_name}'")
        os.rename(path, new_name)
    os.makedirs(path, exist_ok=True)


@master_only
def make_exp_dirs(opt: Dict[str, Any]) -> None:
    """Create the run folders of ``opt['path']`` (the experiment/results root is archived if it exists)."""
    paths = dict(opt['path'])
    root = paths.pop('experiments_root' if opt['is_train'] else 'results_root')
    mkdir_and_rename(root)
    for key, path in paths.items():
        if isinstance(path, str) and key in ('models', 'training_states', 'log', 'visualization'):
            os.makedirs(path, exist_ok=True)


def scandir(dir_path: str, suffix: Optional[Union[str, Tuple[str, ...]]] = None, recursive: bool = False,
            full_path: bool = False) -> Iterator[str]:
    """Yield the files under ``dir_path`` (hidden ones skipped) ending with ``suffix``, as paths relative to
    ``dir_path`` (or full paths); ``recursive`` descends into sub-folders."""
    if suffix is not None and not isinstance(suffix, (str, tuple)):
        raise TypeError(f'scandir: suffix must be a string or a tuple of strings, got {type(suffix).__name__}')

    def walk(folder: str) -> Iterator[str]:
        for entry in os.scandir(folder):
            if not entry.name.startswith('.') and entry.is_file():
                out = entry.path if full_path else os.path.relpath(entry.path, dir_path)
                if suffix is None or out.endswith(suffix):
                    yield out
            elif recursive and entry.is_dir():
                yield from walk(entry.path)

    return walk(dir_path)


def check_resume(opt: Dict[str, Any], resume_iter: int) -> None:
    """BasicSR's two-file resume: point ``pretrain_network_*`` at ``net_*_<resume_iter>.pth``.

    The toolbox's own resume (one checkpoint with networks, optimisers and RNG) does not need this; it is
    here for scripts written against BasicSR.
    """
    if not opt['path'].get('resume_state'):
        return
    ignore = opt['path'].get('ignore_resume_networks') or []
    for network in (k for k in opt if k.startswith('network_')):
        if network not in ignore:
            opt['path'][f'pretrain_{network}'] = os.path.join(
                opt['path']['models'], f"net_{network.replace('network_', '')}_{resume_iter}.pth")
    for key in [k for k in opt['path'] if k.startswith('param_key')]:
        if opt['path'][key] == 'params_ema':
            opt['path'][key] = 'params'


def sizeof_fmt(size: float, suffix: str = 'B') -> str:
    """Human-readable size with binary prefixes, e.g. ``sizeof_fmt(2048) == '2.0 KB'``."""
    for unit in ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']:
        if abs(size) < 1024.0:
            return f'{size:3.1f} {unit}{suffix}'
        size /= 1024.0
    return f'{size:3.1f} Y{suffix}'
