"""EnsIR: training-free ensemble of restoration models with range-wise GMM weights.

S. Sun et al., "EnsIR: An Ensemble Algorithm for Image Restoration via Gaussian Mixture Models",
NeurIPS 2024. On a small reference set with ground truth, every (pixel, channel) sample is put in a joint
bin of the M models' predicted values (:mod:`basicsr.ensemble.bins`). For each bin and channel a 1-D
Gaussian mixture with one component per model, mean fixed at the model's mean prediction in the bin, is
fitted to the ground truth by EM (:mod:`basicsr.ensemble.gmm_em`); its mixing weights are the ensemble
weights of that bin. At test time each sample is ``sum_m W[k, c, m] * x_m`` with k the sample's joint bin.

Estimation follows the official code (sunshangquan/EnsIR) by default, oddities included:

* a bin/channel with N >= ``min_samples`` (100) samples runs EM from the initial weights; with
  0 < N < 100 it keeps the initial weights; if EM fails (a variance turns 0 or NaN, e.g. when a model's
  bin mean is far from the ground truth) it falls back to the initial weights;
* initial weights: ``default_weight`` if given, else ``softmax_m(1 / (1e-10 + rms_m))`` with rms_m the
  RMS deviation of model m from the per-sample mean of the models;
* an empty bin/channel copies the weights of the previous (bin, channel) in processing order (bins
  lexicographic, channels R, G, B inside a bin), uniform before the first non-empty one.

Corrected behaviour is opt-in: ``empty_bins='prior'`` gives empty bins ``default_weight`` (or uniform)
instead of an arbitrary neighbour's weights; ``robust_em=True`` keeps EM running where the official code
aborts (see :func:`basicsr.ensemble.gmm_em.fit_fixed_mean_gmm`); ``em_precision='float64'`` makes the
stopping step (a 1e-5 threshold on a float32 mean log-likelihood) insensitive to summation order.

Application is a gather: per sample the flat bin index, one ``index_select`` per (channel, model) from
the dense table, and the weighted sum; output float [0, 255], not clipped or rounded (as the official
code, whose output it reproduces bit for bit). Scratch buffers are reused between calls, because fresh
large allocations (page faults) cost more than the arithmetic.
"""
import inspect
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from basicsr.ensemble.base import (DEFAULT_CHUNK_PIXELS, DEFAULT_CPU_THREADS, Ensembler, check_num_models,
                                   check_reference_set, cpu_threads, device_of)
from basicsr.ensemble.bins import scratch_buffer, bins_per_model, check_bin_width, joint_bin_index
from basicsr.ensemble.gmm_em import EM_FAILED, EM_RESET, fit_fixed_mean_gmm
from basicsr.ensemble.lut_io import load_table, save_table
from basicsr.utils.registry import ENSEMBLE_REGISTRY

Tensor = torch.Tensor

EMPTY_BIN_RULES = ('previous', 'prior')
EM_PRECISIONS = {'float32': torch.float32, 'float64': torch.float64}
# The dense table and the per-bin statistics of the estimation grow as nb**M; beyond this (e.g. b = 32
# with M >= 7) they need gigabytes and almost every bin is empty.
MAX_TABLE_ROWS = 2**20


