"""Build a ready-to-use ensembler from an ``ensemble:`` option block (for test.py and the scripts).

Option block (YAML)::

    ensemble:
      method: EnsIR            # EnsIR | average | zzpm | median (registry names, case-insensitive)
      table: weights/ensir_derain_b32.pth   # EnsIR: load this table (own or official format) ...
      fit:                     # ... or estimate it on a reference set (saved to `table` if given)
        models: [ref/MPRNet, ref/MAXIM, ref/Restormer]   # one folder per base model, same order as inference
        gt: ref/gt
      bin_width: 32            # other keys: constructor options of the method (EnsIR: default_weight,
      default_weight: ~        #   empty_bins, robust_em, em_precision, min_samples, max_steps, tol, ...)

Rules: with ``table`` pointing to an existing file the table is loaded and ``fit`` is not used; otherwise
``fit`` estimates it (and writes it to ``table`` when that is set, so the next run loads it). The
baselines need neither. The returned object has ``apply(preds)`` on the EnsIR scale ([0, 255]);
:func:`apply_unit_range` wraps it for toolbox tensors in [0, 1].
"""
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from basicsr.ensemble import build_ensembler
from basicsr.ensemble.base import Ensembler, check_num_models
from basicsr.ensemble.folders import load_reference_set
from basicsr.utils.registry import ENSEMBLE_REGISTRY, check_kwargs

PathLike = Union[str, Path]
Tensor = torch.Tensor

RUNNER_KEYS = ('method', 'table', 'fit')
FIT_KEYS = ('models', 'gt', 'names')


def resolve_method(method: str) -> str:
    """Registry name for ``method`` (case-insensitive: 'ensir' -> 'EnsIR', 'zzpm' -> 'ZZPM')."""
    if not isinstance(method, str):
        raise ValueError(f'ensemble.method: expected one of {ENSEMBLE_REGISTRY.keys()}, got {method!r}')
    by_lower = {name.lower(): name for name in ENSEMBLE_REGISTRY.keys()}
    if method.lower() not in by_lower:
        raise ValueError(f'ensemble.method: expected one of {ENSEMBLE_REGISTRY.keys()} (any case), got {method!r}')
    return by_lower[method.lower()]


def build_ensemble_from_opt(opt: Mapping[str, Any], num_models: Optional[int] = None,
                            progress: bool = False) -> Ensembler:
    """Build the ensembler of an ``ensemble:`` block and load or fit its table (see module docstring).

    Args:
        opt: the ``ensemble:`` mapping.
        num_models: number of base models the caller will ensemble, if known; a table or reference set
            with a different M raises ValueError before any inference runs.
        progress: show a progress bar while reading a reference set.
    Returns:
        An :class:`~basicsr.ensemble.base.Ensembler` ready for ``apply``.
    """
    if not isinstance(opt, Mapping) or 'method' not in opt:
        raise ValueError(f"ensemble: expected a mapping with a 'method' key, got {opt!r}")
    name = resolve_method(opt['method'])
    kwargs = {k: v for k, v in opt.items() if k not in RUNNER_KEYS}
    ensembler = fit_or_load(name, kwargs, table=opt.get('table'), fit=opt.get('fit'), progress=progress)
    if num_models is not None:
        check_num_models(ensembler.num_models, num_models, f'ensemble ({ensembler.describe()})')
        ensembler.num_models = num_models
    return ensembler


def fit_or_load(method: str, options: Dict[str, Any], table: Optional[PathLike] = None,
                fit: Optional[Mapping[str, Any]] = None, progress: bool = False) -> Ensembler:
    """Create ``method`` with ``options``; load ``table`` if it exists, else fit on ``fit`` (and save to ``table``).

    Training-free methods are returned as built (a ``fit`` block only fixes their model count).
    """
    cls = ENSEMBLE_REGISTRY.get(method)
    check_kwargs(cls, options, f"ensemble method '{method}'")  # before any file is read
    if hasattr(cls, 'load'):
        if table is not None and Path(table).is_file():
            return cls.load(table, **options)
        if fit is None:
            where = f'{table} does not exist and ' if table is not None else ''
            raise ValueError(f'ensemble ({method}): {where}no reference set to fit on; expected `table:` (an '
                             f'existing table file) or `fit: {{models: [...], gt: ...}}`')
        ensembler = build_ensembler({'type': method, **options})
        ensembler.fit(*_read_fit_block(fit, progress))
        if table is not None:
            ensembler.save(table)
        return ensembler
    if table is not None:
        raise ValueError(f'ensemble ({method}): expected no `table` (a training-free method), got {table}')
    ensembler = build_ensembler({'type': method, **options})
    if fit is not None:
        ensembler.num_models = len(_fit_models(fit))
    return ensembler


def apply_unit_range(ensembler: Ensembler, preds: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Ensemble toolbox images: (M, 3, H, W) / (B, M, 3, H, W) float in [0, 1] -> (3, H, W) / (B, 3, H, W) in [0, 1].

    The EnsIR bins live on the [0, 255] scale; values are scaled by 255 (exact for uint8 / 255 inputs)
    and back. The output is not clipped.
    """
    if isinstance(preds, (list, tuple)):
        preds = torch.stack(list(preds), 0)
    return ensembler.apply(preds * 255.0) / 255.0


def _fit_models(fit: Mapping[str, Any]) -> list:
    if not isinstance(fit, Mapping) or 'models' not in fit or 'gt' not in fit:
        raise ValueError(f'ensemble.fit: expected {{models: [folder, ...], gt: folder}}, got {fit!r}')
    unknown = sorted(set(fit) - set(FIT_KEYS))
    if unknown:
        raise ValueError(f'ensemble.fit: unknown key(s) {unknown}; accepted: {list(FIT_KEYS)}')
    models = fit['models']
    if isinstance(models, (str, Path)) or not models:
        raise ValueError(f'ensemble.fit.models: expected a non-empty list of prediction folders, got {models!r}')
    return list(models)


def _read_fit_block(fit: Mapping[str, Any], progress: bool) -> tuple:
    preds, gts, _ = load_reference_set(_fit_models(fit), fit['gt'], names=fit.get('names'), progress=progress)
    return preds, gts
