"""Per-epoch learning-rate schedules (MPRNet, DSRIR, PromptIR) and DSRIR's progressive stage plan.

The engine steps schedulers once per iteration. These schedulers convert the iteration into the epoch of
the official training loop and return that epoch's learning rate, which is constant within the epoch as in
the official code (which steps its schedulers at the end of every epoch). The conversion is given by
``iters_per_epoch``: an int, or a list of ``[num_epochs, iters_per_epoch]`` segments when the iterations per
epoch change during training (DSRIR's progressive batch sizes). :func:`epoch_stage_plan` computes both that
list and the ``iters`` of Restormer's :class:`~basicsr.engine.hooks.ProgressiveHook` from the dataset size,
so one progressive mechanism serves Restormer and DSRIR; ``scripts/dsrir_schedule.py`` prints the YAML.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Sequence, Union

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from basicsr.utils.registry import SCHEDULER_REGISTRY

ItersPerEpoch = Union[int, Sequence[Sequence[int]]]

# DSRIR utils/get_epoch_chg.py: iterations per stage (400k in total) for batches 16/14/12/8
DSRIR_STAGE_ITERS = (128_000, 112_000, 96_000, 64_000)
DSRIR_BATCH_SIZES = (16, 14, 12, 8)
DSRIR_PATCH_SIZES = (128, 160, 192, 256)


def _segments(iters_per_epoch: ItersPerEpoch, owner: str) -> List[List[int]]:
    """Normalise ``iters_per_epoch`` to ``[[num_epochs, iters], ...]`` (the last segment extends forever)."""
    if isinstance(iters_per_epoch, int) and not isinstance(iters_per_epoch, bool):
        segs = [[1, iters_per_epoch]]
    elif isinstance(iters_per_epoch, (list, tuple)) and iters_per_epoch and all(
            isinstance(s, (list, tuple)) and len(s) == 2 for s in iters_per_epoch):
        segs = [[int(a), int(b)] for a, b in iters_per_epoch]
    else:
        raise ValueError(f'{owner}: iters_per_epoch must be a positive int or a list of [num_epochs, '
                         f'iters_per_epoch] pairs, got {iters_per_epoch!r}')
    for n, ipe in segs:
        if n < 1 or ipe < 1:
            raise ValueError(f'{owner}: iters_per_epoch entries must be positive, got {iters_per_epoch!r}')
    return segs


def epoch_of_iteration(it: int, segments: Sequence[Sequence[int]]) -> int:
    """0-based epoch of 0-based iteration ``it`` for ``[[num_epochs, iters_per_epoch], ...]`` segments."""
    epoch = 0
    for i, (n, ipe) in enumerate(segments):
        span = n * ipe
        if it < span or i == len(segments) - 1:
            return epoch + it // ipe
        it -= span
        epoch += n
    return epoch


class EpochLR(LRScheduler, ABC):
    """Base: ``get_lr`` = ``lr_at_epoch(base_lr, epoch)`` for the epoch of the current iteration."""

    def __init__(self, optimizer: Optimizer, iters_per_epoch: ItersPerEpoch, last_epoch: int = -1) -> None:
        self.segments = _segments(iters_per_epoch, type(self).__name__)
        super().__init__(optimizer, last_epoch)

    @property
    def epoch(self) -> int:
        """0-based training epoch of the current iteration."""
        return epoch_of_iteration(max(self.last_epoch, 0), self.segments)

    @abstractmethod
    def lr_at_epoch(self, base_lr: float, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` for a group whose initial lr is ``base_lr``."""

    def get_lr(self) -> List[float]:
        return [self.lr_at_epoch(g['initial_lr'], self.epoch) for g in self.optimizer.param_groups]


