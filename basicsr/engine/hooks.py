"""Hooks that plug into the trainer at named points (before_run, before_iter, after_iter, after_run).

The trainer owns the order of things; hooks own one concern each: progressive patch/batch schedule,
EMA, timing and logging, validation, checkpointing. They run in ascending ``priority``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

import torch

from basicsr.utils.dist import all_reduce_mean, get_dist_info
from basicsr.utils.logger import ETA, format_log, get_logger
from basicsr.utils.registry import HOOK_REGISTRY

if TYPE_CHECKING:  # pragma: no cover
    from basicsr.engine.trainer import Trainer


class Hook:
    """Base hook; override the points you need."""
    priority = 50

    def before_run(self, trainer: 'Trainer') -> None:
        pass

    def before_iter(self, trainer: 'Trainer', batches: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return batches

    def after_iter(self, trainer: 'Trainer') -> None:
        pass

    def after_run(self, trainer: 'Trainer') -> None:
        pass


@HOOK_REGISTRY.register()
class ProgressiveHook(Hook):
    """Restormer's progressive learning: at cumulative ``iters`` boundaries, use ``mini_batch_sizes[j]``
    samples of each loaded batch, randomly cropped to ``gt_sizes[j]`` (the loader yields ``gt_size``).

    ``crop``: 'batch' (Restormer: one offset for the whole batch), 'per_sample' (each sample gets its own offset
    inside its loaded patch) or 'loader' (DSRIR's per-stage loaders: the loader already yields each stage's
    batch and patch size, see :meth:`~basicsr.engine.trainer.TrainStream.load_stages`, so nothing is cut here).
    Randomness comes from a generator seeded with (seed, iteration), so a resumed run crops identically, and
    the seed is the same on every rank: under DDP every rank cuts the one offset of the batch (a per-sample
    offset is drawn for the whole global batch, each rank taking its samples' share), as one process with the
    global batch would. The kept subset (``mini_batch_sizes`` below the loaded batch) is the same positions of
    every rank's batch, a random subset like one process's, not the same samples.
    """
    priority = 10

    def __init__(self, mini_batch_sizes: List[int], gt_sizes: List[int], iters: List[int], scale: int = 1,
                 seed: int = 0, crop: str = 'batch') -> None:
        if not len(mini_batch_sizes) == len(gt_sizes) == len(iters):
            raise ValueError(f'datasets.train: mini_batch_sizes ({len(mini_batch_sizes)}), gt_sizes '
                             f'({len(gt_sizes)}) and iters ({len(iters)}) must have the same length')
        if crop not in ('batch', 'per_sample', 'loader'):
            raise ValueError(f"datasets.train.progressive_crop must be 'batch', 'per_sample' or 'loader', got {crop!r}")
        self.crop = crop
        self.mini_batch_sizes, self.gt_sizes, self.scale, self.seed = mini_batch_sizes, gt_sizes, scale, seed
        self.bounds = [sum(iters[:i + 1]) for i in range(len(iters))]
        self._announced = -1

    def stage(self, it: int) -> int:
        for j, b in enumerate(self.bounds):
            if it <= b:
                return j
        return len(self.bounds) - 1

    def before_iter(self, trainer: 'Trainer', batches: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        j = self.stage(trainer.iter)
        bs, size = self.mini_batch_sizes[j], self.gt_sizes[j]
        if j != self._announced:
            get_logger().info(f'progressive training: patch size {size}, batch size {bs} per GPU '
                              f'from iteration {trainer.iter}')
            self._announced = j
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + trainer.iter)
        out = []
        for batch in batches:
            gt, lq = batch['gt'], batch['lq']
            n = gt.size(0)
            if bs < n:
                keep = torch.randperm(n, generator=gen)[:bs].sort().values
                batch = {k: _take(v, keep) if _per_sample(v, n) else v for k, v in batch.items()}
                gt, lq = batch['gt'], batch['lq']
            lq_size = size // self.scale
            h, w = lq.shape[-2:]
            if lq_size < min(h, w):
                gt, lq = self._crop(gt, lq, lq_size, gen)
            out.append({**batch, 'gt': gt, 'lq': lq})
        return out

    def _crop(self, gt: torch.Tensor, lq: torch.Tensor, lq_size: int, gen: torch.Generator) -> tuple:
        """Crop (N, C, H, W) ``lq`` to ``lq_size`` and ``gt`` alike: one offset, or one per sample."""
        h, w = lq.shape[-2:]
        n, pick = 1, slice(None)
        if self.crop != 'batch':  # offsets of the global batch; the sampler gives rank r positions r::world
            rank, world = get_dist_info()
            n, pick = lq.size(0) * world, slice(rank, None, world)
        tops = torch.randint(h - lq_size + 1, (n, ), generator=gen)[pick].tolist()
        lefts = torch.randint(w - lq_size + 1, (n, ), generator=gen)[pick].tolist()
        s, gs = self.scale, lq_size * self.scale
        if len(tops) == 1:
            t, l_ = tops[0], lefts[0]
            return gt[..., t * s:t * s + gs, l_ * s:l_ * s + gs], lq[..., t:t + lq_size, l_:l_ + lq_size]
        gts = [g[..., t * s:t * s + gs, l_ * s:l_ * s + gs] for g, t, l_ in zip(gt, tops, lefts)]
        lqs = [x[..., t:t + lq_size, l_:l_ + lq_size] for x, t, l_ in zip(lq, tops, lefts)]
        return torch.stack(gts), torch.stack(lqs)


def _per_sample(value: Any, n: int) -> bool:
    """Whether a batch entry has one item per sample (tensors, path lists, task labels)."""
    return (torch.is_tensor(value) and value.dim() > 0 and value.size(0) == n) or \
        (isinstance(value, (list, tuple)) and len(value) == n)


def _take(value: Any, keep: torch.Tensor) -> Any:
    if torch.is_tensor(value):
        return value[keep]
    return type(value)(value[i] for i in keep.tolist())


@HOOK_REGISTRY.register()
class EMAHook(Hook):
    """Update the model's EMA network after every optimiser step."""
    priority = 20

    def after_iter(self, trainer: 'Trainer') -> None:
        model = trainer.model
        if getattr(model, 'net_g_ema', None) is not None:
            model.update_ema(model.ema_decay)


@HOOK_REGISTRY.register()
class LoggerHook(Hook):
    """Every ``print_freq`` iterations: averaged losses over ranks, lr, ETA to the text log, TensorBoard
    scalars (``losses/*``, ``lr``) and ``log/losses.csv`` (one row per logged iteration)."""
    priority = 30

    def __init__(self, print_freq: int = 100) -> None:
        self.print_freq = max(int(print_freq), 1)

    def before_run(self, trainer: 'Trainer') -> None:
        self.eta = ETA(trainer.iter, trainer.total_iter)
        if get_dist_info()[0] == 0:
            rewind_csv(Path(trainer.opt['path']['log']) / 'losses.csv', trainer.iter)

    def after_iter(self, trainer: 'Trainer') -> None:
        dt = self.eta.tick()
        if trainer.iter % self.print_freq and trainer.iter != trainer.total_iter:
            return
        losses = all_reduce_mean(trainer.losses)
        trainer.last_logged_losses = losses
        if get_dist_info()[0] != 0:
            return
        lrs = trainer.model.get_current_learning_rate()
        get_logger().info(format_log(trainer.epoch, trainer.iter, lrs, losses, self.eta.eta_seconds(trainer.iter), dt))
        if trainer.tb is not None:
            for k, v in losses.items():
                trainer.tb.add_scalar(f'losses/{k}', v, trainer.iter)
            trainer.tb.add_scalar('lr', lrs[0], trainer.iter)
        append_csv_row(Path(trainer.opt['path']['log']) / 'losses.csv', trainer.iter, losses)


def append_csv_row(path: Path, it: int, values: Dict[str, float]) -> None:
    """Append ``it`` and ``values`` under the header of ``path`` (written first if the file is new). A key the
    header lacks (a GAN's generator losses start after ``net_d_init_iters``) widens the header, and the earlier
    rows get empty cells in its column, so every value stays under its own name."""
    rows: List[List[str]] = []
    if path.is_file():
        with open(path, newline='') as fh:
            rows = list(csv.reader(fh))
    keys = rows[0][1:] if rows else []
    added = [k for k in values if k not in keys]
    if added:
        keys += added
        width = len(keys) + 1
        body = [r + [''] * (width - len(r)) for r in rows[1:]]
        tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
        with open(tmp, 'w', newline='') as fh:
            csv.writer(fh).writerows([['iter'] + keys] + body)
        os.replace(tmp, path)
    with open(path, 'a', newline='') as fh:
        csv.writer(fh).writerow([it] + [repr(values[k]) if k in values else '' for k in keys])


def rewind_csv(path: Path, last_iter: int) -> None:
    """Drop the rows of ``path`` (first column: iteration) after ``last_iter``: a resumed run logs them again.

    The file is replaced atomically; at iteration 0 it is removed, so a restarted run writes it from scratch.
    """
    if not path.is_file():
        return
    if last_iter <= 0:
        path.unlink()
        return
    header, *rows = path.read_bytes().splitlines(keepends=True)  # bytes: keep the csv module's line ends
    kept = [r for r in rows if r.endswith(b'\n') and int(r.split(b',', 1)[0]) <= last_iter]  # no torn row
    if len(kept) == len(rows):
        return
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    tmp.write_bytes(header + b''.join(kept))
    os.replace(tmp, path)


@HOOK_REGISTRY.register()
class ValidationHook(Hook):
    """Validate every ``val_freq`` iterations (and at the end) on every ``datasets.val*`` set."""
    priority = 60

    def __init__(self, val_freq: int) -> None:
        self.val_freq = int(val_freq)

    def after_iter(self, trainer: 'Trainer') -> None:
        if self.val_freq > 0 and (trainer.iter % self.val_freq == 0 or trainer.iter == trainer.total_iter):
            trainer.validate()


@HOOK_REGISTRY.register()
class CheckpointHook(Hook):
    """Save the full training state every ``save_checkpoint_freq`` iterations and at the end."""
    priority = 90

    def __init__(self, save_checkpoint_freq: int) -> None:
        self.freq = int(save_checkpoint_freq)

    def after_iter(self, trainer: 'Trainer') -> None:
        if (self.freq > 0 and trainer.iter % self.freq == 0) or trainer.iter == trainer.total_iter:
            trainer.save_checkpoint()
