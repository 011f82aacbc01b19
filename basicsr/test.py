"""Test: ``python basicsr/test.py -opt options/test/x.yml [--set key=value ...]``.

For every dataset in ``datasets`` writes ``results/<name>/``: restored images under
``visualization/<dataset>/``, ``metrics.json`` (means + the metric profile used), ``<dataset>_per_image.csv``
and, with ``val.save_comparison``/``test.save_comparison``, side-by-side ``input | output | gt`` images.
Inference goes through the pipeline configured by ``test:`` (padding, tiling, self-ensemble, TLC); with an
``ensemble:`` block, each base model runs its own pipeline and the ensembler (EnsIR, average, ZZPM, median)
fuses them (see :mod:`basicsr.ensemble.pipeline`), and every base model is scored beside the ensemble.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ''):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from basicsr.utils.cli_options import add_dist_keys, build_parser, load_options  # noqa: E402
from basicsr.utils.dist import cleanup, get_dist_info, init_dist_from_env  # noqa: E402
from basicsr.utils.options import dump_options  # noqa: E402


def test_settings(opt: dict) -> dict:
    """The evaluation block: ``val`` (metrics, saving) overlaid with the ``test`` inference options."""
    settings = dict(opt.get('val') or {})
    settings.update(opt.get('test') or {})
    return settings


def main(argv=None, root=None) -> dict:
    """Test from the command line ``argv``; results under ``root`` (default: the working directory)."""
    args = build_parser(is_train=False, description=__doc__).parse_args(argv)
    opt = load_options(args, is_train=False, root=root)
    init_dist_from_env(opt['dist_params'].get('backend'))
    add_dist_keys(opt)
    from basicsr.utils.cli import discard_on_failure
    from basicsr.utils.serialization import trust_pickle_scope
    with discard_on_failure(opt['path']['results_root'], enabled=get_dist_info()[0] == 0), \
            trust_pickle_scope(opt['path'].get('trust_pickle', False)):  # also the task classifier, EnsIR tables
        return run_tests(opt)


def run_tests(opt: dict) -> dict:
    """Restore and score every dataset of the parsed options ``opt``; returns ``{dataset: mean metrics}``.
    Under :func:`main`, a run that fails removes the results folder it had made (no partial output)."""
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
        pipeline = build_ensemble_pipeline(opt['ensemble'], device, opt['path'].get('trust_pickle', False))
    else:
        model = build_model(opt)
        from basicsr.models.base_model import BaseModel
        if isinstance(model, BaseModel):  # a BasicSR-style model tests through its own validation()
            try:
                return test_basicsr_model(model, opt, out_root, logger)
            finally:
                cleanup()
        device = model.device
        pipeline = build_inference(model.inference_network(), settings, where='test', speed=opt.get('speed'))
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
                skipped = f', {len(res["skipped"])} skipped (skip_bad, see metrics.json)' if res['skipped'] else ''
                logger.info(f'{name}: {len(res["images"])} images{skipped}, {means} [{res["metric_spec"]}] '
                            f'({elapsed:.1f}s)')
                if res['task_accuracy']:  # test.task_classifier on a set with task labels
                    acc = res['task_accuracy']
                    per_task = ', '.join(f'{k}: {v:.4f}' for k, v in acc['per_task'].items())
                    logger.info(f"{name}: task classifier accuracy {acc['overall']:.4f} ({per_task})")
    finally:
        cleanup()
    return summary


def test_basicsr_model(model, opt: dict, out_root: Path, logger) -> dict:
    """BasicSR's test loop: ``model.validation(loader, current_iter=name, tb_logger=None, save_img)`` per dataset
    (sorted by key), so a model's own ``test()``/``nondist_validation()`` decide; ``metrics.json`` gets the means."""
    import json

    from basicsr.data import build_dataset
    from basicsr.data.loader import build_dataloader
    summary = {}
    for _, ds_opt in sorted((opt.get('datasets') or {}).items()):
        loader = build_dataloader(build_dataset(ds_opt), ds_opt, seed=int(opt.get('manual_seed') or 0))
        name = loader.dataset.opt['name']
        logger.info(f'Testing {name}...')
        model.validation(loader, current_iter=opt['name'], tb_logger=None,
                         save_img=(opt.get('val') or {}).get('save_img', True))
        summary[name] = dict(getattr(model, 'metric_results', {}) or {})
    if get_dist_info()[0] == 0:
        (out_root / 'metrics.json').write_text(json.dumps(summary, indent=2))
    return summary


def test_pipeline(root_path: str) -> dict:
    """BasicSR's entry point: a method's ``test.py`` imports its plug-ins and calls this with its repository root;
    reads ``sys.argv`` like :func:`basicsr.train.train_pipeline` and writes ``<root_path>/results/<name>``."""
    from basicsr.utils.cli import result_or_exit
    return result_or_exit(lambda argv: main(argv, root=root_path), sys.argv[1:])


if __name__ == '__main__':
    from basicsr.utils.cli import run_cli
    sys.exit(run_cli(main))
