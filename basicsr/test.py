"""Test: ``python basicsr/test.py -opt options/test/x.yml [--set key=value ...]``.

For every dataset in ``datasets`` writes ``results/<name>/``: restored images under
``visualization/<dataset>/``, ``metrics.json`` (means + the metric profile used), ``<dataset>_per_image.csv``
and, with ``val.save_comparison``/``test.save_comparison``, side-by-side ``input | output | gt`` images.
Inference goes through the pipeline configured by ``test:`` (padding, tiling, self-ensemble, TLC); with an
``ensemble:`` block, each base model runs its own pipeline and the ensembler (EnsIR, average, ZZPM, median)
fuses them (see :mod:`basicsr.ensemble.pipeline`), and every base model is scored beside the ensemble.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ''):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from basicsr.utils.dist import cleanup, get_dist_info, init_dist_from_env  # noqa: E402
from basicsr.utils.options import dump_options, parse_options_or_exit  # noqa: E402


def test_settings(opt: dict) -> dict:
    """The evaluation block: ``val`` (metrics, saving) overlaid with the ``test`` inference options."""
    settings = dict(opt.get('val') or {})
    settings.update(opt.get('test') or {})
    return settings


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', required=True, help='option YAML file')
    parser.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE', help='override options')
    parser.add_argument('--launcher', default='auto', help='kept for BasicSR compatibility')
    args = parser.parse_args(argv)
    opt = parse_options_or_exit(args.opt, args.set, is_train=False)
    init_dist_from_env(opt['dist_params'].get('backend'))
    from basicsr.data import build_dataset
    from basicsr.engine.evaluator import evaluate, settings_for_dataset, write_results
    from basicsr.inference.pipeline import build_inference
    from basicsr.models import build_model
    from basicsr.utils.logger import get_logger

    rank, _ = get_dist_info()
    out_root = Path(opt['path']['results_root'])
    if rank == 0:
        out_root.mkdir(parents=True, exist_ok=True)
        dump_options(opt, out_root / 'options_resolved.yml')
    logger = get_logger(out_root / f"test_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log", rank)
    settings = test_settings(opt)
    if opt.get('ensemble'):
        from basicsr.ensemble.pipeline import build_ensemble_pipeline
        from basicsr.models.image_restoration_model import select_device
        device = select_device(opt)
        pipeline = build_ensemble_pipeline(opt['ensemble'], device)
    else:
        model = build_model(opt)
        device = model.device
        pipeline = build_inference(model.inference_network(), settings, where='test')
    summary = {}
    try:
        for key, ds_opt in (opt.get('datasets') or {}).items():
            dataset = build_dataset(ds_opt)
            name = ds_opt.get('name', key)
            start = time.time()
            ds_settings = settings_for_dataset(settings, ds_opt)
            res = evaluate(pipeline, dataset, ds_settings, device,
                           save_dir=Path(opt['path']['visualization']) / name,
                           save_img=ds_settings.get('save_img', True), suffix=ds_settings.get('suffix'),
                           pbar=ds_settings.get('pbar', True), desc=f'test {name}',
                           scale=opt.get('scale', 1))
            elapsed = time.time() - start
            summary[name] = res['mean']
            if rank == 0:
                write_results(res, out_root, name, {'seconds': round(elapsed, 2)})
                means = ', '.join(f'{k}: {v:.4f}' for k, v in res['mean'].items())
                logger.info(f'{name}: {len(res["images"])} images, {means} [{res["metric_spec"]}] '
                            f'({elapsed:.1f}s)')
    finally:
        cleanup()
    return summary


if __name__ == '__main__':
    main()
