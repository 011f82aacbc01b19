"""Time EnsIR estimation and application against plain averaging (and the other baselines).

Prints a markdown table: fit time on the reference set, median apply time per image for each method,
and its ratio to plain averaging on the same input. Run with one thread for stable numbers:

  OMP_NUM_THREADS=1 python scripts/benchmark_ensemble.py --set deraining
  OMP_NUM_THREADS=1 python scripts/benchmark_ensemble.py --set deblurring --repeats 5

Targets (issue 6): fit <= 2 s on the deraining reference set (10 x 384x512, M = 3, b = 32); apply
<= 20x plain averaging. The official code takes 18-24 s to fit and 1.2-1.5 s to apply per 384x512
image on the same 2-core machine (shared/reference/ensir.md section 12).
"""
import sys
import statistics
import time
from pathlib import Path
from typing import Callable, List

import torch

from basicsr.ensemble import build_ensembler
from basicsr.ensemble.ensir import EnsIR
from basicsr.ensemble.folders import load_reference_set
from basicsr.utils.cli import ArgumentParser, run_cli

SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ensir_reference'
MODELS = {'deraining': ['MPRNet', 'MAXIM', 'Restormer'], 'deblurring': ['MPRNet', 'Restormer', 'DGUNet']}


def timed(fn: Callable[[], object], repeats: int) -> List[float]:
    """Wall-clock seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--set', choices=sorted(MODELS), default='deraining')
    parser.add_argument('--data', default=str(SHARED), help='root of the EnsIR reference data')
    parser.add_argument('--bin-width', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=20, help='timed repetitions per method')
    parser.add_argument('--fit-repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    root = Path(args.data) / args.set
    preds, gts, names = load_reference_set([root / m for m in MODELS[args.set]], root / 'gt')
    preds = [p.to(args.device) for p in preds]
    gts = [g.to(args.device) for g in gts]
    h, w = preds[0].shape[-2:]

    fit_times = timed(lambda: EnsIR(bin_width=args.bin_width).fit(preds, gts), args.fit_repeats)
    ens = EnsIR(bin_width=args.bin_width).fit(preds, gts)
    methods = {'average': build_ensembler({'type': 'Average'}), 'EnsIR': ens,
               'ZZPM': build_ensembler({'type': 'ZZPM'}), 'median': build_ensembler({'type': 'Median'})}
    x = preds[0]
    # interleave the methods so a burst of load from other processes hits all of them alike
    runs = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, m in methods.items():
            runs[name] += timed(lambda m=m: m.apply(x), 1)

    print(f'{args.set}: {len(names)} reference images {h}x{w}, M = {x.shape[0]}, bin width {args.bin_width}, '
          f'device {args.device}, CPU threads while ensembling {ens.cpu_threads}\n')
    print(f'fit (EnsIR estimation on the reference set): min {min(fit_times):.3f} s, median '
          f'{statistics.median(fit_times):.3f} s over {len(fit_times)} runs; bins {ens.fit_info}\n')
    # min is the best estimate of the undisturbed cost on a shared machine; median shows the spread
    best = {name: min(t) for name, t in runs.items()}
    middle = {name: statistics.median(t) for name, t in runs.items()}
    print(f'| method | apply per {h}x{w} image, min (ms) | median (ms) | x plain averaging (min) | (median) |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name in methods:
        print(f'| {name} | {best[name] * 1e3:.2f} | {middle[name] * 1e3:.2f} | {best[name] / best["average"]:.1f} | '
              f'{middle[name] / middle["average"]:.1f} |')


if __name__ == '__main__':
    sys.exit(run_cli(main))
