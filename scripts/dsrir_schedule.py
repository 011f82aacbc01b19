"""Print the option values of DSRIR's epoch-based progressive training for a dataset size.

    python scripts/dsrir_schedule.py --num-images 15144 [--gpus 1]
    python scripts/dsrir_schedule.py --num-images 54 --stage-iters 160 140 120 80 --batch-sizes 8 7 6 4 \
        --patch-sizes 32 40 48 64

The epoch change points are computed as DSRIR's ``utils/get_epoch_chg.py`` does (stage i trains
floor(iters_i / (N / batch_i)) epochs) unless ``--epoch-changes`` gives them. The printed YAML goes into
``datasets.train`` (ProgressiveHook keys), ``train.scheduler.iters_per_epoch`` / ``total_epochs`` and
``train.total_iter``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.engine.epoch_schedulers import (DSRIR_BATCH_SIZES, DSRIR_PATCH_SIZES, DSRIR_STAGE_ITERS,  # noqa: E402
                                             dsrir_epoch_changes, epoch_stage_plan)
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402


def main(argv=None) -> dict:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--num-images', type=int, required=True, help='training samples per epoch')
    parser.add_argument('--gpus', type=int, default=1, help='processes (the batch sizes are global)')
    parser.add_argument('--stage-iters', type=int, nargs='+', default=list(DSRIR_STAGE_ITERS))
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=list(DSRIR_BATCH_SIZES))
    parser.add_argument('--patch-sizes', type=int, nargs='+', default=list(DSRIR_PATCH_SIZES))
    parser.add_argument('--epoch-changes', type=int, nargs='+', help='use these instead of computing them')
    args = parser.parse_args(argv)
    changes = args.epoch_changes or dsrir_epoch_changes(args.num_images, args.stage_iters, args.batch_sizes)
    plan = epoch_stage_plan(args.num_images, changes, args.batch_sizes, args.patch_sizes, args.gpus)
    out = {
        'epoch_changes': changes,
        'datasets.train': {k: plan[k] for k in ('batch_size_per_gpu', 'gt_size', 'mini_batch_sizes', 'gt_sizes',
                                                'iters')},
        'train.scheduler': {'iters_per_epoch': plan['iters_per_epoch'], 'total_epochs': plan['total_epochs']},
        'train.total_iter': plan['total_iter'],
    }
    print(yaml.safe_dump(out, sort_keys=False, default_flow_style=None), end='')
    return out


if __name__ == '__main__':
    sys.exit(run_cli(main))
