"""Convert a checkpoint (any official layout) to the toolbox's ``{'params': state_dict}`` file or to safetensors.

    python scripts/convert_checkpoint.py MPRNet_deblur.pth experiments/pretrained_models/MPRNet_deblur.safetensors \
        --type MPRNet --kwargs '{"in_c": 3}'
    python scripts/convert_checkpoint.py net_g_ema.pth out.pth --opt options/test/SwinIR/test_SwinIR_x4.yml
    python scripts/convert_checkpoint.py model.safetensors model.pth      # back; the network spec is in the file

The network is built from ``--type``/``--kwargs`` or the option file's ``network_g`` (for a ``.safetensors``
source written by this script, from its metadata) and the weights are loaded into it with ``strict=True``
before anything is written, so a converted file always loads into that configuration. The output format
follows the ``dst`` suffix: ``.safetensors`` (tensors only, the network spec as JSON in the metadata key
``basicsr.network``) or a torch file. ``--key`` picks the state dict (default ``auto``: params_ema > params >
state_dict > model > net ...). A source that pickles objects other than tensors and containers is refused
unless ``--trust-pickle``. Exit status 2 with the mismatching keys on failure.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.archs import build_network  # noqa: E402
from basicsr.archs.network_spec import network_opt  # noqa: E402
from basicsr.archs.pretrained import load_pretrained  # noqa: E402
from basicsr.engine.checkpoint import atomic_torch_save  # noqa: E402
from basicsr.utils.cli import ArgumentParser, debug_requested, report, run_cli  # noqa: E402
from basicsr.utils.serialization import NETWORK_KEY, is_safetensors, read_safetensors, write_weights  # noqa: E402


def spec_in_metadata(src: str) -> Optional[Dict[str, Any]]:
    """The network spec stored in a ``.safetensors`` file's metadata (None for other files or without one)."""
    if not is_safetensors(src) or not Path(src).is_file():
        return None
    text = read_safetensors(src)[1].get(NETWORK_KEY)
    try:
        spec = json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise ValueError(f'{src}: metadata {NETWORK_KEY} is not valid JSON ({exc})') from exc
    return spec if isinstance(spec, dict) and 'type' in spec else None


def convert(src: str, dst: str, spec: Dict[str, Any], key: Optional[str] = 'auto',
            trust_pickle: bool = False) -> Tuple[int, str]:
    """Load ``src`` strictly into ``build_network(spec)`` and write its state dict to ``dst``: safetensors with
    ``spec`` in the metadata for a ``.safetensors`` name, else ``{'params': sd}`` with ``torch.save``.
    Returns ``(number of entries written, description of the layout)``."""
    net = build_network(spec)
    load_pretrained(net, src, key=key, strict=True, trust_pickle=trust_pickle)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if is_safetensors(dst):
        write_weights(state, dst, {NETWORK_KEY: json.dumps(spec, sort_keys=True), 'source': Path(src).name})
        return len(state), f'safetensors, {len(state)} tensors, network spec in the metadata'
    atomic_torch_save({'params': state}, dst)
    return len(state), f"{{'params': {len(state)} entries}}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint file (any official layout, or .safetensors)')
    parser.add_argument('dst', help="output file: NAME.safetensors, or a torch file ({'params': state_dict})")
    parser.add_argument('--type', help='registered network type, e.g. SwinIR')
    parser.add_argument('--kwargs', help='network kwargs as a JSON object')
    parser.add_argument('--opt', help='option file whose network_g describes the network')
    parser.add_argument('--key', default='auto', help="where the state dict is (default 'auto'; '' = raw)")
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow checkpoints that pickle non-tensor objects (only for files you trust)')
    args = parser.parse_args(argv)
    try:
        stored = None if (args.type or args.kwargs or args.opt) else spec_in_metadata(args.src)
        spec = stored or network_opt(args.type, args.kwargs, args.opt)
        _, layout = convert(args.src, args.dst, spec, args.key or None, trust_pickle=args.trust_pickle)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as exc:  # a wrong file or network: status 2
        return report(exc, debug_requested(argv))
    print(f"wrote {args.dst}: {layout} for {spec['type']}")
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
