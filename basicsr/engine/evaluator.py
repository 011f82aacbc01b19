"""Evaluation shared by training-time validation, test.py and demo.py.

Images are sharded over ranks, restored through the inference pipeline (padding, tiling, self-ensemble,
TLC), scored with the configured metrics/profile, optionally saved (restored image, side-by-side
``input | output | ground truth``, extra outputs such as uncertainty maps), and the per-image records are
gathered on every rank so rank 0 can write ``metrics.json`` and the per-image CSV.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from basicsr.archs.conditions import condition_kwargs
from basicsr.inference.task_classifier import task_accuracy, task_record
from basicsr.utils.dist import all_gather_objects, get_dist_info
from basicsr.utils.img_util import tensor2img, write_image


def build_scorer(val_opt: Dict[str, Any]) -> Callable[[torch.Tensor, torch.Tensor], Dict[str, float]]:
    """A function ``(pred, gt) -> {metric: value}`` from ``val.metrics`` (BasicSR blocks) or ``val.profile``."""
    from basicsr.metrics.profiles import compute_metrics, get_profile, resolve_metrics
    spec = val_opt.get('profile') or val_opt.get('metrics')
    if not spec:
        return lambda pred, gt: {}
    metrics = resolve_metrics(spec)  # validates names before any image is processed
    use_image = bool(val_opt.get('use_image', True))  # False: score the output tensor, not the rounded image
    scorer = lambda pred, gt: compute_metrics(pred, gt, spec, use_image)  # noqa: E731
    if isinstance(spec, str):
        scorer.description = f'profile {spec}: {get_profile(spec).description}'  # type: ignore[attr-defined]
    else:
        scorer.description = 'metrics ' + '; '.join(  # type: ignore[attr-defined]
            f"{k}={v['type']}({', '.join(f'{a}={b}' for a, b in v.items() if a != 'type')})"
            for k, v in metrics.items())
    return scorer


def settings_for_dataset(settings: Dict[str, Any], ds_opt: Dict[str, Any]) -> Dict[str, Any]:
    """Evaluation settings of one test set: its ``metric_profile`` (e.g. DSRIR scores Rain100L on Y, noise
    and haze on RGB) replaces the run's ``metrics``/``profile``."""
    if ds_opt.get('metric_profile'):
        out = {k: v for k, v in settings.items() if k != 'metrics'}
        out['profile'] = ds_opt['metric_profile']
        return out
    return settings


