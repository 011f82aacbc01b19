"""Seeded, sharded, enlargeable sampler that resumes mid-epoch at the exact next sample."""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class EnlargedSampler(Sampler):
    """Like ``DistributedSampler``, with BasicSR's ``dataset_enlarge_ratio`` and an exact resume position.

    One epoch visits ``dataset_len * ratio`` indices (so a short dataset does not restart every few
    iterations) in an order fixed by ``(seed, epoch)``, padded by wrapping so every rank gets the same
    count; rank ``r`` takes positions ``r, r + num_replicas, ...``. Indices run over the enlarged range
    (the dataset wraps them), so repeats of an image within an epoch get different crops and noise.

    Items are ``(index, epoch)`` keys: the dataset seeds each sample from them, which works with persistent
    workers. The loop (the prefetcher) reports every batch it hands out with :meth:`record`;
    :meth:`state_dict` then holds the epoch and how many samples this rank has consumed, and after
    :meth:`load_state_dict` the next iteration continues at the exact next sample.
    """

    def __init__(self, dataset_len: int, num_replicas: int = 1, rank: int = 0, ratio: int = 1, seed: int = 0,
                 shuffle: bool = True) -> None:
        if dataset_len <= 0:
            raise ValueError(f'EnlargedSampler: the dataset is empty (dataset_len={dataset_len})')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'EnlargedSampler: rank {rank} is outside 0..{num_replicas - 1}')
        if int(ratio) != ratio or ratio < 1:
            raise ValueError(f'dataset_enlarge_ratio must be a positive integer, got {ratio!r}')
        self.dataset_len = dataset_len
        self.num_replicas = num_replicas
        self.rank = rank
        self.ratio = int(ratio)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.num_samples = math.ceil(dataset_len * self.ratio / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.epoch = 0
        self.consumed = 0
        # optional (epoch, position in this rank's shard) -> training patch size, see TrainStream
        self.patch_size_of: Optional[Callable[[int, int], int]] = None

    def global_order(self, epoch: int) -> List[int]:
        """Indices of ``epoch`` for all ranks, padded to ``total_size``."""
        n = self.dataset_len * self.ratio
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed((self.seed * 1_000_003 + epoch) % 2 ** 63)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        while len(order) < self.total_size:
            order += order[:self.total_size - len(order)]
        return order

    def __iter__(self) -> Iterator[Tuple[int, ...]]:
        if self.consumed >= self.num_samples:
            self.consumed = 0  # iterated again without set_epoch: a new pass over the same epoch
        shard = self.global_order(self.epoch)[self.rank:self.total_size:self.num_replicas]
        epoch = self.epoch
        if self.patch_size_of is None:
            return iter([(i, epoch) for i in shard[self.consumed:]])
        # (index, epoch, patch size): the dataset crops this sample at the size of the iteration it feeds
        return iter([(i, epoch, self.patch_size_of(epoch, pos))
                     for pos, i in enumerate(shard) if pos >= self.consumed])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``; calling it with the current epoch (e.g. right after a resume) keeps the position."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.consumed = 0

    def record(self, num_samples: int) -> None:
        """The training loop has taken ``num_samples`` more samples of this epoch on this rank."""
        self.consumed += int(num_samples)

    def state_dict(self) -> Dict[str, Any]:
        return {'epoch': self.epoch, 'consumed': self.consumed, 'num_replicas': self.num_replicas,
                'seed': self.seed, 'dataset_len': self.dataset_len, 'ratio': self.ratio}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the position; a different world size is accepted when the consumed count divides evenly."""
        for key in ('seed', 'dataset_len', 'ratio'):
            if state.get(key, getattr(self, key)) != getattr(self, key):
                raise ValueError(f'sampler state was saved with {key}={state[key]} but this run has {key}='
                                 f'{getattr(self, key)}: the sample order would differ, so the exact resume '
                                 'position is meaningless')
        consumed = int(state['consumed'])
        old_replicas = int(state.get('num_replicas', self.num_replicas))
        if old_replicas != self.num_replicas:
            global_consumed = consumed * old_replicas
            if global_consumed % self.num_replicas:
                raise ValueError(f'cannot resume: {global_consumed} samples were consumed over {old_replicas} '
                                 f'rank(s), not divisible over {self.num_replicas} rank(s)')
            consumed = global_consumed // self.num_replicas
        self.epoch = int(state['epoch'])
        self.consumed = consumed


class SeededDataset(Dataset):
    """A dataset written for BasicSR (integer indices, draws from the global ``random``/numpy/torch RNGs) taking
    this sampler's ``(index, epoch)`` keys: each item is drawn with the global RNGs seeded from
    ``(seed, epoch, index)`` and restored afterwards, so a sample is a pure function of its key whatever the
    number of workers, and an exact resume reproduces it. Other attributes (``opt``...) are the dataset's."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset':  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: Tuple[int, int]) -> Any:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        index %= len(self.dataset)
        seeds = np.random.SeedSequence([self.seed % 2 ** 63, epoch, index]).generate_state(3, np.uint64)
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(int(seeds[0]))
        np.random.seed(int(seeds[1]) % 2 ** 32)
        torch.manual_seed(int(seeds[2]) % 2 ** 63)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class StageBatchSampler(Sampler):
    """Batches of an :class:`EnlargedSampler` whose size depends on the epoch, the last incomplete one dropped:
    DSRIR's per-stage DataLoaders (each progressive stage its batch size, whole epochs of it) as one loader.
    ``batch_of_epoch(epoch)`` gives the size; the epoch is read when an epoch's iteration starts."""

    def __init__(self, sampler: EnlargedSampler, batch_of_epoch: Callable[[int], int]) -> None:
        self.sampler, self.batch_of_epoch = sampler, batch_of_epoch

    def __iter__(self) -> Iterator[List[Tuple[int, ...]]]:
        size = self.batch_of_epoch(self.sampler.epoch)
        batch: List[Tuple[int, ...]] = []
        for key in self.sampler:
            batch.append(key)
            if len(batch) == size:
                yield batch
                batch = []

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_of_epoch(self.sampler.epoch)
