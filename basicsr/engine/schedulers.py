"""Learning-rate schedulers (iteration based) registered by name for ``train.scheduler.type``."""
from __future__ import annotations

import math
from typing import List, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from basicsr.utils.registry import SCHEDULER_REGISTRY


def _check_same_length(name: str, **lists: Sequence) -> None:
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f'{name}: {", ".join(f"{k} has {n}" for k, n in lengths.items())} entries; '
                         f'they must have the same length')


@SCHEDULER_REGISTRY.register()
class MultiStepRestartLR(LRScheduler):
    """Multiply by ``gamma`` at each milestone; at a restart, reset to ``initial_lr * restart_weight``.

    Chainable like BasicSR's: a milestone multiplies the group's current lr, and between milestones the
    current lr is kept, so a BasicSR warm-up (``train.warmup_iter``) that overwrites the lr carries over as in
    BasicSR (milestone 3, warm-up 5, lr 2: 0.4, 0.8, 1.2, 1.6, then 1.6 for good).
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 restarts: Sequence[int] = (0, ), restart_weights: Sequence[float] = (1, ),
                 last_epoch: int = -1) -> None:
        _check_same_length('MultiStepRestartLR', restarts=restarts, restart_weights=restart_weights)
        self.milestones, self.gamma = sorted(milestones), gamma
        self.restarts, self.restart_weights = list(restarts), list(restart_weights)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        it = self.last_epoch
        if it in self.restarts:
            weight = self.restart_weights[self.restarts.index(it)]
            return [g['initial_lr'] * weight for g in self.optimizer.param_groups]
        n = self.milestones.count(it)
        return [g['lr'] * self.gamma ** n for g in self.optimizer.param_groups]


@SCHEDULER_REGISTRY.register()
class MultiStepLR(MultiStepRestartLR):
    """Plain multi-step decay (BasicSR name)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, milestones, gamma, last_epoch=last_epoch)


def _cyclic_position(it: int, periods: Sequence[int]) -> tuple:
    """(cycle index, iteration inside the cycle, cycle length) for cumulative ``periods``, as BasicSR's
    ``get_position_from_periods``: step ``it`` belongs to the first cycle whose cumulative end is >= it, so a
    cycle's last step reaches its ``eta_min`` and the next cycle starts one step in (its restart value itself
    is never used). Steps past the last cycle stay at its end value (BasicSR fails there)."""
    start = 0
    for i, p in enumerate(periods):
        if it <= start + p or i == len(periods) - 1:
            return i, min(it - start, p), p
        start += p
    return len(periods) - 1, periods[-1], periods[-1]


@SCHEDULER_REGISTRY.register()
class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing with restarts (BasicSR): cycles of ``periods``, each scaled by ``restart_weights``,
    all annealing to one ``eta_min``."""

    def __init__(self, optimizer: Optimizer, periods: Sequence[int], restart_weights: Sequence[float] = (1, ),
                 eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _check_same_length('CosineAnnealingRestartLR', periods=periods, restart_weights=restart_weights)
        self.periods, self.restart_weights, self.eta_min = list(periods), list(restart_weights), eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        i, t, p = _cyclic_position(self.last_epoch, self.periods)
        w = self.restart_weights[i]
        return [self.eta_min + w * 0.5 * (g['initial_lr'] - self.eta_min) * (1 + math.cos(math.pi * t / p))
                for g in self.optimizer.param_groups]


@SCHEDULER_REGISTRY.register()
class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Restormer's schedule: like CosineAnnealingRestartLR but each cycle has its own ``eta_mins``."""

    def __init__(self, optimizer: Optimizer, periods: Sequence[int], restart_weights: Sequence[float] = (1, ),
                 eta_mins: Sequence[float] = (0, ), last_epoch: int = -1) -> None:
        _check_same_length('CosineAnnealingRestartCyclicLR', periods=periods, restart_weights=restart_weights,
                           eta_mins=eta_mins)
        self.periods, self.restart_weights, self.eta_mins = list(periods), list(restart_weights), list(eta_mins)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        i, t, p = _cyclic_position(self.last_epoch, self.periods)
        w, eta = self.restart_weights[i], self.eta_mins[i]
        return [eta + w * 0.5 * (g['initial_lr'] - eta) * (1 + math.cos(math.pi * t / p))
                for g in self.optimizer.param_groups]


@SCHEDULER_REGISTRY.register()
class TrueCosineAnnealingLR(LRScheduler):
    """NAFNet's cosine annealing over ``T_max`` iterations (closed form, no restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        t = min(self.last_epoch, self.T_max)
        return [self.eta_min + 0.5 * (g['initial_lr'] - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max))
                for g in self.optimizer.param_groups]


@SCHEDULER_REGISTRY.register()
class LinearWarmupCosineLR(LRScheduler):
    """Linear warm-up from ``warmup_start_lr`` over ``warmup_iters`` then cosine to ``eta_min`` at
    ``max_iters`` (PromptIR uses it per epoch: 15 warm-up of 150 epochs)."""

    def __init__(self, optimizer: Optimizer, warmup_iters: int, max_iters: int, warmup_start_lr: float = 0.0,
                 eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if not 0 <= warmup_iters < max_iters:
            raise ValueError(f'LinearWarmupCosineLR: need 0 <= warmup_iters < max_iters, got {warmup_iters}, '
                             f'{max_iters}')
        self.warmup_iters, self.max_iters = warmup_iters, max_iters
        self.warmup_start_lr, self.eta_min = warmup_start_lr, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        t = self.last_epoch
        out = []
        for g in self.optimizer.param_groups:
            base = g['initial_lr']
            if t < self.warmup_iters:
                out.append(self.warmup_start_lr + t * (base - self.warmup_start_lr) / max(self.warmup_iters, 1))
            else:
                frac = min(t - self.warmup_iters, self.max_iters - self.warmup_iters) / (
                    self.max_iters - self.warmup_iters)
                out.append(self.eta_min + 0.5 * (base - self.eta_min) * (1 + math.cos(math.pi * frac)))
        return out


def build_scheduler(optimizer: Optimizer, opt: dict) -> LRScheduler:
    """Build ``opt['type']`` from the scheduler registry around ``optimizer``."""
    return SCHEDULER_REGISTRY.build(dict(opt), optimizer=optimizer)


def warmup_lrs(base_lrs: Sequence[float], current_iter: int, warmup_iter: int) -> List[float]:
    """BasicSR's linear warm-up: lr * iter / warmup_iter for the first ``warmup_iter`` iterations."""
    return [lr * current_iter / warmup_iter for lr in base_lrs]