@ENSEMBLE_REGISTRY.register()
class EnsIR(Ensembler):
    """Range-wise GMM ensemble with a dense weight table.

    Args:
        bin_width: value-bin width b in 1..256 on the [0, 255] scale; nb = ceil(256 / b) bins per model.
        default_weight: optional list of M initial EM weights (also the weights of small bins), e.g.
            [0.1, 0.3, 0.6] as the official Rain100L config; None = inverse-RMS softmax per bin.
        empty_bins: 'previous' (official: copy the previous bin/channel's weights) or 'prior'
            (default_weight, or uniform).
        robust_em: False (official failure handling) or True (see module docstring).
        em_precision: 'float32' (official) or 'float64'.
        min_samples: bins/channels with fewer samples keep their initial weights (official: 100).
        max_steps: EM step cap; the official loop runs up to max_steps + 1 steps (official: 1000).
        tol: EM stops when the mean log-likelihood gains less than this (official: 1e-5).
        chunk_pixels: pixels processed at once by ``apply``.
        cpu_threads: intra-op threads while fitting/applying on CPU (default 1, see
            :data:`basicsr.ensemble.base.DEFAULT_CPU_THREADS`); None keeps torch's setting.

    Attributes:
        table: (nb**M, 3, M) float32 CPU tensor of weights, row k = sum_m i_m * nb**(M-1-m) (i_m = bin of
            model m), column c = channel R, G, B; None before fit/load.
        fit_info: counts of empty / small / EM / failed / reset bin-channels after ``fit``.
    """

    def __init__(self, bin_width: int = 32, default_weight: Optional[Sequence[float]] = None,
                 empty_bins: str = 'previous', robust_em: bool = False, em_precision: str = 'float32',
                 min_samples: int = 100, max_steps: int = 1000, tol: float = 1e-5,
                 chunk_pixels: int = DEFAULT_CHUNK_PIXELS, cpu_threads: Optional[int] = DEFAULT_CPU_THREADS) -> None:
        super().__init__(chunk_pixels, cpu_threads)
        self.bin_width = check_bin_width(bin_width)
        self.default_weight = _check_default_weight(default_weight)
        if empty_bins not in EMPTY_BIN_RULES:
            raise ValueError(f"empty_bins: expected one of {EMPTY_BIN_RULES}, got {empty_bins!r}")
        if em_precision not in EM_PRECISIONS:
            raise ValueError(f"em_precision: expected one of {tuple(EM_PRECISIONS)}, got {em_precision!r}")
        if int(min_samples) < 1 or int(max_steps) < 0 or not float(tol) >= 0:
            raise ValueError(f'expected min_samples >= 1, max_steps >= 0, tol >= 0, got {min_samples}, '
                             f'{max_steps}, {tol}')
        self.empty_bins = empty_bins
        self.robust_em = bool(robust_em)
        self.em_precision = em_precision
        self.min_samples = int(min_samples)
        self.max_steps = int(max_steps)
        self.tol = float(tol)
        self.table: Optional[Tensor] = None
        self.fit_info: Dict[str, int] = {}
        self._device_tables: Dict[torch.device, Tensor] = {}
        # scratch buffers of apply, reused between calls (bounded by chunk_pixels)
        self._workspace: Dict[str, Tensor] = {}

    @property
    def num_bins(self) -> int:
        """nb: value bins per model."""
        return bins_per_model(self.bin_width)

    def options(self) -> Dict[str, Any]:
        """The estimation options, as stored with a saved table."""
        return {'bin_width': self.bin_width, 'default_weight': self.default_weight, 'empty_bins': self.empty_bins,
                'robust_em': self.robust_em, 'em_precision': self.em_precision, 'min_samples': self.min_samples,
                'max_steps': self.max_steps, 'tol': self.tol}

    # ------------------------------------------------------------------ estimation
    @torch.no_grad()
    def fit(self, preds: Sequence[Tensor], gts: Sequence[Tensor]) -> 'EnsIR':
        """Estimate the weight table on a reference set; returns self.

        Args:
            preds: sequence over reference images of (M, 3, H, W) float tensors, RGB, [0, 255].
            gts: sequence of (3, H, W) float tensors, same sizes, same range.
        """
        with cpu_threads(self.cpu_threads, device_of(preds)):
            num_models, _ = check_reference_set(preds, gts)
            return self._fit(preds, [g if g.is_floating_point() else g.float() for g in gts], num_models)

    def _fit(self, preds: Sequence[Tensor], gts: Sequence[Tensor], num_models: int) -> 'EnsIR':
        """Two passes over the images for per-bin statistics, then one batched EM over all EM bins."""
        if self.default_weight is not None and len(self.default_weight) != num_models:
            raise ValueError(f'default_weight: expected {num_models} weights (one per model), got '
                             f'{len(self.default_weight)}: {self.default_weight}')
        nb, device = self.num_bins, preds[0].device
        if nb**num_models > MAX_TABLE_ROWS:
            raise ValueError(f'EnsIR table too large: expected nb**M <= {MAX_TABLE_ROWS} joint bins, got '
                             f'{nb}**{num_models} = {nb**num_models} (bin_width {self.bin_width}, M = {num_models}); '
                             f'use a larger bin_width')
        num_slots = nb**num_models * 3  # processing order: bins lexicographic, channels R, G, B inside
        channel = torch.arange(3, device=device)[:, None]

        # pass 1: sample counts and per-model sums of x, x^2 and of the squared deviation from the
        # per-sample consensus (for the initial weights); float64 keeps the one-pass variance exact
        # for 8-bit data
        count = torch.zeros(num_slots, dtype=torch.float64, device=device)
        sums = torch.zeros(3, num_models, num_slots, dtype=torch.float64, device=device)
        slot_cache = []
        for pred in preds:
            x = pred.reshape(num_models, 3, -1).float()
            slots = (joint_bin_index(x, self.bin_width) * 3 + channel).reshape(-1)
            slot_cache.append(slots)
            x = x.reshape(num_models, -1).double()
            dev = x - x.mean(0, keepdim=True)
            count += torch.bincount(slots, minlength=num_slots)
            for m in range(num_models):
                for i, values in enumerate((x[m], x[m] * x[m], dev[m] * dev[m])):
                    sums[i, m] += torch.bincount(slots, weights=values, minlength=num_slots)
        populated = count > 0
        safe_count = count.clamp_min(1)
        mean = (sums[0] / safe_count).t()
        var = (sums[1] / safe_count).t().sub_(mean * mean).clamp_min_(0)
        init = self._initial_weights((sums[2] / safe_count).t(), num_models)

        # pass 2: the ground truth of the bin/channels that run EM, as weighted points
        em_slots = torch.nonzero(count >= self.min_samples).squeeze(1)
        group_of = torch.full((num_slots, ), -1, dtype=torch.long, device=device)
        group_of[em_slots] = torch.arange(em_slots.numel(), device=device)
        points = _GroundTruthPoints(em_slots.numel(), gts)
        for slots, gt in zip(slot_cache, gts):
            group = group_of[slots]
            sel = group >= 0
            points.add(group[sel], gt.reshape(-1)[sel])
        del slot_cache

        result = fit_fixed_mean_gmm(
            *points.arrays(), mu=mean[em_slots].float(), var=var[em_slots].float(), pi=init[em_slots],
            n=count[em_slots].float(), max_steps=self.max_steps, tol=self.tol, robust=self.robust_em,
            dtype=EM_PRECISIONS[self.em_precision])

        flat = init.clone()
        flat[em_slots] = result.weights.to(device)
        flat = self._fill_empty(flat, populated, num_models)
        self._set_table(flat.view(nb**num_models, 3, num_models))
        self.fit_info = {
            'empty': int((~populated).sum()),
            'small': int((populated & (count < self.min_samples)).sum()),
            'em': int(em_slots.numel()),
            'em_failed': int((result.status == EM_FAILED).sum()),
            'em_reset': int((result.status == EM_RESET).sum()),
            'em_max_steps': int(result.steps.max()) if result.steps.numel() else 0,
        }
        return self

    def _initial_weights(self, mean_sq_dev: Tensor, num_models: int) -> Tensor:
        """(slots, M) float32 initial weights: default_weight, or softmax of 1 / RMS deviation from consensus."""
        if self.default_weight is not None:
            w = torch.tensor(self.default_weight, dtype=torch.float32, device=mean_sq_dev.device)
            return w.expand(mean_sq_dev.shape[0], num_models).clone()
        rms = mean_sq_dev.float().sqrt()
        return torch.softmax(1.0 / (1e-10 + rms), dim=1)

    def _fill_empty(self, flat: Tensor, populated: Tensor, num_models: int) -> Tensor:
        """Weights of the slots without reference samples, by the ``empty_bins`` rule."""
        if self.empty_bins == 'prior':
            prior = self.default_weight or [1.0 / num_models] * num_models
            flat[~populated] = torch.tensor(prior, dtype=flat.dtype, device=flat.device)
            return flat
        # official: copy the last populated slot before it in processing order (uniform if none)
        positions = torch.arange(flat.shape[0], device=flat.device)
        source = torch.where(populated, positions, torch.full_like(positions, -1)).cummax(0).values
        filled = flat[source.clamp_min(0)]
        filled[source < 0] = 1.0 / num_models
        return filled

    # ------------------------------------------------------------------ table
    def _set_table(self, table: Tensor) -> None:
        self.table = table.float().cpu().contiguous()  # kept on CPU; per-device copies in _table_on
        self.num_models = int(table.shape[-1])
        self._device_tables = {}

    def _table_on(self, device: torch.device) -> Tensor:
        """(3, M, nb**M) weights on ``device``: one contiguous row per (channel, model) for the gathers."""
        if device not in self._device_tables:
            self._device_tables[device] = self.table.permute(1, 2, 0).contiguous().to(device)
        return self._device_tables[device]

    def save(self, path: Union[str, Path], official_format: bool = False) -> None:
        """Save the table (own format; ``official_format=True`` writes the official dict of tuples)."""
        if self.table is None:
            raise ValueError('EnsIR.save: expected a fitted or loaded table, got none (call fit or load first)')
        save_table(path, self.table, self.bin_width, self.options(), official_format=official_format)

    @classmethod
    def load(cls, path: Union[str, Path], bin_width: Optional[int] = None, **kwargs: Any) -> 'EnsIR':
        """Load a table saved by :meth:`save` or an official EnsIR ``.pth`` lookup table.

        The bin width comes from the file (official files: from the key lower bounds). ``kwargs`` are
        other constructor options (e.g. ``chunk_pixels``) for the returned object.
        """
        table, b, options = load_table(path, bin_width)
        accepted = inspect.signature(cls.__init__).parameters
        stored = {k: v for k, v in options.items() if k in accepted}
        stored.update(kwargs)
        stored['bin_width'] = b
        ens = cls(**stored)
        ens._set_table(table)
        ens.source = str(path)
        return ens

    # ------------------------------------------------------------------ application
    def apply(self, preds: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Weighted sum with the table: (M, 3, H, W) -> (3, H, W) or (B, M, 3, H, W) -> (B, 3, H, W).

        Float [0, 255] in and out, not clipped or rounded (as the official code).
        """
        if self.table is None:
            raise ValueError('EnsIR.apply: expected a fitted or loaded table, got none (call fit or load first)')
        return super().apply(preds)

    def _combine(self, x: Tensor, ctx: Any) -> Tensor:
        check_num_models(self.num_models, x.shape[0], self.describe())
        table = self._table_on(x.device).to(x.dtype)
        ws = self._workspace
        bins = joint_bin_index(x, self.bin_width, workspace=ws)  # (3, n)
        out = x.new_empty(x.shape[1:])
        weight = scratch_buffer(ws, 'weight', x.shape[2:], x)
        for c in range(3):
            # sum_m w[bin, c, m] * x_m, products added in model order like the official code (bit-identical)
            torch.index_select(table[c, 0], 0, bins[c], out=weight)
            torch.mul(weight, x[0, c], out=out[c])
            for m in range(1, x.shape[0]):
                torch.index_select(table[c, m], 0, bins[c], out=weight)
                out[c].add_(weight.mul_(x[m, c]))
        return out


class _GroundTruthPoints:
    """Ground-truth values of the EM groups as weighted points (value, count, group).

    8-bit data (integers in 0..255) are histogrammed per group: at most 256 points each. Other values are
    kept one point per sample.
    """

    def __init__(self, num_groups: int, gts: Sequence[Tensor]) -> None:
        self.num_groups = num_groups
        self.integer = all(bool(((g == g.round()) & (g >= 0) & (g <= 255)).all()) for g in gts)
        device = gts[0].device
        self.hist = torch.zeros(num_groups * 256, dtype=torch.float64, device=device) if self.integer else None
        self.values, self.groups = [], []

    def add(self, group: Tensor, y: Tensor) -> None:
        if self.integer:
            code = group * 256 + y.long()
            self.hist += torch.bincount(code, minlength=self.num_groups * 256).double()
        else:
            self.values.append(y.float())
            self.groups.append(group)

    def arrays(self) -> tuple:
        """(y, count, group) flat arrays."""
        if self.integer:
            nz = torch.nonzero(self.hist).squeeze(1)
            return (nz % 256).float(), self.hist[nz].float(), nz // 256
        y = torch.cat(self.values) if self.values else torch.zeros(0)
        group = torch.cat(self.groups) if self.groups else torch.zeros(0, dtype=torch.long)
        return y, torch.ones_like(y), group


def _check_default_weight(default_weight: Optional[Sequence[float]]) -> Optional[list]:
    if default_weight is None:
        return None
    try:
        weights = [float(w) for w in default_weight]
    except (TypeError, ValueError) as exc:
        raise ValueError(f'default_weight: expected a list of M numbers, got {default_weight!r}') from exc
    if not weights or any(not w >= 0 for w in weights) or abs(sum(weights) - 1) > 1e-3:
        raise ValueError(f'default_weight: expected M >= 1 non-negative weights summing to 1, got {weights} '
                         f'(sum {sum(weights):.4g})')
    return weights
