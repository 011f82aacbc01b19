"""Train: ``python basicsr/train.py -opt options/train/x.yml [--set key=value ...]`` (or ``./train.sh``).

BasicSR-style methods call :func:`train_pipeline` from their own ``train.py`` (or name their modules with
``--import`` / ``imports:``); BasicSR's flags are accepted (see :mod:`basicsr.utils.cli_options`).

Restarting the same command resumes from the newest valid checkpoint of the run automatically.
Under torchrun every rank runs this script; NCCL is used on CUDA and gloo on CPU.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ''):  # run as a script: import the package from the repository, not basicsr/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from basicsr.utils.cli_options import add_dist_keys, build_parser, load_options  # noqa: E402
from basicsr.utils.dist import cleanup, init_dist_from_env  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser(is_train=True, description=__doc__).parse_args(argv)


def main(argv=None, root=None) -> dict:
    """Train from the command line ``argv``; run folders under ``root`` (default: the working directory)."""
    args = parse_args(argv)
    opt = load_options(args, is_train=True, root=root)
    if args.check_only:
        return {}
    if root is not None:  # BasicSR's layout: <root>/tb_logger/<name> beside <root>/experiments/<name>
        opt['root_path'] = str(root)
        opt['path']['tb_logger'] = str(Path(root) / 'tb_logger' / opt['name'])
    init_dist_from_env(opt['dist_params'].get('backend'), opt['dist_params'].get('timeout_minutes', 30))
    add_dist_keys(opt)
    from basicsr.utils.serialization import trust_pickle_scope
    with trust_pickle_scope(opt['path'].get('trust_pickle', False)):  # VGG weights of a loss, ...
        try:
            if opt.get('sequential'):  # MiOIR sequential learning: one run per stage, see basicsr/engine/sequential.py
                from basicsr.engine.sequential import train_sequential
                return train_sequential(opt)[-1].losses
            if opt.get('expert_tree'):  # UniRestorer: one expert run per tree node, see basicsr/engine/expert_tree.py
                from basicsr.engine.expert_tree import train_expert_tree
                return train_expert_tree(opt)[-1].losses
            return start_trainer(opt).train()
        finally:
            cleanup()


def start_trainer(opt: dict) -> Any:
    """``Trainer(opt)``. When setting up a new run fails (unreadable data, a checkpoint of another network), the
    run folder it had just made is removed again (unless another trainer holds it): a run that could not start
    leaves no partial output."""
    import os

    from basicsr.engine.run_guard import LOCK_NAME
    from basicsr.engine.trainer import Trainer
    from basicsr.utils.cli import discard_on_failure
    from basicsr.utils.dist import get_dist_info

    def held_by_other(folder: Path) -> bool:
        lock = folder / LOCK_NAME
        return lock.is_file() and lock.read_text().split()[:1] != [str(os.getpid())]

    with discard_on_failure(opt['path']['experiments_root'], enabled=get_dist_info()[0] == 0, keep=held_by_other):
        return Trainer(opt)


def train_pipeline(root_path: str) -> dict:
    """BasicSR's entry point: a method's ``train.py`` imports its plug-ins and calls this with its repository root.

    Reads ``sys.argv`` (``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--local_rank``, ``--force_yml``
    and this toolbox's ``--set``/``--import``); writes ``<root_path>/experiments/<name>`` and
    ``<root_path>/tb_logger/<name>``; resumes from the run's newest checkpoint. Errors are one line
    (:mod:`basicsr.utils.cli`).
    """
    from basicsr.utils.cli import result_or_exit
    return result_or_exit(lambda argv: main(argv, root=root_path), sys.argv[1:])


if __name__ == '__main__':
    from basicsr.utils.cli import run_cli
    sys.exit(run_cli(main))
