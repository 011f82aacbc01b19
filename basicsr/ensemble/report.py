"""Scoring ensemble outputs against ground truth and printing/writing the results tables.

Metrics go through the named profiles of :mod:`basicsr.metrics.profiles`, so every number states its
convention (colour space, rounding, SSIM variant) by the profile name.
"""
import csv
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

import torch

from basicsr.metrics.profiles import compute_metrics

Tensor = torch.Tensor
Row = Dict[str, Union[str, float]]

# The official EnsIR evaluation (ensir.md section 8): float, unrounded output; PSNR on Y (deraining, SR)
# or RGB (deblurring); SSIM with the 11x11 sigma-1.5 Gaussian window, population statistics, valid
# region (pytorch_msssim). Expressed with the toolbox's metric functions, under these names.
_ENSIR_SSIM = {'type': 'calculate_ssim_float', 'gaussian_weights': True, 'use_sample_covariance': False}
ENSIR_PROTOCOLS = {
    'ensir_y': {'psnr': {'type': 'calculate_psnr_float', 'test_y_channel': True},
                'ssim': {**_ENSIR_SSIM, 'test_y_channel': True}},
    'ensir_rgb': {'psnr': {'type': 'calculate_psnr_float'}, 'ssim': dict(_ENSIR_SSIM)},
}


def resolve_profile(name: str) -> Union[str, Dict[str, Dict[str, object]]]:
    """A metric profile of :mod:`basicsr.metrics.profiles` by name, or one of :data:`ENSIR_PROTOCOLS`."""
    return ENSIR_PROTOCOLS.get(name, name)


def score(outputs: Mapping[str, Tensor], gt: Tensor, profile: str) -> Dict[str, Dict[str, float]]:
    """{method: {metric: value}} for outputs and gt given as (3, H, W) float on the [0, 255] scale."""
    gt01 = gt / 255.0
    metrics = resolve_profile(profile)
    return {name: compute_metrics(out / 255.0, gt01, metrics) for name, out in outputs.items()}


def rows_from_scores(per_image: Mapping[str, Mapping[str, Mapping[str, float]]]) -> List[Row]:
    """Flatten {image: {method: {metric: v}}} into rows image/method/metric..., plus a 'mean' row per method."""
    rows: List[Row] = []
    methods: Dict[str, Dict[str, List[float]]] = {}
    for image, by_method in per_image.items():
        for method, metrics in by_method.items():
            rows.append({'image': image, 'method': method, **metrics})
            for key, value in metrics.items():
                methods.setdefault(method, {}).setdefault(key, []).append(value)
    for method, metrics in methods.items():
        rows.append({'image': 'mean', 'method': method, **{k: sum(v) / len(v) for k, v in metrics.items()}})
    return rows


def metric_table(rows: Sequence[Row], metric: str, digits: int = 3) -> str:
    """Markdown table with one row per image (and 'mean') and one column per method, for one metric."""
    methods = list(dict.fromkeys(str(r['method']) for r in rows))
    images = list(dict.fromkeys(str(r['image']) for r in rows))
    value = {(str(r['image']), str(r['method'])): r.get(metric) for r in rows}
    lines = [f'| image | {" | ".join(methods)} |', '| --- |' + ' ---: |' * len(methods)]
    for image in images:
        cells = []
        best = max((v for m in methods if (v := value.get((image, m))) is not None), default=None)
        for m in methods:
            v = value.get((image, m))
            text = '' if v is None else f'{v:.{digits}f}'
            cells.append(f'**{text}**' if v is not None and v == best else text)
        label = f'**{image}**' if image == 'mean' else image
        lines.append(f'| {label} | {" | ".join(cells)} |')
    return '\n'.join(lines)


def write_csv(rows: Sequence[Row], path: Union[str, Path]) -> None:
    """Write the rows (image, method, metrics...) as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f'{v:.6f}' if isinstance(v, float) else v) for k, v in r.items()})
