"""DataLoader construction from a dataset option block (BasicSR keys)."""
from __future__ import annotations

import random
from functools import partial
from typing import Any, Dict, Optional, Union

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from basicsr.data.prefetcher import CPUPrefetcher, CUDAPrefetcher


def _init_worker(worker_id: int, seed: int, rank: int) -> None:
    """Start a loader worker: seed its global RNGs (datasets here use per-sample generators; this covers
    third-party code) and keep OpenCV single-threaded (each worker already has a core; OpenCV's own pool in
    every worker would oversubscribe the machine, as torch does not, since it gives workers one thread)."""
    cv2.setNumThreads(0)
    ss = np.random.SeedSequence([seed % (2 ** 63), rank, worker_id])
    np.random.seed(ss.generate_state(1)[0])
    random.seed(int(ss.generate_state(1, np.uint64)[0]))
    torch.manual_seed(int(ss.generate_state(1, np.uint64)[0]) % (2 ** 63))


def build_dataloader(dataset: Dataset, opt: Dict[str, Any], num_gpu: int = 1, dist: bool = False,
                     sampler: Optional[Sampler] = None, seed: int = 0,
                     batch_sampler: Optional[Sampler] = None) -> DataLoader:
    """DataLoader for one dataset block.

    Options: ``phase``; ``batch_size_per_gpu`` and ``num_worker_per_gpu`` (per process: with torchrun
    every rank loads its own share); ``use_shuffle`` (train, only without a sampler); ``pin_memory``
    (default true, used only when CUDA is in use); ``persistent_workers`` (default true with workers) and
    ``prefetch_factor`` (batches each worker prepares ahead, default 2).
    Train loaders drop the last incomplete batch unless ``drop_last: false`` (MPRNet's loaders keep it);
    val/test loaders default to batch 1, in order.

    ``dist`` is accepted for BasicSR's signature only: batch size and workers are per process in both cases
    (one code path for 1..N processes under torchrun). The dataset's per-sample seed base is set to ``seed``
    (``manual_seed``) when it supports it. A ``batch_sampler`` (batches of varying size, see
    :class:`~basicsr.data.sampler.StageBatchSampler`) replaces ``sampler``, the batch size and ``drop_last``.
    """
    phase = opt.get('phase', 'train')
    rank = getattr(sampler, 'rank', 0)
    if hasattr(dataset, 'set_seed'):
        dataset.set_seed(seed)
    batch_size = int(opt.get('batch_size_per_gpu', 1))
    drop_last = phase == 'train' and bool(opt.get('drop_last', True))
    shuffle = phase == 'train' and sampler is None and bool(opt.get('use_shuffle', True))
    num_workers = int(opt.get('num_worker_per_gpu', 0))
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"dataset '{opt.get('name', '?')}': batch_size_per_gpu must be >= 1 and "
                         f'num_worker_per_gpu >= 0, got {batch_size} and {num_workers}')
    if phase == 'train' and len(sampler or dataset) < batch_size:
        raise ValueError(f"dataset '{opt.get('name', '?')}' has {len(sampler or dataset)} samples per epoch on "
                         f'this rank, fewer than batch_size_per_gpu={batch_size}, so every batch would be dropped; '
                         'raise dataset_enlarge_ratio or lower the batch size')
    use_cuda = num_gpu > 0 and torch.cuda.is_available()
    generator = torch.Generator()
    generator.manual_seed(seed % (2 ** 63))
    kwargs: Dict[str, Any] = dict(
        batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last, num_workers=num_workers,
        pin_memory=use_cuda and bool(opt.get('pin_memory', True)), generator=generator)
    if num_workers > 0:
        kwargs['persistent_workers'] = bool(opt.get('persistent_workers', True))
        kwargs['prefetch_factor'] = int(opt.get('prefetch_factor', 2))
        kwargs['worker_init_fn'] = partial(_init_worker, seed=seed, rank=rank)
    if batch_sampler is not None:
        for key in ('batch_size', 'shuffle', 'sampler', 'drop_last'):
            kwargs.pop(key)
        kwargs['batch_sampler'] = batch_sampler
    return DataLoader(dataset, **kwargs)


def build_prefetcher(loader: DataLoader, opt: Dict[str, Any],
                     device: Union[str, torch.device] = 'cpu') -> Union[CPUPrefetcher, CUDAPrefetcher]:
    """``prefetch_mode``: ~ or 'cpu' -> CPUPrefetcher; 'cuda' -> CUDAPrefetcher (needs a CUDA device)."""
    mode = opt.get('prefetch_mode')
    if mode in (None, 'cpu'):
        return CPUPrefetcher(loader)
    if mode == 'cuda':
        return CUDAPrefetcher(loader, torch.device(device))
    raise ValueError(f"dataset '{opt.get('name', '?')}': prefetch_mode must be ~, 'cpu' or 'cuda', got {mode!r}")
