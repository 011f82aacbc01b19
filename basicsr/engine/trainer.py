"""Iteration-based trainer: data stream, model steps, hooks, exact resume, distributed validation."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

from basicsr.data import build_dataset
from basicsr.engine.checkpoint import (capture_rng_state, load_resume_state, restore_rng_state, sampler_state_for_rank,
                                       save_checkpoint, save_network_file)
from basicsr.engine.evaluator import evaluate, write_results
from basicsr.engine.hooks import (CheckpointHook, EMAHook, Hook, LoggerHook, ProgressiveHook, ValidationHook)
from basicsr.engine.run_guard import LauncherWatch, RunLock, remove_stale_temp_files
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils.dist import all_gather_objects, barrier, bounded_barrier, get_dist_info
from basicsr.utils.logger import get_logger, init_tb_logger
from basicsr.utils.misc import set_random_seed
from basicsr.utils.options import dump_options, options_hash


class TrainStream:
    """Endless batches from the train loader with an exact position (epoch, samples consumed).

    The sampler orders samples by (seed, epoch) and counts what the prefetcher hands out, so after a
    resume the next batch is the one the interrupted run would have seen.
    """

    def __init__(self, dataset: Any, dataset_opt: Dict[str, Any], device: torch.device, seed: int) -> None:
        from basicsr.data.loader import build_dataloader, build_prefetcher
        from basicsr.data.sampler import EnlargedSampler
        rank, world = get_dist_info()
        from basicsr.data.base_dataset import RestorationDataset
        if not isinstance(dataset, RestorationDataset):  # BasicSR-style: integer indices, global RNGs
            from basicsr.data.sampler import SeededDataset
            dataset = SeededDataset(dataset, seed)
        self.dataset = dataset
        self.sampler = EnlargedSampler(len(dataset), world, rank, ratio=dataset_opt.get('dataset_enlarge_ratio', 1),
                                       seed=seed, shuffle=dataset_opt.get('use_shuffle', True))
        self.batch_size = int(dataset_opt.get('batch_size_per_gpu', 1))
        self.batch_of_epoch: Callable[[int], int] = lambda epoch: self.batch_size
        self.drop_last = bool(dataset_opt.get('drop_last', True))
        self.dataset_opt, self.device, self.seed = dataset_opt, device, seed
        loader = build_dataloader(dataset, dataset_opt, num_gpu=1, dist=world > 1, sampler=self.sampler, seed=seed)
        self.prefetcher = build_prefetcher(loader, dataset_opt, device)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def iters_per_epoch(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_of_epoch(self.sampler.epoch))
        return max(full + (0 if self.drop_last or not rest else 1), 1)

    def load_stages(self, mini_batch_sizes: List[int], gt_sizes: List[int], iters: List[int]) -> None:
        """Progressive stages as DSRIR's per-stage DataLoaders (``progressive_crop: loader``): stage j runs whole
        epochs of ``mini_batch_sizes[j]`` samples per batch (last incomplete batch dropped, every sample once per
        epoch), each sample cropped by the dataset at ``gt_sizes[j]``, uniformly over the whole image and padded
        to that size only. Stage j lasts ``iters[j]`` iterations, which must be whole epochs
        (``scripts/dsrir_schedule.py`` prints such values). Sizes follow from the epoch, so prefetching and
        resuming keep them right."""
        from basicsr.data.loader import build_dataloader, build_prefetcher
        from basicsr.data.sampler import StageBatchSampler
        if not self.drop_last:
            raise ValueError('datasets.train.progressive_crop: loader needs drop_last (whole epochs per stage)')
        n, ends = len(self.sampler), []
        for j, (batch, it) in enumerate(zip(mini_batch_sizes, iters)):
            per_epoch = n // batch
            if per_epoch < 1 or it % per_epoch:
                raise ValueError(f'datasets.train.progressive_crop: loader needs whole epochs per stage: stage {j + 1} '
                                 f'has iters {it}, not a multiple of its {per_epoch} batches of {batch} per epoch '
                                 f'({n} samples on this rank); scripts/dsrir_schedule.py prints matching values')
            ends.append((ends[-1] if ends else 0) + it // per_epoch)

        def stage(epoch: int) -> int:
            return next((j for j, end in enumerate(ends) if epoch < end), len(ends) - 1)
        self.batch_of_epoch = lambda epoch: int(mini_batch_sizes[stage(epoch)])
        self.sampler.patch_size_of = lambda epoch, pos: int(gt_sizes[stage(epoch)])
        loader = build_dataloader(self.dataset, self.dataset_opt, num_gpu=1, sampler=self.sampler, seed=self.seed,
                                  batch_sampler=StageBatchSampler(self.sampler, self.batch_of_epoch))
        self.prefetcher = build_prefetcher(loader, self.dataset_opt, self.device)

    def next(self) -> Dict[str, Any]:
        batch = self.prefetcher.next()
        while batch is None:
            self.sampler.set_epoch(self.sampler.epoch + 1)
            self.prefetcher.reset()
            batch = self.prefetcher.next()
        return batch

    def state_dict(self) -> Dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        left = len(self.sampler) - self.sampler.consumed
        if left <= 0 or (self.drop_last and left < self.batch_of_epoch(self.sampler.epoch)):
            # the epoch was used up (a train loader drops the last incomplete batch unless drop_last: false)
            self.sampler.set_epoch(self.sampler.epoch + 1)
        self.prefetcher.reset()


class Trainer:
    """Owns the run: folders, logger, data, model, hooks, checkpoints. ``Trainer(opt).train()``."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.opt = opt
        self.rank, self.world = get_dist_info()
        paths = opt['path']
        self.launcher = LauncherWatch()
        self.lock = RunLock(paths['experiments_root'])
        if self.rank == 0:
            for key in ('experiments_root', 'models', 'training_states', 'log', 'visualization'):
                Path(paths[key]).mkdir(parents=True, exist_ok=True)
            self.lock.acquire()  # one live trainer per experiment folder; then every temp file is stale
            remove_stale_temp_files(paths['experiments_root'])
        barrier()
        stamp = time.strftime('%Y%m%d_%H%M%S')
        self.logger = get_logger(Path(paths['log']) / f"train_{opt['name']}_{stamp}.log", self.rank)
        if self.rank == 0:
            dump_options(opt, Path(paths['experiments_root']) / 'options_resolved.yml')
        self.tb = None
        self.seed = int(opt.get('manual_seed') or 0)
        set_random_seed(self.seed)  # every rank builds the same network (and so the same EMA copy)

        train_opt = opt['datasets']['train']
        self.train_set = build_dataset(train_opt)
        self.model = build_model(opt)
        # a BasicSR-style model is driven through its contract: feed_data + optimize_parameters (which also
        # updates its EMA), validation() and save(); the engine keeps the loop, checkpoints and logging
        self.contract = isinstance(self.model, BaseModel)
        self._step = self.model.train_step if self.contract else self.model.optimize_parameters
        if self.rank > 0:
            set_random_seed(self.seed + self.rank)  # then per-rank streams (rank 0 keeps the one-process one)
        self.stream = TrainStream(self.train_set, train_opt, self.model.device, self.seed)
        self.val_sets = [(k, build_dataset(v)) for k, v in opt['datasets'].items() if k.startswith('val')]
        self.total_iter = int(opt['train']['total_iter'])
        self.warmup_iter = int(opt['train'].get('warmup_iter', -1))
        self.accumulate = int(opt['train'].get('accumulate_grad', 1))
        if train_opt.get('progressive_crop') == 'loader' and train_opt.get('gt_sizes') and train_opt.get('iters'):
            if self.accumulate != 1:
                raise ValueError('datasets.train.progressive_crop: loader counts one batch per iteration; '
                                 f'train.accumulate_grad must be 1, got {self.accumulate}')
            self.stream.load_stages(train_opt['mini_batch_sizes'], train_opt['gt_sizes'], train_opt['iters'])
        self.iter, self.epoch = 0, 0
        self.losses: Dict[str, torch.Tensor] = {}
        self.last_logged_losses: Dict[str, float] = {}
        self.best: Dict[str, Dict[str, Dict[str, float]]] = {}
        self.hooks: List[Hook] = sorted(self._default_hooks(), key=lambda h: h.priority)
        self.logger.info(f"dataset '{train_opt.get('name', 'train')}': {len(self.train_set)} samples, "
                         f'{self.stream.iters_per_epoch} iterations per epoch, {self.world} process(es)')
        self._maybe_resume()
        if self.rank == 0 and opt['logger'].get('use_tb_logger', True):
            # events after the resumed iteration were logged by the interrupted run: TensorBoard drops them
            self.tb = init_tb_logger(paths.get('tb_logger') or Path(paths['experiments_root']) / 'tb_logger', purge_step=self.iter + 1)

    def _default_hooks(self) -> List[Hook]:
        opt, train_ds = self.opt, self.opt['datasets']['train']
        hooks: List[Hook] = []
        if train_ds.get('mini_batch_sizes') and train_ds.get('gt_sizes') and train_ds.get('iters'):
            hooks.append(ProgressiveHook(train_ds['mini_batch_sizes'], train_ds['gt_sizes'], train_ds['iters'],
                                         scale=opt.get('scale', 1), seed=self.seed,
                                         crop=train_ds.get('progressive_crop', 'batch')))
        hooks += [] if self.contract else [EMAHook()]
        hooks += [LoggerHook(opt['logger'].get('print_freq', 100)),
                  CheckpointHook(opt['logger'].get('save_checkpoint_freq', 5000))]
        if self.val_sets and opt.get('val'):
            hooks.append(ValidationHook(opt['val'].get('val_freq', 0)))
        return hooks

    # ------------------------------------------------------------------ resume
    def _maybe_resume(self) -> None:
        paths = self.opt['path']
        state = load_resume_state(paths['training_states'], paths.get('resume_state'), paths.get('auto_resume', True),
                                  bool(paths.get('trust_pickle', False)))
        if state is None:
            return
        if state.get('options_hash') != options_hash(self.opt):
            self.logger.warning(f"resuming from {state['_path']} whose options hash differs from this run's; "
                                f'the options changed since it was written')
        self.model.load_state_dict(state['model'])
        self.iter, self.epoch = int(state['iter']), int(state['epoch'])
        self.stream.load_state_dict(sampler_state_for_rank(state, self.rank, self.world, self.stream.batch_size,
                                                           self.accumulate))
        rng = state['rng']
        restore_rng_state(rng[self.rank] if self.rank < len(rng) else rng[0])
        self.best = state.get('best', {})
        barrier()  # every rank has read the checkpoint before rank 0 writes the next one and prunes old ones
        self.logger.info(f"resumed from {state['_path']} at iteration {self.iter} (epoch {self.epoch})")

    def save_checkpoint(self) -> None:
        """Gather every rank's sampler and RNG state and write one checkpoint from rank 0."""
        samplers = all_gather_objects(self.stream.state_dict())
        rngs = all_gather_objects(capture_rng_state())
        if self.rank == 0:
            state = {'iter': self.iter, 'epoch': self.stream.epoch, 'model': self.model.state_dict(),
                     'sampler': samplers, 'rng': rngs, 'best': self.best, 'options_hash': options_hash(self.opt),
                     'world_size': self.world, 'global_batch': self.stream.batch_size * self.world * self.accumulate}
            path = save_checkpoint(state, self.opt['path']['training_states'], self.iter,
                                   keep_last=self.opt['logger'].get('keep_last', 3))
            save_network_file(self.model.network_state(), self.opt['path']['models'],
                              self.opt['logger'].get('save_format', 'pth'), self.opt.get('network_g'))
            self.logger.info(f'saved checkpoint {path}')
        if self.contract:
            self.model.save(self.stream.epoch, self.iter)
        bounded_barrier((self.opt.get('dist_params') or {}).get('save_timeout_minutes', 30),
                        f'rank 0 to write the checkpoint of iteration {self.iter} (dist_params.save_timeout_minutes); '
                        'if rank 0 died during the save, the previous checkpoints are intact: rerun to resume')

    # ------------------------------------------------------------------ loop
    def _call(self, point: str, *args: Any) -> Any:
        for hook in self.hooks:
            getattr(hook, point)(self, *args)

    def train(self) -> Dict[str, float]:
        """Run until ``train.total_iter``; returns the last logged losses."""
        try:
            return self._train()
        finally:
            if self.tb is not None:
                self.tb.close()
            self.lock.release()

    def _train(self) -> Dict[str, float]:
        self._call('before_run')
        start, first = time.time(), self.iter
        while self.iter < self.total_iter:
            if self.launcher.launcher_gone():
                self.logger.error(f'the launcher (torchrun, PID {self.launcher.parent}) is gone: stopping at '
                                  f'iteration {self.iter}; rerun the command to resume from the last checkpoint')
                return self.last_logged_losses
            batches = [self.stream.next() for _ in range(self.accumulate)]
            self.iter += 1
            self.epoch = self.stream.epoch
            for hook in self.hooks:
                batches = hook.before_iter(self, batches)
            self.model.update_learning_rate(self.iter, self.warmup_iter)
            self.losses = self._step(batches, self.iter)
            self._call('after_iter')
        self._call('after_run')
        if self.iter > first:
            self.logger.info(f'training done: this run trained iterations {first + 1}-{self.iter} '
                             f'({self.iter - first} iterations, {time.time() - start:.1f}s) of {self.total_iter}')
        else:
            self.logger.info(f'training done: nothing to train, the run is already at iteration {self.iter} '
                             f'of {self.total_iter}')
        return self.last_logged_losses

    # ------------------------------------------------------------------ validation
    def validate(self) -> Dict[str, Dict[str, float]]:
        """Evaluate on every val set (sharded over ranks), log, update the best-metric record.

        A model with its own ``validate(dataset, val_opt, desc) -> result`` (same result layout as
        :func:`~basicsr.engine.evaluator.evaluate`, e.g. the classifier's accuracy) is asked instead of
        restoring images through the inference pipeline.
        """
        if self.contract:
            return self._validate_contract()
        val_opt = self.opt['val']
        own = getattr(self.model, 'validate', None)
        if own is None:
            from basicsr.inference.pipeline import build_inference
            pipeline = build_inference(self.model.inference_network(), val_opt, where='val')
        results = {}
        for key, dataset in self.val_sets:
            name = self.opt['datasets'][key].get('name', key)
            if own is not None:
                res = own(dataset, val_opt, desc=f'val {name}')
            else:
                save_dir = Path(self.opt['path']['visualization']) / name / f'{self.iter:08d}'
                res = evaluate(pipeline, dataset, val_opt, self.model.device, save_dir=save_dir,
                               save_img=val_opt.get('save_img', False), pbar=val_opt.get('pbar', True),
                               desc=f'val {name}', scale=self.opt.get('scale', 1))
            results[name] = res['mean']
            if self.rank == 0:
                self._record(name, res)
        self.model.train_mode()
        return results

    def _validate_contract(self) -> Dict[str, Dict[str, float]]:
        """A BasicSR-style model validates itself: ``model.validation(loader, iter, tb_logger, save_img)`` per
        val set (its own ``test()``/``nondist_validation()``); returns its ``metric_results`` per set."""
        from basicsr.data.loader import build_dataloader
        results = {}
        for key, dataset in self.val_sets:
            ds_opt = self.opt['datasets'][key]
            loader = build_dataloader(dataset, ds_opt, seed=self.seed)
            self.model.validation(loader, self.iter, self.tb, self.opt['val'].get('save_img', False))
            results[ds_opt.get('name', key)] = dict(getattr(self.model, 'metric_results', {}) or {})
        self.model.train_mode()
        return results

    def _record(self, name: str, res: Dict[str, Any]) -> None:
        metric_opts = self.opt['val'].get('metrics') or {}
        weights = 'EMA weights (net_g_ema)' if getattr(self.model, 'net_g_ema', None) is not None else 'net_g'
        msg = [f'validation {name} @ {self.iter} ({res["metric_spec"]}; scores the {weights}):']
        if res.get('skipped'):
            from basicsr.data.data_util import preview
            msg.append(f'  {len(res["images"])} images scored, {len(res["skipped"])} skipped (skip_bad): '
                       f'{preview(s["name"] for s in res["skipped"])}')
        for metric, value in res['mean'].items():
            better = (metric_opts.get(metric) or {}).get('better', 'higher')
            best = self.best.setdefault(name, {}).get(metric)
            improved = best is None or (value >= best['val'] if better == 'higher' else value <= best['val'])
            if improved:
                self.best[name][metric] = {'val': value, 'iter': self.iter}
            b = self.best[name][metric]
            msg.append(f"  {metric}: {value:.4f}  (best {b['val']:.4f} @ {b['iter']})")
            if self.tb is not None:
                self.tb.add_scalar(f'metrics/{name}/{metric}', value, self.iter)
        self.logger.info('\n'.join(msg))
        if self.tb is not None and res.get('preview') is not None:
            self.tb.add_image(f'val/{name}', res['preview'].clamp(0, 1), self.iter)
        write_results(res, Path(self.opt['path']['experiments_root']) / 'val_results', f'{name}_{self.iter:08d}')
