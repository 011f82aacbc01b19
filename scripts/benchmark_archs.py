"""Forward and forward+backward time and peak memory of every registered network type, as a markdown table.

    OMP_NUM_THREADS=1 python scripts/benchmark_archs.py --reduced --size 64 64
    python scripts/benchmark_archs.py --types 'SwinIR|Uformer' --size 128 128 --channels-last --compile
    python scripts/benchmark_archs.py --speed --types '^(NAFNet|Restormer)$' --size 256 256   # speed: paths

Each type is built with the kwargs of its first official manifest (``--manifests``), or with ``--reduced``
a small configuration (its parity vector's, ``--vectors``, or the script's ``REDUCED`` table) when one
exists; types with neither use the class defaults.
Input: ``(batch, C, H, W)`` random in [0, 1], H and W rounded up to the network's ``size_multiple``.
Times are the median of ``--repeat`` runs after one warm-up; forward in eval mode under ``no_grad``,
forward+backward in train mode on the mean of the scored output. Peak memory: tensor bytes allocated
during the pass beyond weights and input (``basicsr.utils.model_stats.peak_memory``). ``--channels-last``
and ``--compile`` add columns for those variants (forward time) so their benefit is visible per network.
``--speed`` prints instead, per type, the fast paths of :mod:`basicsr.utils.speed` (plain, channels_last,
bf16 autocast, compile, all combined; ``--variants``) with forward and forward+backward time, speed-up over
plain and the largest output difference to plain, on ``--device`` (printed; cuda when available).
"""
from __future__ import annotations

import copy
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.archs import build_network, list_networks  # noqa: E402
from basicsr.archs.outputs import main_output  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.model_stats import count_parameters, example_input, format_count, peak_memory  # noqa: E402
from basicsr.utils.serialization import load_torch_file  # noqa: E402
from basicsr.utils.speed import apply_speed, no_speed_warnings, set_memory_format  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'reference'
# --reduced configurations of types that have no parity vector to borrow one from
REDUCED = {
    'SRResNet': {'num_feat': 16, 'num_block': 2, 'upscale': 1},
    'Uformer': {'embed_dim': 8, 'depths': [1, 2, 2, 2, 2, 2, 2, 2, 1], 'modulator': True},
}


def _median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: first-call allocations, kernel selection, compilation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def configurations(manifests: Path, vectors: Path, reduced: bool) -> Dict[str, Dict[str, Any]]:
    """``type -> kwargs``: the first manifest of each type, or (``reduced``) its parity vector's kwargs."""
    configs: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in REDUCED.items()} if reduced else {}
    if reduced and vectors.is_dir():
        for path in sorted(vectors.glob('*.pt')):
            vec = load_torch_file(path)
            configs.setdefault(vec['type'], dict(vec['kwargs']))
    if manifests.is_dir():
        for path in sorted(manifests.glob('*.json')):
            data = json.loads(path.read_text())
            configs.setdefault(data['registry_type'], dict(data.get('kwargs', {})))
    return configs


def benchmark(opt: Dict[str, Any], size: List[int], batch: int, repeat: int, channels_last: bool,
              compile_: bool) -> Dict[str, Any]:
    """Times (s) and peak memories (bytes) of one network configuration."""
    net = build_network(dict(opt))
    x = example_input(net, opt, size, batch)
    row: Dict[str, Any] = {'params': count_parameters(net), 'input': tuple(x.shape)}

    def forward(model=net, inp=x) -> None:
        with torch.no_grad():
            model(inp)

    def forward_backward() -> None:
        net.zero_grad(set_to_none=True)
        main_output(net(x)).mean().backward()

    net.eval()
    row['fwd'] = _median_seconds(forward, repeat)
    row['fwd_mem'] = peak_memory(forward)
    net.train()
    row['fwd_bwd'] = _median_seconds(forward_backward, repeat)
    row['fwd_bwd_mem'] = peak_memory(forward_backward)
    net.zero_grad(set_to_none=True)
    net.eval()
    if channels_last:
        set_memory_format(net, torch.channels_last)
        cl_x = x.contiguous(memory_format=torch.channels_last)
        row['fwd_cl'] = _median_seconds(lambda: forward(net, cl_x), repeat)
        set_memory_format(net, torch.contiguous_format)
    if compile_:
        try:
            compiled = torch.compile(net)
            row['fwd_compiled'] = _median_seconds(lambda: forward(compiled, x), repeat)
        except Exception as exc:  # noqa: BLE001 - compilation needs a C++ toolchain; report, do not abort
            row['fwd_compiled'] = f'{type(exc).__name__}'
    return row


