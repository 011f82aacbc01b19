"""Convert an official checkpoint (any layout) to the toolbox's ``{'params': state_dict}`` file.

    python scripts/convert_checkpoint.py MPRNet_deblur.pth experiments/pretrained_models/MPRNet_deblur.pth \
        --type MPRNet --kwargs '{"in_c": 3}'
    python scripts/convert_checkpoint.py net_g_ema.pth out.pth --opt options/test/SwinIR/test_SwinIR_x4.yml

The network is built from ``--type``/``--kwargs`` or the option file's ``network_g`` and the weights are
loaded into it with ``strict=True`` before anything is written, so a converted file always loads into
that configuration. ``--key`` picks the state dict (default ``auto``: params_ema > params > state_dict >
model > net ...). Exit status 1 with the mismatching keys on failure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.archs import build_network  # noqa: E402
from basicsr.archs.network_spec import network_opt  # noqa: E402
from basicsr.archs.pretrained import load_pretrained  # noqa: E402
from basicsr.engine.checkpoint import atomic_torch_save  # noqa: E402


def convert(src: str, dst: str, spec: dict, key: str = 'auto', weights_only: bool = True) -> int:
    """Load ``src`` strictly into ``build_network(spec)`` and save ``{'params': sd}`` to ``dst``; returns the
    number of state-dict entries written."""
    net = build_network(spec)
    load_pretrained(net, src, key=key, strict=True, weights_only=weights_only)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_torch_save({'params': state}, dst)
    return len(state)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint file')
    parser.add_argument('dst', help="output file ({'params': state_dict})")
    parser.add_argument('--type', help='registered network type, e.g. SwinIR')
    parser.add_argument('--kwargs', help='network kwargs as a JSON object')
    parser.add_argument('--opt', help='option file whose network_g describes the network')
    parser.add_argument('--key', default='auto', help="where the state dict is (default 'auto'; '' = raw)")
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow checkpoints that pickle non-tensor objects (only for files you trust)')
    args = parser.parse_args(argv)
    try:
        spec = network_opt(args.type, args.kwargs, args.opt)
        n = convert(args.src, args.dst, spec, args.key or None, weights_only=not args.trust_pickle)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f"wrote {args.dst}: {{'params': {n} entries}} for {spec['type']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