@torch.no_grad()
def extra_outputs(pipeline: Any, lq: torch.Tensor, **conditions: Any) -> Dict[str, torch.Tensor]:
    """All named image outputs (stages, log-variance maps) of one whole-image pass of the pipeline's network,
    with the pipeline's centre crop and padding, cropped back; {} for single-output networks.
    ``conditions``: the network's extra inputs (see :mod:`basicsr.archs.conditions`)."""
    from basicsr.archs.outputs import NamedOutputs
    from basicsr.inference.padding import center_crop_to_multiple, crop_back, pad_to_multiple
    net = getattr(pipeline, 'net', None)
    if net is None:
        return {}
    if getattr(pipeline, 'center_crop_multiple', None) is not None:
        lq = center_crop_to_multiple(lq, pipeline.center_crop_multiple)
    multiple = getattr(pipeline, 'pad_multiple', None)
    x = pad_to_multiple(lq, multiple, 'extra outputs')[0] if multiple else lq
    out = net(x, **conditions)
    if not isinstance(out, NamedOutputs):
        return {}
    size = tuple(lq.shape[-2:])
    return {name: crop_back(t, size, t.shape[-2] // x.shape[-2]) for name, t in out.items()
            if t.dim() == 4}  # images only (not UniRestorer's mu / logvar vectors or its aux loss)


def side_by_side(lq: torch.Tensor, out: torch.Tensor, gt: Optional[torch.Tensor]) -> torch.Tensor:
    """``input | output | gt`` in one (C, H, W*k) image; the input is upsampled (nearest) for SR."""
    if lq.shape[-2:] != out.shape[-2:]:
        lq = F.interpolate(lq[None], size=out.shape[-2:], mode='nearest')[0]
    if lq.shape[0] != out.shape[0]:
        lq = lq[:out.shape[0]] if lq.shape[0] > out.shape[0] else lq.expand(out.shape[0], -1, -1)
    panels = [lq, out] + ([gt] if gt is not None and gt.shape == out.shape else [])
    gap = torch.ones(out.shape[0], out.shape[1], 4)
    parts: List[torch.Tensor] = []
    for p in panels:
        parts += [p.clamp(0, 1), gap]
    return stacked_views(torch.cat(parts[:-1], dim=2))


def image_views(img: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``{file-name suffix: (C, H, W) image}`` to save: a stereo pair (6 channels, NAFSSR) as its left and right
    views ``_L`` / ``_R`` (as NAFNet saves them), any other image as itself (suffix '')."""
    return {'_L': img[:3], '_R': img[3:]} if img.shape[0] == 6 else {'': img}


def stacked_views(img: torch.Tensor) -> torch.Tensor:
    """A stereo pair (6, H, W) as one viewable (3, 2H, W) image, left view above right; others unchanged."""
    return torch.cat([img[:3], img[3:]], dim=1) if img.shape[0] == 6 else img


@torch.no_grad()
def evaluate(pipeline: Callable[[torch.Tensor], Any], dataset: Any, val_opt: Dict[str, Any],
             device: torch.device, save_dir: Optional[Path] = None, save_img: bool = False,
             suffix: Optional[str] = None, pbar: bool = True, desc: str = 'eval', scale: int = 1) -> Dict[str, Any]:
    """Restore and score every image of ``dataset``.

    Args:
        pipeline: ``lq (1, C, H, W) float [0, 1] -> output`` (tensor or NamedOutputs).
        dataset: items ``{'lq', 'gt'?, 'lq_path'}`` with (C, H, W) tensors.
        scale: super-resolution factor (for cropping GT like the input).
        val_opt: the ``val``/``test`` option block (``metrics`` or ``profile``, ``save_comparison``,
            ``save_extra_outputs``).
    Returns:
        ``{'mean': {metric: value}, 'images': [{'name', metric...}], 'skipped': [{'name', 'reason'}],
        'task_accuracy': the task classifier's accuracy on labelled samples ({} without), 'metric_spec': str,
        'preview': (C, H, W) input | output | gt of the first image (rank 0)}``.
        ``skipped``: samples a ``skip_bad`` dataset could not load and files it left out when built
        (:attr:`~basicsr.data.base_dataset.RestorationDataset.excluded`); they are not in the means.
    """
    from basicsr.archs.outputs import main_output
    scorer = build_scorer(val_opt)
    rank, world = get_dist_info()
    indices = list(range(rank, len(dataset), world))
    records: List[Dict[str, Any]] = []
    skipped: List[Dict[str, Any]] = []
    save_cmp = bool(val_opt.get('save_comparison', False))
    save_extra = bool(val_opt.get('save_extra_outputs', False))
    preview: Optional[torch.Tensor] = None
    for idx in tqdm(indices, desc=desc, disable=not pbar or rank != 0, unit='img'):
        item = dataset[idx]
        if 'skipped' in item:
            skipped.append({'name': Path(item['name']).stem, 'index': idx, 'reason': item['skipped']})
            continue
        lq = item['lq'].unsqueeze(0).to(device)
        cond = condition_kwargs(pipeline.net, item, f'{desc} image {idx}', device, single=True,
                                optional=pipeline.provided_conditions) if getattr(pipeline, 'conditions', ()) else {}
        out = pipeline(lq, item) if getattr(pipeline, 'takes_item', False) else pipeline(lq, **cond)
        pred = main_output(out).clamp(0, 1).float().cpu()[0]
        name = Path(item.get('lq_path') or item.get('gt_path') or f'{idx:05d}').stem
        rec: Dict[str, Any] = {'name': name, 'index': idx}
        routing = getattr(pipeline, 'routing_records', lambda: [])()
        rec.update(routing[0] if routing else {})  # routed networks (UniRestorer): leaf, level, expert
        if getattr(pipeline, 'task_classifier', None) is not None:  # its accuracy on labelled sets
            rec.update(task_record(pipeline.task_classifier, lq, item))
        gt = item.get('gt')
        if gt is not None:
            gt = gt.float().cpu()
            if hasattr(pipeline, 'crop_target'):  # evaluation protocols that crop the input crop GT alike
                gt = pipeline.crop_target(gt[None], scale)[0]
            if gt.shape != pred.shape:
                raise ValueError(f"{item.get('gt_path', name)}: ground truth is {tuple(gt.shape)} but the "
                                 f'output is {tuple(pred.shape)}; check scale and crops')
            rec.update(scorer(pred, gt))
            for mname, mout in zip(getattr(pipeline, 'member_names', []), getattr(pipeline, 'member_outputs', [])):
                rec.update({f'{k}@{mname}': v for k, v in scorer(mout, gt).items()})
        if save_dir is not None and save_img:
            stem = f'{name}_{suffix}' if suffix else name
            for view, img in image_views(pred).items():
                write_image(save_dir / f'{stem}{view}.png', tensor2img(img))
            if save_cmp:
                write_image(save_dir / 'comparison' / f'{stem}.png',
                            tensor2img(side_by_side(item['lq'].float().cpu(), pred, gt)))
            if save_extra:
                for oname, t in extra_outputs(pipeline, lq, **cond).items():
                    t = t[0].float().cpu()
                    if oname.startswith('var:'):  # log-variance: show as a normalised map
                        t = (t - t.min()) / (t.max() - t.min() + 1e-12)
                    write_image(save_dir / 'extra' / f"{stem}_{oname.replace(':', '')}.png", tensor2img(t))
        if preview is None and rank == 0:
            preview = side_by_side(item['lq'].float().cpu(), pred, gt)
        records.append(rec)
    parts = all_gather_objects((records, skipped))
    gathered = sorted((r for part, _ in parts for r in part), key=lambda r: r['index'])
    left_out = [{'name': Path(n).stem, 'reason': why} for n, why in getattr(dataset, 'excluded', [])]
    skipped = left_out + [{'name': r['name'], 'reason': r['reason']}
                          for r in sorted((r for _, part in parts for r in part), key=lambda r: r['index'])]
    keys = [k for k, v in (gathered[0] if gathered else {}).items()
            if k not in ('name', 'index') and isinstance(v, float)]  # metrics, not routing ids / names
    mean = {k: float(np.mean([r[k] for r in gathered])) for k in keys}
    return {'mean': mean, 'images': gathered, 'skipped': skipped, 'task_accuracy': task_accuracy(gathered),
            'metric_spec': getattr(scorer, 'description', 'none'), 'preview': preview}


def write_results(result: Dict[str, Any], folder: Path, dataset_name: str, extra: Optional[Dict] = None) -> None:
    """``metrics.json`` (means, profile/metric description, count) and ``<dataset>_per_image.csv``.

    Skipped samples (``skip_bad``) are counted and named in ``metrics.json`` (``num_skipped``, ``skipped``)
    and get a CSV row with empty metrics and the reason in a ``skipped`` column."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / 'metrics.json'
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    skipped = result.get('skipped') or []
    data[dataset_name] = {'mean': result['mean'], 'num_images': len(result['images']),
                          'metrics': result['metric_spec'], **(extra or {})}
    if skipped:
        data[dataset_name].update({'num_skipped': len(skipped), 'skipped': skipped})
    if result.get('task_accuracy'):
        data[dataset_name]['task_accuracy'] = result['task_accuracy']
    json_path.write_text(json.dumps(data, indent=2))
    rows = result['images']
    keys = [k for k in (rows[0] if rows else {'name': None}) if k != 'index']
    with open(folder / f'{dataset_name}_per_image.csv', 'w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow(keys + (['skipped'] if skipped else []))
        for r in rows:
            writer.writerow([f'{r[k]:.6f}' if isinstance(r[k], float) and math.isfinite(r[k]) else r[k]
                             for k in keys] + ([''] if skipped else []))
        for r in skipped:
            writer.writerow([r['name']] + [''] * (len(keys) - 1) + [r['reason']])
