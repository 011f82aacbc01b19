"""Trainer overhead and data-loader throughput, printed as a table.

Compares the time per iteration of the full trainer (data stream, hooks, EMA, logging) with a bare
``forward / loss / backward / step`` loop on the same network, optimiser, loss and batch shape, and
measures how many training samples per second the data pipeline delivers on its own.

    python scripts/benchmark_train.py                      # bundled-model recipe, 40 timed iterations
    python scripts/benchmark_train.py --opt options/train/X.yml --iters 100 --threads 2
    python scripts/benchmark_train.py --workers 0 1 2 --step-seconds 0.25   # loader vs a (GPU) step of 0.25 s
    python scripts/benchmark_train.py --opt options/train/official/Restormer-GaussianColorDenoising.yml \
        --loader-only --gpu-tflops 12 100 --set datasets.train.dataroot_gt=../shared/data/Kodak24

``--loader-only`` skips the two training loops (networks too large to step on a CPU). ``--gpu-tflops T [T ...]``
estimates the step of a GPU sustaining T TFLOP/s: 3 x the forward FLOPs of one batch (backward ~ 2 x forward)
/ T; the table then says how many loader workers deliver 4x what that step consumes.
"""
from __future__ import annotations

import copy
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from basicsr.archs import build_network  # noqa: E402
from basicsr.losses import build_loss  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.model_stats import count_flops, example_input  # noqa: E402
from basicsr.utils.options import parse_options  # noqa: E402

DEFAULT_OPT = ROOT / 'options' / 'train' / 'NAFNet_w16_denoise_color_sigma25.yml'


def bench_trainer(opt: dict, warmup: int, iters: int) -> float:
    """Seconds per iteration of ``Trainer.train`` over ``iters`` iterations after ``warmup``."""
    from basicsr.engine.trainer import Trainer
    opt = copy.deepcopy(opt)
    opt['train']['total_iter'] = warmup
    Trainer(opt).train()  # builds, warms up caches/allocator, saves a checkpoint at `warmup`
    opt['train']['total_iter'] = warmup + iters
    trainer = Trainer(opt)  # resumes at `warmup`
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    return elapsed / iters


def bench_bare(opt: dict, warmup: int, iters: int) -> float:
    """Seconds per iteration of a plain loop on one fixed batch of the same shape."""
    ds = opt['datasets']['train']
    net = build_network(opt['network_g'])
    optim_opt = dict(opt['train']['optim_g'])
    optimizer = getattr(torch.optim, optim_opt.pop('type'))(net.parameters(), **optim_opt)
    loss_fn = build_loss(opt['train']['pixel_opt'])
    bs, size = ds.get('batch_size_per_gpu', 1), ds.get('gt_size', 64)
    gt = torch.rand(bs, 3, size, size)
    lq = gt + torch.randn_like(gt) * 0.1
    for i in range(warmup + iters):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(lq), gt)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / iters


def bench_loader(opt: dict, batches: int, workers: int) -> float:
    """Training samples per second delivered by the data loader alone with ``workers`` worker processes
    (persistent, ``prefetch_factor`` batches ahead each); timed after the first batch (worker start-up)."""
    from basicsr.data import build_dataset
    from basicsr.data.loader import build_dataloader, build_prefetcher
    from basicsr.data.sampler import EnlargedSampler
    ds_opt = {**opt['datasets']['train'], 'num_worker_per_gpu': workers}
    dataset = build_dataset(ds_opt)
    sampler = EnlargedSampler(len(dataset), 1, 0, ratio=ds_opt.get('dataset_enlarge_ratio', 1), seed=0)
    loader = build_dataloader(dataset, ds_opt, sampler=sampler, seed=0)
    prefetcher = build_prefetcher(loader, ds_opt)
    n = 0
    for i in range(batches + 1):
        if i == 1:
            start = time.perf_counter()
        batch = prefetcher.next()
        if batch is None:
            sampler.set_epoch(sampler.epoch + 1)
            prefetcher.reset()
            batch = prefetcher.next()
        n += batch['gt'].shape[0] if i else 0
    return n / (time.perf_counter() - start)


