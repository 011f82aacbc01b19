"""Evaluate one model on every per-task test set of an option file; write one results table with a row per task.

    python scripts/eval_all_in_one.py -opt options/test/AllInOne/PromptIR_3task.yml [--set key=value ...]

Every ``datasets.*`` block is one row (its ``name``). The metric profile is ``val.profile`` unless the block
sets ``metric_profile`` (DSRIR scores Rain100L on the Y channel, noise and haze on RGB). Inference follows
``test:`` (e.g. ``center_crop_multiple: 16``, the PromptIR/DSRIR protocol that crops input and ground truth
centrally to a multiple). Each row also scores the degraded input against the ground truth under the same
crop and profile, so the table shows what the model adds. The last row averages the task rows (the papers'
"average" column). Outputs under ``results/<name>/``: ``all_in_one.md`` (Markdown table), ``all_in_one.csv``,
``metrics.json`` and per-image CSVs (as basicsr/test.py), restored images with ``val.save_img``.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.engine.evaluator import settings_for_dataset  # noqa: E402
from basicsr.utils.cli import option_file_args, run_cli  # noqa: E402
from basicsr.utils.options import OptionError  # noqa: E402


def format_table(rows: List[Dict[str, Any]], metrics: List[str]) -> str:
    """Markdown table: task, images, profile, then model / input / gain per metric."""
    head = ['task', 'images', 'profile'] + [f'{m} {kind}' for m in metrics for kind in ('model', 'input', 'gain')]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['task'], str(r['images']), r['profile']]
        for m in metrics:
            for kind in ('model', 'input', 'gain'):
                v = r.get(f'{m}_{kind}')
                cells.append('' if v is None else (f'{v:.2f}' if m == 'psnr' else f'{v:.4f}'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> List[Dict[str, Any]]:
    opt_path, opt = option_file_args(__doc__, argv)
    from basicsr.data import build_dataset
    from basicsr.engine.evaluator import evaluate, write_results
    from basicsr.inference.pipeline import build_inference
    from basicsr.metrics.profiles import profile_name
    from basicsr.models import build_model
    from basicsr.test import test_settings

    settings = test_settings(opt)
    unscored = [key for key, ds_opt in (opt.get('datasets') or {}).items()
                if not any(settings_for_dataset(settings, ds_opt).get(k) for k in ('profile', 'metrics'))]
    if unscored:
        raise OptionError(f"option file {opt_path}: no metrics for datasets {', '.join(unscored)}: set 'val.profile' "
                          "(e.g. basicsr_rgb), 'val.metrics' or 'datasets.<name>.metric_profile'")
    out_root = Path(opt['path']['results_root'])
    out_root.mkdir(parents=True, exist_ok=True)
    model = build_model(opt)
    pipeline = build_inference(model.inference_network(), settings, where='test')
    identity = build_inference(nn.Identity(), {**settings, 'pad_multiple': None, 'tile': None, 'grids': None,
                                               'tlc': None, 'self_ensemble': False}, where='test')
    rows: List[Dict[str, Any]] = []
    metrics: List[str] = []
    for key, ds_opt in (opt.get('datasets') or {}).items():
        dataset = build_dataset(ds_opt)
        name = ds_opt.get('name', key)
        task_opt = settings_for_dataset(settings, ds_opt)
        start = time.time()
        res = evaluate(pipeline, dataset, task_opt, model.device, save_dir=Path(opt['path']['visualization']) / name,
                       save_img=task_opt.get('save_img', False), pbar=False, desc=name, scale=opt.get('scale', 1))
        base = evaluate(identity, dataset, task_opt, model.device, pbar=False, desc=f'{name} input',
                        scale=opt.get('scale', 1))
        write_results(res, out_root, name, {'input_mean': base['mean'], 'seconds': round(time.time() - start, 2)})
        row: Dict[str, Any] = {'task': name, 'images': len(res['images']),
                               'profile': profile_name(task_opt.get('profile') or task_opt.get('metrics'))}
        for m, v in res['mean'].items():
            if m not in metrics:
                metrics.append(m)
            row[f'{m}_model'], row[f'{m}_input'] = v, base['mean'][m]
            row[f'{m}_gain'] = v - base['mean'][m]
        rows.append(row)
        print(f"{name}: " + ', '.join(f"{m} {row[f'{m}_model']:.4f} (input {row[f'{m}_input']:.4f})"
                                      for m in res['mean']), flush=True)
    if len(rows) > 1:
        avg: Dict[str, Any] = {'task': 'average', 'images': sum(r['images'] for r in rows), 'profile': '-'}
        for m in metrics:
            for kind in ('model', 'input', 'gain'):
                vals = [r[f'{m}_{kind}'] for r in rows if f'{m}_{kind}' in r]
                avg[f'{m}_{kind}'] = sum(vals) / len(vals)
        rows.append(avg)
    table = format_table(rows, metrics)
    (out_root / 'all_in_one.md').write_text(f"# {opt['name']}\n\n{table}")
    with open(out_root / 'all_in_one.csv', 'w', newline='') as fh:
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ['task']
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
    print(table, end='')
    return rows


if __name__ == '__main__':
    sys.exit(run_cli(main))
