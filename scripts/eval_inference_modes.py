"""Compare inference modes of one trained model on a noisy test set and print a Markdown table.

Modes: plain (whole image), TLC, TLC fast_imp, grids (training-size crops averaged) and tiled; each
row gives mean PSNR / SSIM (a metric profile, default ``basicsr_rgb``), CPU seconds per image and the peak
resident memory added while the mode ran (sampled every 5 ms from /proc/self/statm; each mode runs in a
fresh process unless ``--in-process``).

    python scripts/eval_inference_modes.py --opt options/train/NAFNet_w16_denoise_color_sigma25.yml \\
        --weights experiments/NAFNet_w16_denoise_color_sigma25/models/net_g_latest.pth

The test set defaults to ../shared/data/CBSD68 with Gaussian noise sigma 25 and a fixed noise seed (0);
the TLC training size and the grid crop default to the option file's ``datasets.train.gt_size`` (or
``test.tlc.train_size``; the bundled model was trained on 64 px patches).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from basicsr.archs import build_network  # noqa: E402
from basicsr.archs.pretrained import load_pretrained  # noqa: E402
from basicsr.data import build_dataset  # noqa: E402
from basicsr.engine.evaluator import evaluate  # noqa: E402
from basicsr.inference.pipeline import build_inference  # noqa: E402
from basicsr.utils.cli import ArgumentParser, UsageError, non_negative_int, positive_int, run_cli  # noqa: E402
from basicsr.utils.option_checks import require_network  # noqa: E402
from basicsr.utils.options import load_with_bases  # noqa: E402

MODES = ('plain', 'tlc', 'tlc_fast', 'grids', 'tiled')


class PeakRSS:
    """Peak resident set size (MB) above the level at entry, sampled by a background thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.page_mb = os.sysconf('SC_PAGE_SIZE') / 2 ** 20

    def _rss(self) -> float:
        with open('/proc/self/statm') as fh:
            return int(fh.read().split()[1]) * self.page_mb

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> 'PeakRSS':
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.added = self.peak - self.start


def mode_options(mode: str, train: int, tile: int, overlap: int, pad_multiple: Any) -> Dict[str, Any]:
    """The ``test:`` inference options of one mode."""
    opt: Dict[str, Any] = {'pad_multiple': pad_multiple}
    if mode in ('tlc', 'tlc_fast'):
        opt['tlc'] = {'train_size': [1, 3, train, train], 'fast_imp': mode == 'tlc_fast'}
    elif mode == 'grids':
        opt['grids'] = {'crop_size': train, 'batch': 8}
    elif mode == 'tiled':
        opt['tile'] = {'size': tile, 'overlap': overlap, 'batch': 2}
    return opt


class Timed:
    """Wraps a pipeline and accumulates the CPU seconds spent in it (``time.process_time``: unlike wall
    time, it hardly changes when other processes compete for the cores)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline, self.seconds = pipeline, 0.0
        self.crop_target = pipeline.crop_target

    def __call__(self, lq: torch.Tensor) -> torch.Tensor:
        t0 = time.process_time()
        out = self.pipeline(lq)
        self.seconds += time.process_time() - t0
        return out


def run(net: torch.nn.Module, dataset: Any, modes: List[str], train: int, tile: int, overlap: int,
        pad_multiple: Any, profile: str) -> List[Dict[str, Any]]:
    rows = []
    for mode in modes:
        pipeline = Timed(build_inference(net, mode_options(mode, train, tile, overlap, pad_multiple)))
        with PeakRSS() as mem:
            res = evaluate(pipeline, dataset, {'profile': profile}, torch.device('cpu'), pbar=False, desc=mode)
        rows.append({'mode': mode, **res['mean'], 'seconds_per_image': pipeline.seconds / len(dataset),
                     'peak_rss_added_mb': mem.added, 'pipeline': repr(pipeline.pipeline)})
    return rows


def markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ['| mode | PSNR (dB) | SSIM | CPU s / image | peak RSS added (MB) |', '|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['mode']} | {r.get('psnr', float('nan')):.3f} | {r.get('ssim', float('nan')):.4f} | "
                     f"{r['seconds_per_image']:.2f} | {r['peak_rss_added_mb']:.0f} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--opt', required=True, help='option file with network_g (and datasets.train.gt_size)')
    parser.add_argument('--weights', required=True, help='checkpoint to evaluate')
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'CBSD68'), help='clean images')
    parser.add_argument('--sigma', type=float, default=25)
    parser.add_argument('--noise-seed', type=int, default=0)
    parser.add_argument('--train-size', type=int, help='training patch size (default: datasets.train.gt_size)')
    parser.add_argument('--modes', default=','.join(MODES), help=f'comma list of {", ".join(MODES)}')
    parser.add_argument('--tile', type=positive_int, default=128,
                        help='tile size of the tiled mode (CBSD68 is 481x321)')
    parser.add_argument('--overlap', type=non_negative_int, default=32, help='tile overlap (less than --tile)')
    parser.add_argument('--profile', default='basicsr_rgb')
    parser.add_argument('--limit', type=int, help='first N images only')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--in-process', action='store_true',
                        help='run every mode in this process (faster start; later modes reuse memory the '
                             'allocator kept, so their memory column reads low)')
    parser.add_argument('--json', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.overlap >= args.tile:
        raise UsageError(f'--overlap {args.overlap} must be smaller than --tile {args.tile}')
    opt = load_with_bases(args.opt)
    require_network(opt, args.opt)
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f'unknown mode(s) {unknown}; choose from {", ".join(MODES)}')
    tlc_size = ((opt.get('test') or {}).get('tlc') or {}).get('train_size') or [None]
    train = (args.train_size or ((opt.get('datasets') or {}).get('train') or {}).get('gt_size')
             or tlc_size[-1])
    if not train:
        parser.error(f'{args.opt} has neither datasets.train.gt_size nor test.tlc.train_size; pass --train-size')
    net = build_network(opt['network_g'])
    load_pretrained(net, args.weights, key=(opt.get('path') or {}).get('param_key_g', 'auto'))
    net.eval()
    dataset = build_dataset({'name': 'eval', 'type': 'SyntheticDegradationDataset', 'phase': 'test',
                             'dataroot_gt': args.data, 'noise_seed': args.noise_seed,
                             'degradation': {'type': 'GaussianNoise', 'sigma': args.sigma}})
    if args.limit:
        dataset.items = dataset.items[:args.limit]
    pad = ((opt.get('test') or opt.get('val') or {}).get('pad_multiple', 'auto'))
    if args.in_process or len(modes) == 1:
        rows = run(net, dataset, modes, int(train), args.tile, args.overlap, pad, args.profile)
    else:  # a fresh process per mode, so that each memory peak is measured from the same start
        rows = []
        for mode in modes:
            argv_mode = [a for a in (argv if argv is not None else sys.argv[1:])]
            done = subprocess.run([sys.executable, __file__, *argv_mode, '--modes', mode, '--json'],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f'mode {mode} failed:\n{done.stderr[-2000:]}')
            rows.append(json.loads(done.stdout.strip().splitlines()[-1])[0])
    if args.json:
        print(json.dumps(rows))
        return rows
    print(f"{opt['network_g']['type']} from {args.weights} on {Path(args.data).name} sigma={args.sigma:g} "
          f'(noise seed {args.noise_seed}, {len(dataset)} images, profile {args.profile}, '
          f'{args.threads} CPU thread(s); TLC/grids train size {train})')
    print(markdown(rows))
    return rows


if __name__ == '__main__':
    sys.exit(run_cli(main))