def step_flops(opt: dict) -> float:
    """FLOPs of one training step of ``opt``'s network on one batch (3 x forward: backward costs ~2 x forward)."""
    ds = opt['datasets']['train']
    net = build_network(opt['network_g'])
    size = ds.get('gt_sizes', [ds.get('gt_size', 64)])[0]  # progressive recipes: the first stage
    batch = ds.get('mini_batch_sizes', [ds.get('batch_size_per_gpu', 1)])[0]
    return 3.0 * count_flops(net, example_input(net, opt['network_g'], [size, size], batch))


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--opt', type=Path, default=DEFAULT_OPT)
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--loader-batches', type=int, default=50)
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='option overrides for the trainer, e.g. speed.channels_last=true train.amp=bf16')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2],
                        help='loader worker counts to measure (num_worker_per_gpu; default: %(default)s)')
    parser.add_argument('--loader-only', action='store_true', help='only the data loader (no training loops)')
    parser.add_argument('--gpu-tflops', type=float, nargs='+', default=[],
                        help='estimate a GPU step from the network FLOPs at each sustained TFLOP/s given')
    parser.add_argument('--step-seconds', type=float, default=None,
                        help='also compare the loader with a training step of this many seconds (e.g. measured on '
                             'a GPU: the loader must deliver a batch in well under one step)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f'path.experiments_root={tmp}/exp', 'logger.use_tb_logger=false', 'logger.print_freq=1000000',
                     'logger.save_checkpoint_freq=0', 'val.val_freq=0'] + list(args.set)
        opt = parse_options(args.opt, overrides, is_train=True, root=ROOT)
        torch.manual_seed(0)
        bare = None if args.loader_only else bench_bare(opt, args.warmup, args.iters)
        trainer = None if args.loader_only else bench_trainer(opt, args.warmup, args.iters)
        loaders = {w: bench_loader(opt, args.loader_batches, w) for w in args.workers}
    ds = opt['datasets']['train']
    batch = ds.get('batch_size_per_gpu', 1)  # loader samples per step (a progressive hook crops them smaller)
    steps = {}
    if trainer:
        steps['this CPU trainer step'] = trainer
    if args.step_seconds:
        steps[f'a {args.step_seconds:g} s step'] = args.step_seconds
    flops = step_flops(opt) if args.gpu_tflops else 0.0
    for tflops in args.gpu_tflops:
        steps[f'a GPU step at {tflops:g} TFLOP/s ({flops / 1e12:.2f} TFLOP per step)'] = flops / (tflops * 1e12)
    print(f"\nnetwork {opt['network_g']['type']} {({k: v for k, v in opt['network_g'].items() if k != 'type'})}, "
          f"batch {ds.get('batch_size_per_gpu')} x {ds.get('gt_size')} px, {args.threads} thread(s), "
          f'{args.iters} timed iterations, device {"cuda" if torch.cuda.is_available() else "cpu"}, '
          f"speed {opt.get('speed') or 'off'}\n")
    print('| measurement | value |')
    print('|---|---|')
    if trainer:
        print(f'| bare loop, s/iter | {bare:.4f} |')
        print(f'| trainer (data, hooks, EMA, logging), s/iter | {trainer:.4f} |')
        print(f'| trainer / bare | {trainer / bare:.3f}x (target <= 1.10x) |')
    for label, seconds in steps.items():
        print(f'| {label} consumes, samples/s (batch {batch} / {seconds:.4f} s) | {batch / seconds:.1f} |')
    for workers, rate in loaders.items():
        extra = f", prefetch_factor {ds.get('prefetch_factor', 2)}, persistent" if workers else ''
        versus = ', '.join(f'{rate * s / batch:.1f}x {label.split(" (")[0]}' for label, s in steps.items())
        print(f'| data loader alone, samples/s ({workers} workers{extra}) | {rate:.1f}'
              + (f' ({versus})' if versus else '') + ' |')
    per_worker = max((rate / w for w, rate in loaders.items() if w), default=None)
    if per_worker:
        print(f'| samples/s per worker (best measured) | {per_worker:.1f} |')
        for label, seconds in steps.items():
            need = math.ceil(4 * batch / seconds / per_worker)
            print(f'| workers for 4x {label.split(" (")[0]} (at {per_worker:.1f} samples/s each, one core each) '
                  f'| {need} |')


if __name__ == '__main__':
    sys.exit(run_cli(main))
