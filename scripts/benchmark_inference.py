"""Benchmark the inference wrappers on CPU and print a table (not a test; takes a few minutes).

1. TLC overhead: forward CPU time of a NAFNet (GoPro layout, small width) on a 720x1280 image, unconverted
   vs ``to_local`` exact vs ``to_local`` fast_imp (median of ``--repeats`` runs after one warm-up).
2. Tiled 4K: a 2160x3840 image (a mosaic of CBSD68 images with sigma-25 noise; ``--size`` for another) restored
   tile by tile, ``--batch`` tiles per network call (``--compare-unbatched`` adds one tile per call, to see what
   batching gains); peak resident memory of a fresh process (``ru_maxrss``) and the part added while the
   pipeline ran (sampled), against whole-image inference in another fresh process, and the PSNR between the
   outputs. ``--channels-last`` / ``--autocast bf16`` run every mode with those fast paths (the ``speed:`` block).

Weights are random (the zero-initialised NAFNet residual scales are re-drawn so that every block acts);
speed and memory do not depend on them. ``--device cuda`` (the default when CUDA is available) runs the network
on the GPU: times are then synchronized wall seconds, the 4K image stays in host memory (tiles are copied to
the device per call, as ``test.py`` does) and the table adds the device's peak allocated memory.

    python scripts/benchmark_inference.py [--width 16] [--threads 1] [--repeats 3] [--skip-whole-4k | --skip-4k]
    python scripts/benchmark_inference.py --skip-tlc --skip-whole-4k --compare-unbatched --batch 4 --threads 2
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from basicsr.archs import build_network  # noqa: E402
from basicsr.inference.pipeline import build_inference  # noqa: E402
from basicsr.inference.tlc import to_local  # noqa: E402
from basicsr.utils.serialization import load_torch_file  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from eval_inference_modes import PeakRSS  # noqa: E402  (this script's folder)

CBSD68 = ROOT.parent / 'shared' / 'data' / 'CBSD68'


def make_net(width: int) -> torch.nn.Module:
    """NAFNet with the GoPro layout (enc 1-1-1-28) at ``width``, residual scales drawn in [0.1, 0.3]."""
    torch.manual_seed(0)
    net = build_network({'type': 'NAFNet', 'width': width, 'enc_blk_nums': [1, 1, 1, 28], 'middle_blk_num': 1,
                         'dec_blk_nums': [1, 1, 1, 1]})
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(('beta', 'gamma')):
                p.uniform_(0.1, 0.3)
    return net.eval()


def test_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]: CBSD68 images tiled into a mosaic (random if the folder is absent) plus
    Gaussian noise of sigma 25/255."""
    gen = torch.Generator().manual_seed(seed)
    files = sorted(CBSD68.glob('*.png'))
    if files:
        import cv2
        rows, row, width = [], [], 0
        height = 0
        for i in range(10 ** 4):
            img = cv2.imread(str(files[i % len(files)]), cv2.IMREAD_COLOR)[:321, :321, ::-1]
            row.append(img)
            width += img.shape[1]
            if width >= w:
                rows.append(np.concatenate(row, axis=1)[:, :w])
                height += rows[-1].shape[0]
                row, width = [], 0
                if height >= h:
                    break
        clean = torch.from_numpy(np.ascontiguousarray(np.concatenate(rows, axis=0)[:h])).permute(2, 0, 1)
        clean = clean.float().div(255).unsqueeze(0)
    else:
        clean = torch.rand(1, 3, h, w, generator=gen)
    return (clean + torch.randn(clean.shape, generator=gen) * 25 / 255).clamp(0, 1)