@SCHEDULER_REGISTRY.register()
class WarmupCosineEpochLR(EpochLR):
    """MPRNet/DSRIR: ``GradualWarmupScheduler(multiplier=1, total_epoch=warmup_epochs)`` then
    ``CosineAnnealingLR(T_max=cosine_epochs, eta_min)``, stepped once before training and after every epoch.

    With 1-based epoch e: ``base * e / W`` for e <= W, then ``eta_min + (base - eta_min) * (1 + cos(pi * (e - W -
    1) / T)) / 2`` (so epoch W + 1 runs at the base rate again). DSRIR: W = 3, T = total - 3, eta_min 1e-6 gives
    6.67e-5, 1.33e-4, 2e-4, 2e-4, ... ~1e-6 at the last epoch; MPRNet denoising uses T = total - 3 + 40.

    Args:
        iters_per_epoch: int or ``[[num_epochs, iters_per_epoch], ...]`` (see the module docstring).
        total_epochs: training length in epochs; default ``cosine_epochs`` = total_epochs - warmup_epochs.
    """

    def __init__(self, optimizer: Optimizer, iters_per_epoch: ItersPerEpoch, total_epochs: int,
                 warmup_epochs: int = 3, eta_min: float = 1e-6, cosine_epochs: int | None = None,
                 last_epoch: int = -1) -> None:
        self.warmup_epochs, self.eta_min = int(warmup_epochs), float(eta_min)
        self.cosine_epochs = int(cosine_epochs if cosine_epochs is not None else total_epochs - warmup_epochs)
        if self.warmup_epochs < 0 or self.cosine_epochs < 1:
            raise ValueError(f'WarmupCosineEpochLR: need warmup_epochs >= 0 and cosine_epochs >= 1, got '
                             f'warmup_epochs={warmup_epochs}, total_epochs={total_epochs}, '
                             f'cosine_epochs={cosine_epochs}')
        super().__init__(optimizer, iters_per_epoch, last_epoch)

    def lr_at_epoch(self, base_lr: float, epoch: int) -> float:
        e, w = epoch + 1, self.warmup_epochs
        if e <= w:
            return base_lr * e / w
        t = e - w - 1
        return self.eta_min + 0.5 * (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.cosine_epochs))


@SCHEDULER_REGISTRY.register()
class LinearWarmupCosineEpochLR(EpochLR):
    """PromptIR: Lightning-Bolts ``LinearWarmupCosineAnnealingLR`` stepped per epoch by Lightning.

    Closed form f(k) = ``warmup_start_lr + k * (base - warmup_start_lr) / (warmup_epochs - 1)`` for k < W, then
    ``eta_min + (base - eta_min) * (1 + cos(pi * (k - W) / (max_epochs - W))) / 2``. Lightning steps an
    epoch-interval scheduler at the end of epoch e with ``current_epoch`` still e, and PromptIR's
    ``lr_scheduler_step`` passes that epoch, so 0-based epoch e trains at f(max(e - ``lag_epochs``, 0)) with
    ``lag_epochs`` 1: epochs 0 and 1 both at lr 0, the base rate reached at epochs 15 and 16 (pytorch-lightning
    2.0.1, PromptIR's version). ``lag_epochs: 0`` gives f(e). PromptIR: W = 15, max_epochs = 150, start 0,
    eta_min 0; training stops after 120 epochs, before the cosine ends.
    """

    def __init__(self, optimizer: Optimizer, iters_per_epoch: ItersPerEpoch, warmup_epochs: int = 15,
                 max_epochs: int = 150, warmup_start_lr: float = 0.0, eta_min: float = 0.0, lag_epochs: int = 1,
                 last_epoch: int = -1) -> None:
        if not 1 < warmup_epochs < max_epochs:
            raise ValueError(f'LinearWarmupCosineEpochLR: need 1 < warmup_epochs < max_epochs, got '
                             f'warmup_epochs={warmup_epochs}, max_epochs={max_epochs}')
        if lag_epochs < 0:
            raise ValueError(f'LinearWarmupCosineEpochLR: lag_epochs must be >= 0, got {lag_epochs}')
        self.warmup_epochs, self.max_epochs = int(warmup_epochs), int(max_epochs)
        self.warmup_start_lr, self.eta_min = float(warmup_start_lr), float(eta_min)
        self.lag_epochs = int(lag_epochs)
        super().__init__(optimizer, iters_per_epoch, last_epoch)

    def lr_at_epoch(self, base_lr: float, epoch: int) -> float:
        epoch = max(epoch - self.lag_epochs, 0)
        w = self.warmup_epochs
        if epoch < w:
            return self.warmup_start_lr + epoch * (base_lr - self.warmup_start_lr) / (w - 1)
        frac = min(epoch - w, self.max_epochs - w) / (self.max_epochs - w)
        return self.eta_min + 0.5 * (base_lr - self.eta_min) * (1 + math.cos(math.pi * frac))