# --speed variants: the speed block of each (all: every path at once)
SPEED_VARIANTS = {'plain': {}, 'channels_last': {'channels_last': True}, 'bf16': {'autocast': 'bf16'},
                  'channels_last+bf16': {'channels_last': True, 'autocast': 'bf16'}, 'compile': {'compile': True},
                  'all': {'compile': True, 'channels_last': True, 'autocast': 'bf16'}}


def speed_rows(opt: Dict[str, Any], size: List[int], batch: int, repeat: int, variants: List[str],
               device: torch.device) -> List[List[str]]:
    """One table row per variant: forward and forward+backward ms (medians of ``repeat`` interleaved runs after
    a warm-up that also compiles), speed-up over plain and max|output - plain output| (forward)."""
    torch.manual_seed(0)
    plain = build_network(dict(opt)).to(device)
    x = example_input(plain, opt, size, batch, device=device)
    nets = {}
    for name in variants:
        net = copy.deepcopy(plain)  # channels_last converts parameters in place: one copy per variant
        with no_speed_warnings():
            nets[name] = apply_speed(net, SPEED_VARIANTS[name], device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def forward(net: torch.nn.Module) -> torch.Tensor:
        net.eval()
        with torch.no_grad():
            return main_output(net(x)).float()

    def forward_backward(net: torch.nn.Module) -> None:
        net.train()
        net.zero_grad(set_to_none=True)
        main_output(net(x)).float().mean().backward()

    outputs = {name: forward(net) for name, net in nets.items()}  # warm-up (compiles) and the outputs compared
    for net in nets.values():
        forward_backward(net)
    times: Dict[str, Dict[str, List[float]]] = {n: {'fwd': [], 'bwd': []} for n in nets}
    for _ in range(repeat):
        for name, net in nets.items():
            for key, fn in (('fwd', forward), ('bwd', forward_backward)):
                sync()
                start = time.perf_counter()
                fn(net)
                sync()
                times[name][key].append(time.perf_counter() - start)
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    rows = []
    for name, net in nets.items():
        fell_back = getattr(net, 'compile_error', None)
        label = name + (f' (compile failed: {fell_back[:60]}; eager)' if fell_back else '')
        diff = (outputs[name] - outputs[variants[0]]).abs().max().item()
        rows.append([label, f"{med[name]['fwd'] * 1000:.0f}", f"{med[variants[0]]['fwd'] / med[name]['fwd']:.2f}x",
                     f"{med[name]['bwd'] * 1000:.0f}", f"{med[variants[0]]['bwd'] / med[name]['bwd']:.2f}x",
                     f'{diff:.1e}'])
    return rows


def top_ops(opt: Dict[str, Any], size: List[int], batch: int, variant: str, device: torch.device, n: int = 3) -> str:
    """The ``n`` operators with the most self CPU time in one forward of ``variant`` (after a warm-up), with their
    share of the total: what limits a fast path."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    net = build_network(dict(opt)).to(device).eval()
    x = example_input(net, opt, size, batch, device=device)
    with no_speed_warnings():
        net = apply_speed(net, SPEED_VARIANTS[variant], device)
    with torch.no_grad():
        net(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return ', '.join(f'{e.key} {e.self_cpu_time_total / total:.0%}' for e in events[:n])


def _speed_size(opt: Dict[str, Any], size: List[int]) -> List[int]:
    """SR types (``upscale``/``scale`` > 1) get a quarter-size input."""
    return [size[0] // 4, size[1] // 4] if int(opt.get('upscale', opt.get('scale', 1)) or 1) > 1 else size


def profile_table(args: Any, configs: Dict[str, Dict[str, Any]], types: List[str]) -> None:
    """``--profile``: per type and variant, the operators that dominate one forward."""
    device = torch.device(args.device)
    variants = args.variants.split(',')
    print(f'device {device}, {torch.get_num_threads()} thread(s), input {args.size[0]}x{args.size[1]} (SR: /4); '
          'self CPU time share of one forward\n')
    print('| type | variant | top operators |')
    print('|---|---|---|')
    for name in types:
        opt = {'type': name, **configs.get(name, {})}
        for variant in variants:
            print(f'| {name} | {variant} | {top_ops(opt, _speed_size(opt, args.size), args.batch, variant, device)} |',
                  flush=True)


def speed_table(args: Any, configs: Dict[str, Dict[str, Any]], types: List[str]) -> None:
    """``--speed``: plain vs each fast path vs all combined, per type (SR types get a ``size // 4`` input)."""
    device = torch.device(args.device)
    variants = ['plain'] + [v for v in args.variants.split(',') if v != 'plain']
    print(f'device {device}{" (" + torch.cuda.get_device_name(device) + ")" if device.type == "cuda" else ""}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, input '
          f'{args.size[0]}x{args.size[1]} (SR: /4), {"reduced" if args.reduced else "official"} configurations, '
          f'median of {args.repeat} interleaved runs; speed-up = plain time / variant time; max|diff| of the forward '
          'output to plain\n')
    print('| type | variant | fwd ms | fwd speed-up | fwd+bwd ms | fwd+bwd speed-up | max\\|diff\\| |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for name in types:
        opt = {'type': name, **configs.get(name, {})}
        try:
            rows = speed_rows(opt, _speed_size(opt, args.size), args.batch, args.repeat, variants, device)
        except Exception as exc:  # noqa: BLE001 - a type that needs other inputs must not stop the table
            print(f'| {name} | skipped: {type(exc).__name__}: {str(exc)[:90]} | | | | | |', flush=True)
            continue
        for row in rows:
            print('| ' + ' | '.join([name] + row) + ' |', flush=True)


def _ms(value: Any) -> str:
    return f'{value * 1000:.0f}' if isinstance(value, float) else str(value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--types', help='regular expression on registered type names (default: all)')
    parser.add_argument('--size', nargs=2, type=int, default=[128, 128], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--reduced', action='store_true', help='small configurations (parity-vector kwargs)')
    parser.add_argument('--channels-last', action='store_true', help='also time channels-last forward')
    parser.add_argument('--compile', action='store_true', help='also time a torch.compile forward')
    parser.add_argument('--speed', action='store_true',
                        help='table of the speed: fast paths (plain, each path, all) with max|diff| to plain')
    parser.add_argument('--profile', action='store_true',
                        help='with --speed: the operators that dominate one forward of each variant instead')
    parser.add_argument('--variants', default=','.join(SPEED_VARIANTS),
                        help='--speed variants, comma-separated (default: %(default)s)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='--speed device (default: %(default)s)')
    parser.add_argument('--manifests', type=Path, default=SHARED / 'arch_manifests')
    parser.add_argument('--vectors', type=Path, default=SHARED / 'parity')
    args = parser.parse_args(argv)

    configs = configurations(args.manifests, args.vectors, args.reduced)
    types = [t for t in list_networks() if not args.types or re.search(args.types, t)]
    if args.speed:
        unknown = [v for v in args.variants.split(',') if v not in SPEED_VARIANTS]
        if unknown:
            parser.error(f'--variants: unknown {unknown}; choose from {", ".join(SPEED_VARIANTS)}')
        (profile_table if args.profile else speed_table)(args, configs, types)
        return 0
    extra = (' fwd channels-last ms |' if args.channels_last else '') + (' fwd compiled ms |' if args.compile else '')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, '
          f'size {args.size[0]}x{args.size[1]}, {"reduced" if args.reduced else "official"} configurations, '
          f'median of {args.repeat}\n')
    print(f'| type | params | input | fwd ms | fwd+bwd ms | fwd peak | fwd+bwd peak |{extra}')
    print('|---|---:|---|---:|---:|---:|---:|' + '---:|' * extra.count('|'))
    for name in types:
        opt = {'type': name, **configs.get(name, {})}
        try:
            row = benchmark(opt, args.size, args.batch, args.repeat, args.channels_last, args.compile)
        except Exception as exc:  # noqa: BLE001 - a type that needs other inputs must not stop the table
            print(f'| {name} | skipped: {type(exc).__name__}: {str(exc)[:90]} | | | | | |'
                  + ' |' * extra.count('|'), flush=True)
            continue
        cells = [name, format_count(row['params']), 'x'.join(map(str, row['input'])), _ms(row['fwd']),
                 _ms(row['fwd_bwd']), format_count(row['fwd_mem'], 'B'), format_count(row['fwd_bwd_mem'], 'B')]
        if args.channels_last:
            cells.append(_ms(row['fwd_cl']))
        if args.compile:
            cells.append(_ms(row['fwd_compiled']))
        print('| ' + ' | '.join(cells) + ' |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
