"""Write TLC parity vectors: outputs of the official ``*Local`` classes on small random networks.

    python scripts/make_tlc_parity.py --tlc /path/to/megvii-research/TLC \
        [--nafnet /path/to/megvii-research/NAFNet] [--out tests/data/tlc_parity]

For every official TLC class (``HINetLocal``, ``MPRNetLocal``, ``RestormerLocal`` from the TLC checkout;
``NAFNetLocal``, ``BaselineLocal`` from the NAFNet checkout when given) the script builds one tiny network
with seeded random weights and runs the official class, constructed with several ``train_size`` /
``base_size`` / ``fast_imp`` settings, on inputs whose sizes are larger than the base size (where TLC changes
the result) and not multiples of the network's size factor (where the official classes zero-pad inside).
``<Type>.safetensors`` holds the state dict (``state.<key>``), the inputs and the outputs; its metadata
``cases`` (JSON) lists each case's constructor kwargs and output structure. ``tests/test_tlc_parity.py``
compares the toolbox's types with these files.

The official checkouts are plain ``basicsr`` packages, so the toolbox's own ``basicsr`` is never imported
here: the needed official modules are loaded under a stub ``basicsr`` package (their package
``__init__`` files import datasets and models that are not needed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
SEED = 20220716

# type -> (checkout, module, base kwargs, [(train_size, base_size, fast_imp, [input sizes])])
# Train sizes are small so that inputs of ~100 px exceed the base size. With the official 256 px window rule
# (HINetLocal, MPRNetLocal) small train sizes give tiny windows: HINet at 32 gets 1-pixel instance-norm windows
# (variance 0 up to rounding, NaN officially), MPRNet below 64 an empty window that the official code fails on.
CASES: Dict[str, tuple] = {
    'HINetLocal': ('tlc', 'local_arch', {'wf': 4, 'depth': 3},
                   [((1, 3, 48, 48), None, False, [(61, 45), (45, 38)]),
                    ((1, 3, 64, 64), None, False, [(100, 37)]),
                    ((1, 3, 64, 64), 80, True, [(52, 45)]),
                    ((1, 3, 40, 40), None, False, [(52, 45)])]),  # calibration input zero-padded to 48
    'MPRNetLocal': ('tlc', 'local_arch', {'n_feat': 4, 'scale_unetfeats': 2, 'scale_orsnetfeats': 2,
                                          'num_cab': 1, 'reduction': 2},
                    [((1, 3, 64, 64), None, False, [(45, 37), (37, 30)]),
                     ((1, 3, 96, 96), None, False, [(61, 45)]),
                     ((1, 3, 64, 64), (80, 72), True, [(52, 45)])]),
    'RestormerLocal': ('tlc', 'restormer_arch', {'dim': 4, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                                                 'heads': [1, 1, 2, 2], 'ffn_expansion_factor': 1},
                       [((1, 3, 32, 32), None, False, [(61, 45), (38, 30)]),
                        ((1, 3, 64, 64), None, False, [(100, 37)]),
                        ((1, 3, 32, 32), (40, 56), False, [(52, 45)]),
                        ((1, 3, 36, 36), None, False, [(100, 37)])]),  # calibration input zero-padded to 40
    'NAFNetLocal': ('nafnet', 'NAFNet_arch', {'width': 4, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1,
                                              'dec_blk_nums': [1, 1]},
                    [((1, 3, 32, 32), None, False, [(61, 45)]),
                     ((1, 3, 64, 64), None, False, [(100, 37)]),
                     ((1, 3, 32, 32), None, True, [(52, 45)])]),
    'BaselineLocal': ('nafnet', 'Baseline_arch', {'width': 4, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1,
                                                  'dec_blk_nums': [1, 1], 'dw_expand': 1, 'ffn_expand': 2},
                      [((1, 3, 32, 32), None, False, [(61, 45)]),
                       ((1, 3, 32, 32), None, True, [(52, 45)])]),
}


def load_official(root: Path) -> None:
    """Make ``basicsr.models.archs.*`` of the checkout at ``root`` importable without its package inits."""
    for name in [n for n in sys.modules if n == 'basicsr' or n.startswith('basicsr.')]:
        del sys.modules[name]
    packages = {'basicsr': root / 'basicsr', 'basicsr.models': root / 'basicsr' / 'models',
                'basicsr.models.archs': root / 'basicsr' / 'models' / 'archs'}
    for name, path in packages.items():
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    utils = types.ModuleType('basicsr.utils')  # arch_util imports a logger it never uses here
    utils.get_root_logger = lambda *a, **k: None
    sys.modules['basicsr.utils'] = utils


def official_class(root: Path, module: str, name: str) -> type:
    load_official(root)
    mod = __import__(f'basicsr.models.archs.{module}', fromlist=[name])
    return getattr(mod, name)


def randomise(net: torch.nn.Module, gen: torch.Generator, scale: float) -> None:
    """Perturb every parameter so that no block is an identity (NAFNet's zero-initialised block scales would
    hide the local statistics)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def as_list(out) -> List[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def git_head(root: Path) -> str:
    try:
        return subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def make_type(type_name: str, root: Path, out_dir: Path) -> Path:
    repo, module, kwargs, cases = CASES[type_name]
    cls = official_class(root, module, type_name)
    plain_cls = getattr(sys.modules[cls.__module__], type_name[:-len('Local')])
    gen = torch.Generator().manual_seed(SEED)
    tensors: Dict[str, torch.Tensor] = {}
    state: Optional[dict] = None
    meta_cases = []
    for train_size, base_size, fast_imp, sizes in cases:
        extra = {'train_size': list(train_size), 'fast_imp': fast_imp}
        if base_size is not None:
            extra['base_size'] = base_size if isinstance(base_size, int) else list(base_size)
        torch.manual_seed(0)  # the official calibration input comes from the global RNG (shapes only matter)
        net = cls(**kwargs, **extra)
        if state is None:
            randomise(net, gen, 0.2 if repo == 'nafnet' else 0.1)
            state = {k: v.clone() for k, v in net.state_dict().items()}
            tensors.update({f'state.{k}': v.contiguous() for k, v in state.items()})
        net.load_state_dict(state, strict=True)
        net.eval()
        plain = plain_cls(**kwargs).eval()
        plain.load_state_dict(state, strict=True)
        for h, w in sizes:
            key = f'case{len(meta_cases)}'
            x = torch.rand(1, 3, h, w, generator=gen)
            with torch.no_grad():
                out = net(x)
                tlc_effect = (as_list(out)[-1] - as_list(plain(x))[-1]).abs().max().item()
            outs = as_list(out)
            tensors[f'{key}.input'] = x
            tensors.update({f'{key}.output{i}': o.contiguous() for i, o in enumerate(outs)})
            meta_cases.append({'key': key, 'kwargs': extra, 'size': [h, w], 'structure':
                               'list' if isinstance(out, (list, tuple)) else 'tensor', 'num_outputs': len(outs),
                               'max_abs_diff_to_plain_network': tlc_effect})
    meta = {'type': type_name, 'base_kwargs': json.dumps(kwargs), 'cases': json.dumps(meta_cases),
            'source': f'{root.name}@{git_head(root)}', 'torch': torch.__version__}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'{type_name}.safetensors'
    save_file(tensors, str(path), metadata=meta)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tlc', type=Path, required=True, help='checkout of megvii-research/TLC')
    parser.add_argument('--nafnet', type=Path, help='checkout of megvii-research/NAFNet (NAFNetLocal, BaselineLocal)')
    parser.add_argument('--out', type=Path, default=ROOT / 'tests' / 'data' / 'tlc_parity')
    args = parser.parse_args(argv)
    roots = {'tlc': args.tlc, 'nafnet': args.nafnet}
    torch.set_num_threads(1)
    for type_name, (repo, *_) in CASES.items():
        if roots[repo] is None:
            print(f'skip {type_name}: no --{repo} checkout given')
            continue
        path = make_type(type_name, roots[repo].resolve(), args.out)
        print(f'{path} ({path.stat().st_size / 1024:.0f} KiB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