class Clock:
    """Seconds of work on ``device``: CPU seconds of the process (``time.process_time``; unlike wall time it
    hardly depends on other processes competing for the cores) on CPU, synchronized wall seconds on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == 'cuda'
        self.unit = 'wall seconds (synchronized)' if self.cuda else 'CPU seconds (all threads)'

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


def time_forwards(fns: List, x: torch.Tensor, repeats: int, clock: Clock) -> List[float]:
    """Median seconds (``clock``) per network, runs interleaved."""
    times: List[List[float]] = [[] for _ in fns]
    with torch.no_grad():
        for fn in fns:
            fn(x)
        for _ in range(repeats):
            for fn, t in zip(fns, times):
                t0 = clock.now()
                fn(x)
                t.append(clock.now() - t0)
    return [float(np.median(t)) for t in times]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_4k(mode: str, width: int, out_path: str, tile: int, overlap: int, size: List[int],
           speed: Dict[str, object], device: torch.device) -> Dict[str, float]:
    """One 4K inference in this process (called in a fresh subprocess); saves the output. ``mode``: 'whole' or
    'tiled:B' (B tiles per network call)."""
    net = make_net(width).to(device)
    x = test_image(*size)
    if mode == 'whole':
        x = x.to(device)
    gc.collect()
    opt = {'tile': {'size': tile, 'overlap': overlap, 'batch': int(mode.split(':')[1])}} if mode != 'whole' else {}
    pipe = build_inference(net, opt, speed=speed)
    clock = Clock(device)
    if clock.cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRSS() as mem:
        t0 = clock.now()
        out = pipe(x)
        seconds = clock.now() - t0
    torch.save(out.cpu(), out_path)
    result = {'seconds': seconds, 'peak_rss_mb': peak_rss_mb(), 'rss_before_mb': mem.start, 'rss_added_mb': mem.added}
    if clock.cuda:
        result['device_peak_mb'] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return result


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(r, widths)) + ' |'  # noqa: E731
    return '\n'.join([line(header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|'] + [line(r) for r in rows])


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--width', type=int, default=16)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--skip-whole-4k', action='store_true', help='do not run the whole-image 4K reference')
    parser.add_argument('--skip-4k', action='store_true', help='only the TLC overhead table')
    parser.add_argument('--skip-tlc', action='store_true', help='only the 4K table')
    parser.add_argument('--compare-unbatched', action='store_true', help='also run the 4K tiles one per call')
    parser.add_argument('--size', nargs=2, type=int, default=[2160, 3840], metavar=('H', 'W'),
                        help='the large image (default: 4K)')
    parser.add_argument('--channels-last', action='store_true', help='speed.channels_last in every 4K mode')
    parser.add_argument('--autocast', choices=['bf16'], default=None, help='speed.autocast in every 4K mode')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where the network runs (default: %(default)s)')
    parser.add_argument('--run-4k', help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    speed = {'channels_last': args.channels_last, 'autocast': args.autocast or False}
    device = torch.device(args.device)
    if args.run_4k:  # child process: one measurement, JSON on stdout
        print(json.dumps(run_4k(args.run_4k, args.width, args.out, args.tile, args.overlap, args.size, speed,
                                device)))
        return
    name = f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else ''
    print(f'device {device}{name}, torch {torch.__version__}, {args.threads} thread(s)')
    if not args.skip_tlc:
        tlc_table(args)
    if not args.skip_4k:
        large_table(args, speed)


def tlc_table(args: argparse.Namespace) -> None:
    """TLC overhead on a 720x1280 image."""
    device = torch.device(args.device)
    clock = Clock(device)
    net = make_net(args.width).to(device)
    x = test_image(720, 1280).to(device)
    nets = [net] + [to_local(net, train_size=(1, 3, 256, 256), fast_imp=fast) for fast in (False, True)]
    seconds = time_forwards(nets, x, args.repeats, clock)
    rows = [[label, f'{t:.2f}', f'{t / seconds[0]:.2f}x'] for label, t in
            zip(('NAFNet (global pooling)', 'TLC exact', 'TLC fast_imp'), seconds)]
    print(f'TLC overhead, NAFNet width {args.width} (GoPro layout), 720x1280, {device}, {args.threads} thread(s), '
          f'median of {args.repeats} interleaved runs')
    print(table(rows, ['network', clock.unit, 'vs unconverted']))


def large_table(args: argparse.Namespace, speed: Dict[str, object]) -> None:
    """Tiled (batched, optionally unbatched) and whole-image inference of the large image, each in a fresh
    process."""
    results, outputs = {}, {}
    modes = ([f'tiled:{args.batch}'] + (['tiled:1'] if args.compare_unbatched and args.batch != 1 else [])
             + ([] if args.skip_whole_4k else ['whole']))
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            outputs[mode] = os.path.join(tmp, f'{mode.replace(":", "_")}.pt')
            cmd = [sys.executable, __file__, '--run-4k', mode, '--out', outputs[mode], '--width', str(args.width),
                   '--threads', str(args.threads), '--tile', str(args.tile), '--overlap', str(args.overlap),
                   '--size', *map(str, args.size), '--device', args.device] + \
                (['--channels-last'] if args.channels_last else []) + \
                (['--autocast', args.autocast] if args.autocast else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                results[mode] = {'error': done.stderr.strip().splitlines()[-1] if done.stderr else 'failed'}
                continue
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        ref = load_torch_file(outputs['whole']) if 'seconds' in results.get('whole', {}) else None
        first = load_torch_file(outputs[modes[0]]) if 'seconds' in results[modes[0]] else None
        rows = []
        cuda = torch.device(args.device).type == 'cuda'
        for mode in modes:
            r = results[mode]
            if 'error' in r:
                rows.append([mode] + ['-'] * (6 + cuda) + [r['error']])
                continue
            out = load_torch_file(outputs[mode])
            quality = '-' if ref is None else f'{psnr(out, ref):.2f}'
            diff = '-' if first is None else f'{(out - first).abs().max().item():.1e}'
            speedup = f'{r["seconds"] / results[modes[0]]["seconds"]:.2f}x' if 'seconds' in results[modes[0]] else '-'
            label = 'whole' if mode == 'whole' else f'tiled {args.tile}/{args.overlap}, {mode.split(":")[1]} per call'
            rows.append([label, f'{r["seconds"]:.1f}', speedup, f'{r["peak_rss_mb"]:.0f}', f'{r["rss_added_mb"]:.0f}']
                        + ([f'{r["device_peak_mb"]:.0f}'] if cuda else []) + [diff, quality])
    fast = ' + '.join(k for k, v in speed.items() if v) or 'no fast paths'
    unit = Clock(torch.device(args.device)).unit
    print(f'\n{args.size[0]}x{args.size[1]} inference, NAFNet width {args.width}, {args.device}, {fast}; {unit}; '
          f'peak RSS of a fresh process and the part added during inference (sampled)')
    print(table(rows, ['mode', unit.split(' (')[0], f'time / time of {modes[0]}', 'peak RSS MB',
                       'added during inference MB'] + (['device peak MB'] if cuda else [])
                + [f'max abs diff to {modes[0]}', 'PSNR vs whole (dB)']))


if __name__ == '__main__':
    sys.exit(run_cli(main))