# ---------------------------------------------------------------------------------------------- DSRIR plan
def dsrir_epoch_changes(num_images: int, stage_iters: Sequence[int] = DSRIR_STAGE_ITERS,
                        batch_sizes: Sequence[int] = DSRIR_BATCH_SIZES) -> List[int]:
    """Cumulative last epoch of every progressive stage, as DSRIR's ``get_epoch_chg.py`` computes it.

    Stage i trains ``floor(stage_iters[i] / (num_images / batch_sizes[i]))`` epochs. 15144 images (all-in-one)
    -> [135, 238, 314, 347]; 5000 (rain or haze) -> [409, 722, 952, 1054].
    """
    if len(stage_iters) != len(batch_sizes):
        raise ValueError(f'stage_iters ({len(stage_iters)}) and batch_sizes ({len(batch_sizes)}) must have the '
                         f'same length')
    if num_images < 1:
        raise ValueError(f'num_images must be positive, got {num_images}')
    changes, total = [], 0
    for iters, batch in zip(stage_iters, batch_sizes):
        total += int(iters // (num_images / batch))
        changes.append(total)
    return changes


def epoch_stage_plan(num_images: int, epoch_changes: Sequence[int], batch_sizes: Sequence[int],
                     patch_sizes: Sequence[int], world_size: int = 1) -> Dict[str, Any]:
    """Options for epoch-based progressive training run by the iteration-based engine.

    Stage i covers epochs ``epoch_changes[i-1] + 1 .. epoch_changes[i]`` with global batch ``batch_sizes[i]``
    and patch ``patch_sizes[i]``; an epoch of stage i has ``floor(ceil(N / world) / (batch / world))``
    iterations (the official drop_last loader for one process).

    Returns ``{'mini_batch_sizes', 'gt_sizes', 'iters'}`` for ``datasets.train`` (ProgressiveHook: the loader
    yields ``max(batch)`` patches of ``max(patch)`` and the hook keeps ``mini_batch_sizes[i]`` of them,
    cropped to ``gt_sizes[i]``), ``iters_per_epoch`` segments for the epoch schedulers, ``total_iter`` and
    ``total_epochs``. Batches are per process.
    """
    n = len(epoch_changes)
    if not n == len(batch_sizes) == len(patch_sizes):
        raise ValueError(f'epoch_changes ({n}), batch_sizes ({len(batch_sizes)}) and patch_sizes '
                         f'({len(patch_sizes)}) must have the same length')
    if list(epoch_changes) != sorted(set(epoch_changes)) or epoch_changes[0] < 1:
        raise ValueError(f'epoch_changes must be strictly increasing positive epochs, got {list(epoch_changes)}')
    per_rank = []
    for b in batch_sizes:
        if b % world_size:
            raise ValueError(f'batch size {b} is not divisible by the {world_size} processes')
        per_rank.append(b // world_size)
    samples_per_rank = math.ceil(num_images / world_size)
    segments, iters = [], []
    prev = 0
    for change, b in zip(epoch_changes, per_rank):
        ipe = samples_per_rank // b
        if ipe < 1:
            raise ValueError(f'{num_images} images give no full batch of {b * world_size}')
        segments.append([change - prev, ipe])
        iters.append((change - prev) * ipe)
        prev = change
    return {'mini_batch_sizes': per_rank, 'gt_sizes': list(patch_sizes), 'iters': iters,
            'iters_per_epoch': segments, 'total_iter': sum(iters), 'total_epochs': int(epoch_changes[-1]),
            'batch_size_per_gpu': max(per_rank), 'gt_size': max(patch_sizes)}
