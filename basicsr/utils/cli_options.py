"""The command line of ``basicsr/train.py`` and ``basicsr/test.py``: the toolbox's flags plus BasicSR's.

Ours: ``-opt``, ``--set key=value`` (repeatable), ``--import module`` (plug-ins), ``--no-resume`` (train), the
``speed:`` flags ``--compile [MODE] --channels-last --autocast bf16|fp16 --cudnn-benchmark``.
BasicSR's, accepted so that its scripts and launch commands work unchanged: ``--launcher`` (torchrun is
detected from the environment), ``--auto_resume`` (resuming is on by default here), ``--debug``,
``--local_rank`` / ``--local-rank`` (ignored: ``LOCAL_RANK`` comes from the environment) and
``--force_yml a:b=value`` (same as ``--set a.b=value``; the value is parsed as YAML, never evaluated).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from basicsr.utils.cli import ArgumentParser
from basicsr.utils.options import OptionError, parse_options
from basicsr.utils.speed import add_speed_arguments, speed_overrides


def build_parser(is_train: bool, description: str = '',
                 parser_class: type = ArgumentParser) -> argparse.ArgumentParser:
    """Parser with every flag of the entry points (train-only flags when ``is_train``). The default
    ``parser_class`` makes argparse's errors one line (:mod:`basicsr.utils.cli`) and defines ``--debug``."""
    parser = parser_class(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', required=True, help='option YAML file')
    parser.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                        help='override options, e.g. --set train.total_iter=10 datasets.train.batch_size_per_gpu=2')
    parser.add_argument('--import', dest='imports', nargs='*', action='extend', default=[], metavar='MODULE',
                        help='import plug-in modules first (as the option key imports:), e.g. my_method.archs')
    if is_train:
        parser.add_argument('--no-resume', action='store_true', help='ignore existing checkpoints of this run')
        parser.add_argument('--check-only', action='store_true',
                            help='validate the options and exit (train.sh runs this before starting torchrun)')
    parser.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm', 'auto'],
                        help='BasicSR compatibility: torchrun (or torch.distributed.launch) is detected')
    parser.add_argument('--auto_resume', action='store_true', help='BasicSR compatibility (resuming is the default)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='unpickle any object in the weight and state files this run loads (option '
                             'path.trust_pickle): only for files you trust, since unpickling can run code')
    if '--debug' not in parser._option_string_actions:
        parser.add_argument('--debug', action='store_true')
    parser._option_string_actions['--debug'].help = (
        "BasicSR's debug mode (name debug_<name>, log every iteration, save/validate every 8) and tracebacks")
    add_speed_arguments(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--force_yml', nargs='+', default=[], metavar='A:B=VALUE',
                        help="BasicSR's override syntax, same as --set A.B=VALUE")
    return parser


def force_yml_to_set(entries: Sequence[str]) -> List[str]:
    """``a:b=value`` (BasicSR) -> ``a.b=value`` (``--set``)."""
    out = []
    for entry in entries:
        keys, sep, value = entry.partition('=')
        if not sep:
            raise OptionError(f"--force_yml: '{entry}' is not of the form key1:key2=value")
        out.append(f"{keys.strip().replace(':', '.')}={value.strip()}")
    return out


def load_options(args: argparse.Namespace, is_train: bool, root: Optional[str | Path] = None) -> Dict[str, Any]:
    """Parse the option file named by ``args`` with every override; a bad option file is a
    :class:`~basicsr.utils.cli.UsageError` (one line, exit status 2)."""
    from basicsr.utils.cli import UsageError
    if Path(args.opt).is_dir():  # parse_options reads a folder as BasicSR's root_path
        raise UsageError(f'-opt {args.opt} is a folder; pass an option file (.yml)')
    overrides = list(args.set) + force_yml_to_set(args.force_yml)
    if is_train and getattr(args, 'no_resume', False):
        overrides.append('path.auto_resume=false')
    if getattr(args, 'trust_pickle', False):
        overrides.append('path.trust_pickle=true')
    overrides += speed_overrides(args)
    try:
        return parse_options(args.opt, overrides, is_train=is_train, root=root, imports=args.imports,
                             debug=args.debug)
    except (OptionError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc


def add_dist_keys(opt: Dict[str, Any]) -> Dict[str, Any]:
    """After process-group set-up: BasicSR's ``dist``, ``rank`` and ``world_size`` keys (models read them)."""
    from basicsr.utils.dist import get_dist_info
    opt['rank'], opt['world_size'] = get_dist_info()
    opt['dist'] = opt['world_size'] > 1
    return opt


def parse_command_line(root_path: str | Path, is_train: bool = True) -> Tuple[Dict[str, Any], argparse.Namespace]:
    """BasicSR's ``parse_options(root_path, is_train)``: read ``sys.argv``, load the options with folders under
    ``root_path``, start the process group, seed (``manual_seed + rank``); returns ``(opt, args)``."""
    from basicsr.utils.dist import init_dist_from_env
    from basicsr.utils.misc import set_random_seed
    args = build_parser(is_train).parse_args()
    opt = load_options(args, is_train, root=root_path)
    opt['root_path'] = str(root_path)
    init_dist_from_env(opt['dist_params'].get('backend'), opt['dist_params'].get('timeout_minutes', 30))
    add_dist_keys(opt)
    set_random_seed(int(opt.get('manual_seed') or 0) + opt['rank'])
    return opt, args
