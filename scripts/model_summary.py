"""Parameter count, FLOPs and peak forward memory of a network, or a markdown table for all manifests.

    python scripts/model_summary.py --type SwinIR --kwargs '{"upscale": 4, "embed_dim": 60}' --size 64 64
    python scripts/model_summary.py --opt options/train/NAFNet/NAFNet-width32.yml
    python scripts/model_summary.py --all-manifests ../shared/reference/arch_manifests --size 256 256

FLOPs = 2 x multiply-accumulates of conv / linear / matmul / attention (element-wise ops not counted);
MACs (= FLOPs / 2) are what most papers call FLOPs. Input sizes are rounded up to the network's
``size_multiple``. Peak memory: tensor bytes allocated during one no-grad forward beyond weights and
input (see ``basicsr/utils/model_stats.py``). The table skips manifests whose type is not registered and
measures memory only with ``--memory`` (it runs every network for real).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.archs import list_networks  # noqa: E402
from basicsr.archs.network_spec import manifest_network_opt, network_opt  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.model_stats import format_count, model_stats  # noqa: E402


def manifest_table(folder: Path, size: List[int], memory: bool, pattern: Optional[str] = None) -> str:
    """Markdown table with one row per manifest in ``folder`` whose registry type is registered."""
    registered = set(list_networks())
    mem_col = ' peak fwd memory |' if memory else ''
    rows = [f'| configuration | type | params | MACs @ {size[0]}x{size[1]} | FLOPs |{mem_col}',
            '|---|---|---:|---:|---:|' + ('---:|' if memory else '')]
    skipped = []
    for path in sorted(folder.glob('*.json')):
        name = path.stem
        if pattern and not re.search(pattern, name):
            continue
        opt = manifest_network_opt(path)
        if opt['type'] not in registered:
            skipped.append(name)
            continue
        try:
            stats = model_stats(opt, size, memory=memory)
        except Exception as exc:  # noqa: BLE001 - one failing network must not hide the others
            rows.append(f'| {name} | {opt["type"]} | error: {type(exc).__name__}: {str(exc)[:80]} | | |'
                        + (' |' if memory else ''))
            continue
        mem = f' {format_count(stats.peak_memory, "B")} |' if memory else ''
        rows.append(f'| {name} | {stats.type} | {stats.params:,} | {format_count(stats.macs)} | '
                    f'{format_count(stats.flops)} |{mem}')
        print(f'measured {name}', file=sys.stderr, flush=True)
    table = '\n'.join(rows)
    if skipped:
        table += f'\n\nNot registered yet (skipped): {", ".join(skipped)}'
    return table


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--type', help='registered network type')
    parser.add_argument('--kwargs', help='network kwargs as a JSON object')
    parser.add_argument('--opt', help='option file whose network_g describes the network')
    parser.add_argument('--size', nargs=2, type=int, default=[256, 256], metavar=('H', 'W'),
                        help='input height and width (default 256 256)')
    parser.add_argument('--channels', type=int, help='input channels (default: from the kwargs / first conv)')
    parser.add_argument('--all-manifests', metavar='DIR', help='print a markdown table for every manifest in DIR')
    parser.add_argument('--filter', help='regular expression on manifest names (with --all-manifests)')
    parser.add_argument('--memory', action='store_true', help='also measure peak memory in the table')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory measurement (single network)')
    args = parser.parse_args(argv)
    try:
        if args.all_manifests:
            folder = Path(args.all_manifests)
            if not folder.is_dir():
                raise FileNotFoundError(f'manifest folder not found: {folder}')
            print(manifest_table(folder, args.size, args.memory, args.filter))
            return 0
        opt = network_opt(args.type, args.kwargs, args.opt)
        stats = model_stats(opt, args.size, memory=not args.no_memory, channels=args.channels)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'network      {stats.type}')
    print(f'input        {stats.input_shape} -> output {stats.output_shape}')
    print(f'parameters   {stats.params:,} ({format_count(stats.params)})')
    print(f'MACs         {format_count(stats.macs)}  (multiply-accumulates of conv/linear/matmul/attention)')
    print(f'FLOPs        {format_count(stats.flops)}  (= 2 x MACs; counted on {stats.flops_device})')
    if stats.peak_memory is not None:
        print(f'peak memory  {format_count(stats.peak_memory, "B")}  (one no-grad forward, beyond weights + input)')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
