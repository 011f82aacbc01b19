"""Image pairs named by list files (DSRIR CSV lists, PromptIR id lists) or by a file-name rule.

All-in-one releases do not store pairs as two folders with equal names:

- DSRIR ``datasets/train/train_*.csv``: one ``target_rel_path,degraded_rel_path`` row per sample, relative
  to the training root; denoising rows list the clean image twice (the noise is synthesised).
- PromptIR ``data_dir/*``: one degraded path per line (``rainy/rain-12.png``,
  ``synthetic/part1/0001_0.8_0.2.jpg``); the clean path follows from it (``gt/norain-12.png``,
  ``original/0001.jpg``). Its denoising list names clean images only.
- SOTS test folders: ``input/0001_0.8_0.2.jpg`` against ``target/0001.png``.

:class:`ListPairDataset` reads all of these: a ``list_file`` in ``csv`` or ``lines`` format (or, without
one, every image of ``dataroot_lq``), a ``gt_from_lq`` regular-expression rule for the clean path, and an
optional ``degradation`` that synthesises the LQ image from the clean one.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, eval_noise_rng, preview, require_dir, scan_images
from basicsr.data.degradations import build_degradations
from basicsr.data.image_source import ImageSource
from basicsr.utils.img_util import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

LIST_FORMATS = ('csv', 'lines')


class ListedSource(ImageSource):
    """An :class:`ImageSource` on disk whose names come from a list instead of a folder scan."""

    def __init__(self, root: str, names: Sequence[str], key: str, owner: str, listed_in: str) -> None:
        self.root = require_dir(root, key, owner)
        self.backend, self.key = 'disk', key
        self.names = sorted(set(names))
        missing = [n for n in self.names if not (self.root / n).is_file()]
        if missing:
            raise DataError(f"{owner}: {len(missing)} file(s) named by {listed_in} are missing under {key} "
                            f"'{root}': {preview(missing)}")


def read_pair_list(path: str, fmt: str, owner: str) -> List[Tuple[Optional[str], str]]:
    """Rows of a list file as ``(gt_name or None, lq_name)``.

    ``csv``: ``target,degraded`` per line (DSRIR; every row is read, whereas the official ``pd.read_csv``
    call takes the first row as a header and drops it). ``lines``: one name per line, the clean name is
    derived later (PromptIR). Blank lines and ``#`` comments are skipped; a ``csv`` line without exactly two
    fields raises naming the file and line.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{owner}: option 'list_file' = '{path}' does not exist")
    rows: List[Tuple[Optional[str], str]] = []
    for lineno, line in enumerate(file.read_text(encoding='utf-8').splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if fmt == 'csv':
            fields = [f.strip() for f in line.split(',')]
            if len(fields) != 2 or not all(fields):
                raise DataError(f"{owner}: list_file '{path}' line {lineno}: expected 'target,degraded', got {line!r}")
            rows.append((fields[0], fields[1]))
        else:
            rows.append((None, line))
    return rows


def compile_rule(rule: Any, owner: str) -> Optional[Tuple[re.Pattern, str]]:
    """``gt_from_lq: [pattern, replacement]`` (Python ``re.sub`` syntax) -> compiled rule, or None."""
    if rule is None:
        return None
    if not (isinstance(rule, (list, tuple)) and len(rule) == 2 and all(isinstance(r, str) for r in rule)):
        raise DataError(f"{owner}: option 'gt_from_lq' must be [pattern, replacement], e.g. "
                        f"['rainy/rain-(\\d+)', 'gt/norain-\\1'], got {rule!r}")
    try:
        return re.compile(rule[0]), rule[1]
    except re.error as exc:
        raise DataError(f"{owner}: option 'gt_from_lq' pattern {rule[0]!r} is not a valid regular expression: "
                        f'{exc}') from None


def apply_rule(rule: Tuple[re.Pattern, str], lq_name: str, owner: str) -> str:
    pattern, repl = rule
    gt_name, count = pattern.subn(repl, lq_name, count=1)
    if not count:
        raise DataError(f"{owner}: option 'gt_from_lq' pattern {pattern.pattern!r} does not match the LQ name "
                        f"'{lq_name}', so its clean image is unknown")
    return gt_name


@DATASET_REGISTRY.register()
class ListPairDataset(RestorationDataset):
    """Pairs from a list file or a name rule; LQ images may be synthesised from the clean ones.

    Options:
        dataroot_lq: folder the degraded names are relative to (with ``list_format: lines`` and no
            ``gt_from_lq``, the listed files are the clean images).
        dataroot_gt: folder the clean names are relative to (default: ``dataroot_lq``).
        list_file: optional list of samples; without it every image under ``dataroot_lq`` is one sample.
        list_format: 'csv' (``target,degraded`` rows, DSRIR) or 'lines' (one degraded name per line,
            PromptIR); default 'lines'.
        gt_from_lq: [pattern, replacement] regular expression giving the clean name from the degraded one
            (``lines`` and folder scans; e.g. ``['^(\\d+)_.*$', '\\1.png']`` for SOTS).
        degradation: a registered degradation (or list) that makes the LQ image from the clean one; used
            for samples whose degraded name equals the clean name, or for every sample of a clean-only list.
        noise_seed: seed of the fixed synthetic degradation outside training (per image name).
        phase, gt_size, use_hflip/use_flip, use_rot, geometric_augs, pad_to_gt_size, in_ch, color,
        cache_images, skip_bad: as PairedImageDataset. Repeated rows are kept (DSRIR lists Rain100L 25 times).

    Sample: ``{'lq', 'gt'`` (C, H, W) float tensors in [0, 1], ``'lq_path', 'gt_path'}``.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        fmt = opt.get('list_format') or 'lines'
        if fmt not in LIST_FORMATS:
            raise DataError(f"{self.owner}: option 'list_format' must be one of {LIST_FORMATS}, got {fmt!r}")
        lq_root = opt.get('dataroot_lq')
        gt_root = opt.get('dataroot_gt') or lq_root
        rule = compile_rule(opt.get('gt_from_lq'), self.owner)
        if opt.get('list_file'):
            if fmt == 'csv' and rule is not None:
                raise DataError(f"{self.owner}: 'gt_from_lq' is not used with list_format 'csv' (rows name both "
                                'images); remove it')
            rows = read_pair_list(opt['list_file'], fmt, self.owner)
            listed_in = f"list_file '{opt['list_file']}'"
        else:
            rows = [(None, n) for n in scan_images(require_dir(lq_root, 'dataroot_lq', self.owner))]
            listed_in = f"the folder dataroot_lq '{lq_root}'"
        if not rows:
            raise DataError(f'{self.owner}: {listed_in} names no images')
        deg_opt = opt.get('degradation')
        self.degrade = build_degradations(deg_opt, 'degradation') if deg_opt is not None else None
        self.noise_seed = int(opt.get('noise_seed', 0))
        # (gt name, lq name or None when the LQ image is synthesised)
        self.samples: List[Tuple[str, Optional[str]]] = []
        for gt_name, lq_name in rows:
            if gt_name is None:
                gt_name = apply_rule(rule, lq_name, self.owner) if rule is not None else lq_name
            synthetic = gt_name == lq_name and gt_root == lq_root
            if synthetic and self.degrade is None:
                raise DataError(f"{self.owner}: sample '{lq_name}' in {listed_in} has no separate degraded image "
                                "(clean-only list, or a CSV row naming the same file twice); give 'degradation' "
                                "to synthesise it or 'gt_from_lq' to name the clean file")
            self.samples.append((gt_name, None if synthetic else lq_name))
        if self.skip_bad:
            self.samples = self._without_missing_files(gt_root, lq_root, listed_in)
        self.gt_source = ListedSource(gt_root, [g for g, _ in self.samples], 'dataroot_gt', self.owner, listed_in)
        lq_names = [lq for _, lq in self.samples if lq is not None]
        self.lq_source = (ListedSource(lq_root, lq_names, 'dataroot_lq', self.owner, listed_in)
                          if lq_names else None)

    def _without_missing_files(self, gt_root: str, lq_root: str, listed_in: str
                               ) -> List[Tuple[str, Optional[str]]]:
        """``skip_bad``: the samples whose files exist; the missing files are left out (see ``excluded``)."""
        gt_dir = require_dir(gt_root, 'dataroot_gt', self.owner)
        lq_dir = require_dir(lq_root, 'dataroot_lq', self.owner) if any(lq for _, lq in self.samples) else gt_dir
        kept, missing = [], []
        for gt_name, lq_name in self.samples:
            absent = [n for n, d in ((gt_name, gt_dir), (lq_name, lq_dir)) if n is not None and not (d / n).is_file()]
            missing += absent
            if not absent:
                kept.append((gt_name, lq_name))
        self.exclude(missing, f'named by {listed_in} but missing')
        if not kept:
            raise DataError(f'{self.owner}: none of the files named by {listed_in} exist')
        return kept

    def sample_name(self, index: int) -> str:
        gt_name, lq_name = self.samples[index]
        return lq_name or gt_name

    def __len__(self) -> int:
        return len(self.samples)

    def eval_rng(self, name: str) -> np.random.Generator:
        """Fixed generator of image ``name`` for validation and test (same rule as SyntheticDegradationDataset)."""
        return eval_noise_rng(self.noise_seed, name)

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        gt_name, lq_name = self.samples[index]
        gt_path = self.gt_source.path(gt_name)
        gt = self.read(self.gt_source, gt_name)
        lq = self.read(self.lq_source, lq_name) if lq_name is not None else gt
        lq_path = self.lq_source.path(lq_name) if lq_name is not None else gt_path
        gt, lq = self.prepare_pair(gt, lq, gt_path, lq_path, rng, align=lq_name is not None)
        gt = self.finalize(gt, gt_path)
        if lq_name is None:
            lq = self.degrade(gt, rng if self.phase == 'train' else self.eval_rng(gt_name))
        else:
            lq = self.finalize(lq, lq_path)
        return {'lq': img2tensor(lq), 'gt': img2tensor(gt), 'lq_path': lq_path, 'gt_path': gt_path}
