"""Ensemble the outputs of several restoration models with EnsIR (or a baseline).

  fit      estimate an EnsIR weight table on a reference set (model prediction folders + ground truth)
  apply    ensemble prediction folders with a table; with --gt, score each model, average, ZZPM, median
           and EnsIR (markdown table on stdout + CSV)
  heldout  the results table on a shipped reference set: fit on 9 images, evaluate on the 10th, all 10
           rotations, next to the single models, the baselines and the official table

Examples:
  python scripts/ensemble.py fit --models ref/MPRNet ref/MAXIM ref/Restormer --gt ref/gt --bin-width 32 \\
      --out weights/derain_b32.pth
  python scripts/ensemble.py apply --table weights/derain_b32.pth --models test/MPRNet test/MAXIM \\
      test/Restormer --out results/ensir --gt test/gt
  python scripts/ensemble.py heldout --set deraining
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch
from tqdm import tqdm

from basicsr.ensemble import build_ensembler
from basicsr.ensemble.ensir import EMPTY_BIN_RULES, EnsIR
from basicsr.ensemble.folders import list_names, load_reference_set, read_image_255, find_image, read_predictions
from basicsr.ensemble.report import ENSIR_PROTOCOLS, metric_table, rows_from_scores, score, write_csv
from basicsr.utils.cli import ArgumentParser, run_cli
from basicsr.utils.img_util import write_image
from basicsr.utils.serialization import trust_pickle_scope

SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ensir_reference'

# The shipped reference sets (see shared/data/ensir_reference/README.md): model order and options of the
# official configuration whose table is shipped, and the official evaluation protocol of the task.
REFERENCE_SETS = {
    'deraining': {'models': ['MPRNet', 'MAXIM', 'Restormer'], 'default_weight': [0.1, 0.3, 0.6],
                  'table': 'luts/weight_Rain100L_MPRNet_MAXIM_Restormer_b32_rgb.pth', 'profile': 'ensir_y'},
    'deblurring': {'models': ['MPRNet', 'Restormer', 'DGUNet'], 'default_weight': None,
                   'table': 'luts/weight_GoPro_MPRNet_Restormer_DGUNet_b32_rgb.pth', 'profile': 'ensir_rgb'},
}
BASELINES = {'average': 'Average', 'ZZPM': 'ZZPM', 'median': 'Median'}


def add_estimation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bin-width', type=int, default=32, help='value-bin width on the 0..255 scale')
    parser.add_argument('--default-weight', type=float, nargs='+', default=None,
                        help='initial EM weights, one per model (official Rain100L: 0.1 0.3 0.6)')
    parser.add_argument('--empty-bins', choices=EMPTY_BIN_RULES, default='previous',
                        help="'previous' copies the previous bin's weights (official), 'prior' uses the "
                        'default/uniform weights')
    parser.add_argument('--robust-em', action='store_true', help='keep EM running where the official code aborts')
    parser.add_argument('--em-precision', choices=('float32', 'float64'), default='float32')


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--trust-pickle', action='store_true',
                        help='unpickle any object in the table files: only for files you trust, since unpickling can '
                             'run code (default: off, tensors and containers only)')


def estimation_options(args: argparse.Namespace) -> Dict:
    return {'bin_width': args.bin_width, 'default_weight': args.default_weight, 'empty_bins': args.empty_bins,
            'robust_em': args.robust_em, 'em_precision': args.em_precision}


def cmd_fit(args: argparse.Namespace) -> None:
    preds, gts, names = load_reference_set(args.models, args.gt, progress=True)
    ens = EnsIR(**estimation_options(args)).fit(preds, gts)
    ens.save(args.out, official_format=args.official_format)
    info = ', '.join(f'{k} {v}' for k, v in ens.fit_info.items())
    print(f'fitted on {len(names)} images, M = {ens.num_models}, bin width {ens.bin_width}: {info}')
    print(f'table {tuple(ens.table.shape)} written to {args.out}')


def cmd_apply(args: argparse.Namespace) -> None:
    if args.table is None and args.method == 'EnsIR':
        sys.exit('apply: --table is required for --method EnsIR')
    ens = EnsIR.load(args.table) if args.method == 'EnsIR' else build_ensembler({'type': args.method})
    names = list_names(args.gt) if args.gt else list_names(args.models[0])
    baselines = {label: build_ensembler({'type': t}) for label, t in BASELINES.items()} if args.gt else {}
    out_dir = Path(args.out)
    per_image = {}
    for name in tqdm(names, desc='ensembling', unit='img'):
        preds = read_predictions(args.models, name)
        fused = ens.apply(preds)
        write_image(out_dir / f'{name}.png', (fused / 255.0).permute(1, 2, 0).cpu().numpy())
        if args.gt:
            outputs = {Path(d).name: p for d, p in zip(args.models, preds)}
            outputs.update({label: b.apply(preds) for label, b in baselines.items()})
            outputs[args.method] = fused
            per_image[name] = score(outputs, read_image_255(find_image(args.gt, name)), args.profile)
    print(f'{len(names)} images written to {out_dir} (PNG)')
    if args.gt:
        report(per_image, args.profile, args.csv or out_dir / 'metrics.csv')


def cmd_heldout(args: argparse.Namespace) -> None:
    preset = REFERENCE_SETS[args.set]
    root = Path(args.data) / args.set
    profile = args.profile or preset['profile']
    model_dirs = [root / m for m in preset['models']]
    preds, gts, names = load_reference_set(model_dirs, root / 'gt', progress=True)
    official = EnsIR.load(Path(args.data) / preset['table'])
    options = {'bin_width': official.bin_width, 'default_weight': preset['default_weight']}
    in_sample = EnsIR(**options).fit(preds, gts)
    baselines = {label: build_ensembler({'type': t}) for label, t in BASELINES.items()}
    per_image = {}
    for i in tqdm(range(len(names)), desc='held-out rotations', unit='fold'):
        train = [j for j in range(len(names)) if j != i]
        held_out = EnsIR(**options).fit([preds[j] for j in train], [gts[j] for j in train])
        corrected = EnsIR(**options, empty_bins='prior', robust_em=True).fit([preds[j] for j in train],
                                                                              [gts[j] for j in train])
        outputs = {m: preds[i][k] for k, m in enumerate(preset['models'])}
        outputs.update({label: b.apply(preds[i]) for label, b in baselines.items()})
        outputs['EnsIR official (in-sample)'] = official.apply(preds[i])
        outputs['EnsIR own (in-sample)'] = in_sample.apply(preds[i])
        outputs['EnsIR own (held-out)'] = held_out.apply(preds[i])
        outputs['EnsIR corrected (held-out)'] = corrected.apply(preds[i])
        per_image[names[i]] = score(outputs, gts[i], profile)
    print(f'\n{args.set}: {len(names)} images, models {preset["models"]}, bin width {official.bin_width}, '
          f'default_weight {preset["default_weight"]}, metric profile {profile}')
    report(per_image, profile, args.csv or Path('results') / f'ensemble_heldout_{args.set}.csv')


def report(per_image: Dict, profile: str, csv_path: Path) -> None:
    rows = rows_from_scores(per_image)
    for metric in [k for k in rows[0] if k not in ('image', 'method')]:
        print(f'\n{metric.upper()} ({profile})\n')
        print(metric_table(rows, metric, digits=3 if metric == 'psnr' else 4))
    write_csv(rows, csv_path)
    print(f'\nCSV: {csv_path}')


def main(argv: Optional[List[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('fit', help='estimate an EnsIR table on a reference set')
    p.add_argument('--models', nargs='+', required=True, help='prediction folders, one per model (order matters)')
    p.add_argument('--gt', required=True, help='ground-truth folder (same base names)')
    p.add_argument('--out', required=True, help='table file to write (.pth)')
    p.add_argument('--official-format', action='store_true', help='write the official dict-of-tuples layout')
    add_estimation_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser('apply', help='ensemble prediction folders with a table')
    p.add_argument('--table', help='EnsIR table (.pth, own or official format)')
    p.add_argument('--models', nargs='+', required=True, help='prediction folders in the order of the table')
    p.add_argument('--out', required=True, help='output folder (lossless PNG)')
    p.add_argument('--gt', help='ground-truth folder: also score models, baselines and the ensemble')
    p.add_argument('--method', default='EnsIR', choices=['EnsIR', 'Average', 'ZZPM', 'Median'])
    p.add_argument('--profile', default='ensir_y',
                   help=f'metric profile (basicsr.metrics.profiles name, or {", ".join(ENSIR_PROTOCOLS)})')
    p.add_argument('--csv', help='CSV path (default: <out>/metrics.csv)')
    add_trust_arg(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser('heldout', help='leave-one-out results table on a shipped reference set')
    p.add_argument('--set', required=True, choices=sorted(REFERENCE_SETS))
    p.add_argument('--data', default=str(SHARED), help='root of the EnsIR reference data')
    p.add_argument('--profile', help='metric profile (default: the official protocol of the task)')
    p.add_argument('--csv', help='CSV path (default: results/ensemble_heldout_<set>.csv)')
    add_trust_arg(p)
    p.set_defaults(func=cmd_heldout)

    args = parser.parse_args(argv)
    # scoped: main() is also called in-process (tests), where global state must not leak
    with torch.no_grad(), trust_pickle_scope(getattr(args, 'trust_pickle', False)):
        args.func(args)


if __name__ == '__main__':
    sys.exit(run_cli(main))
