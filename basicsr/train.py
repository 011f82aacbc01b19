"""Train: ``python basicsr/train.py -opt options/train/x.yml [--set key=value ...]`` (or ``./train.sh``).

Restarting the same command resumes from the newest valid checkpoint of the run automatically.
Under torchrun every rank runs this script; NCCL is used on CUDA and gloo on CPU.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a script: import the package from the repository, not basicsr/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from basicsr.utils.dist import cleanup, init_dist_from_env  # noqa: E402
from basicsr.utils.options import parse_options_or_exit  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', required=True, help='option YAML file')
    parser.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE',
                        help='override options, e.g. --set train.total_iter=10 datasets.train.batch_size_per_gpu=2')
    parser.add_argument('--no-resume', action='store_true', help='ignore existing checkpoints of this run')
    parser.add_argument('--launcher', default='auto', help='kept for BasicSR compatibility; torchrun is detected')
    parser.add_argument('--auto_resume', action='store_true', help='kept for BasicSR compatibility (default on)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    overrides = list(args.set) + (['path.auto_resume=false'] if args.no_resume else [])
    opt = parse_options_or_exit(args.opt, overrides, is_train=True)
    init_dist_from_env(opt['dist_params'].get('backend'), opt['dist_params'].get('timeout_minutes', 30))
    from basicsr.engine.trainer import Trainer
    try:
        if opt.get('sequential'):  # MiOIR sequential learning: one run per stage, see basicsr/engine/sequential.py
            from basicsr.engine.sequential import train_sequential
            return train_sequential(opt)[-1].losses
        return Trainer(opt).train()
    finally:
        cleanup()


if __name__ == '__main__':
    main()
