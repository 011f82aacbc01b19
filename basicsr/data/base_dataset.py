"""Shared machinery of the image datasets: per-sample seeding, run-time patch size and ``skip_bad``.

``skip_bad: true``: in training a bad sample (unreadable file, size mismatch) is replaced by the next good
one, so batches stay full. In validation and testing nothing is replaced (an image scored twice would bias
the mean): the bad sample comes back as ``{'skipped': reason, 'name': ...}`` and the evaluator lists it.
Files without a partner (an LQ with no GT or the reverse, a listed file that is missing) are left out when
the dataset is built and listed in :attr:`RestorationDataset.excluded`; without ``skip_bad`` they are errors.

Seeding: sample ``i`` of epoch ``e`` draws all its randomness (crop, flips, synthetic noise) from
``numpy.random.default_rng([seed, e, i])``. Nothing depends on global RNG state, the worker that loads
it or the number of workers, so a resumed run or a run sharded over more ranks sees the same samples.
``EnlargedSampler`` yields ``(index, epoch)`` keys, which carry the epoch into persistent workers; a
plain integer index uses the epoch last given to :meth:`set_epoch`.

Seed, epoch and patch size live in a small shared-memory tensor so that calls made in the main process
reach DataLoader workers that are already running (persistent workers). Batches the loader prefetched
before such a call keep the old value; ``prefetcher.reset()`` drops them and restarts at the sampler's
exact position (see ``basicsr/data/sampler.py``).
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from basicsr.data.data_util import DataError, preview
from basicsr.data.image_source import ImageSource
from basicsr.metrics.metric_util import rgb_to_y
from basicsr.utils.img_util import ImageReadError, to_unit_float

logger = logging.getLogger('basicsr')

# consecutive bad samples tolerated by skip_bad before giving up (a wrong folder, not a few bad files)
_MAX_BAD_IN_A_ROW = 50
_SEED, _EPOCH, _GT_SIZE = 0, 1, 2


class RestorationDataset(Dataset, ABC):
    """Base class: subclasses implement ``__len__`` and ``load_sample(index, rng) -> dict``.

    Common options: ``phase`` ('train' | 'val' | 'test'), ``skip_bad`` (log bad samples and leave them out
    instead of raising; see the module docstring), ``gt_size`` (train patch size), ``scale``, ``in_ch`` (1 or 3),
    ``color`` ('rgb' or 'y': BasicSR's Y-channel training on the BT.601 luma of RGB images),
    ``cache_images`` (keep decoded images in memory), ``pad_to_gt_size`` (mirror-pad training images smaller
    than ``gt_size`` instead of raising; on by default for Restormer's ``Dataset_*`` type names; ``pad_mode``
    'symmetric' or 'reflect', see :func:`~basicsr.data.transforms.pad_to_patch`),
    ``aug_identity_weight`` (see :func:`~basicsr.data.transforms.augment`: 2 for MPRNet/DSRIR, 0 for PromptIR),
    ``saturation_jitter: {prob, max_change}`` (MPRNet deblurring's colour augmentation on uint8 RGB pairs, see
    :func:`~basicsr.data.transforms.saturation_jitter`), ``trim_to_multiple`` (PromptIR: trim each training pair to
    a multiple of 16 around its centre before the crop).
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.owner = f"{type(self).__name__} '{opt.get('name', '?')}'"
        self.phase = opt.get('phase', 'train')
        self.skip_bad = bool(opt.get('skip_bad', False))
        # (name, reason) of the files left out when the dataset was built (skip_bad: unpaired or missing)
        self.excluded: List[Tuple[str, str]] = []
        self.scale = int(opt.get('scale', 1))
        self.in_ch = int(opt.get('in_ch', 3))
        if self.in_ch not in (1, 3):
            raise DataError(f"{self.owner}: option 'in_ch' must be 1 (gray) or 3 (RGB), got {opt.get('in_ch')!r}")
        self.color = opt.get('color') or 'rgb'
        if self.color not in ('rgb', 'y') or (self.color == 'y' and 'in_ch' in opt and self.in_ch != 1):
            raise DataError(f"{self.owner}: option 'color' must be 'rgb' or 'y' (BT.601 luma, one channel; then "
                            f"in_ch, if given, must be 1), got color={opt.get('color')!r}, in_ch={opt.get('in_ch')!r}")
        self._cache: Optional[Dict[Tuple[str, str], np.ndarray]] = {} if opt.get('cache_images') else None
        self._state = torch.zeros(3, dtype=torch.int64).share_memory_()
        # patch size carried by the current sampler key (index, epoch, size); per process, shared with tasks
        self._key_size: Dict[str, Optional[int]] = {'gt_size': None}
        if self.phase == 'train':
            if opt.get('gt_size') is None:
                raise DataError(f"{self.owner}: option 'gt_size' (training patch size) is required for phase 'train'")
            self.set_patch_size(int(opt['gt_size']))
            # Restormer's geometric_augs switches on all 8 flips/rotations; BasicSR/NAFNet name them separately
            both = bool(opt.get('geometric_augs', False))
            self.use_hflip = bool(opt.get('use_hflip', opt.get('use_flip', both)))
            self.use_rot = bool(opt.get('use_rot', both))
            self.identity_weight = int(opt.get('aug_identity_weight', 1))
            self.saturation_jitter = _saturation_option(opt.get('saturation_jitter'), self.owner)
            self.trim_to_multiple = int(opt.get('trim_to_multiple') or 0)
            if self.trim_to_multiple < 0 or (self.trim_to_multiple and self.scale != 1):
                raise DataError(f"{self.owner}: option 'trim_to_multiple' must be a positive integer and needs "
                                f"scale 1, got {opt.get('trim_to_multiple')!r} with scale {self.scale}")
            if self.identity_weight != 1 and not (self.use_hflip and self.use_rot and self.identity_weight >= 0):
                raise DataError(f"{self.owner}: option 'aug_identity_weight' ({opt['aug_identity_weight']!r}) needs "
                                f'use_hflip and use_rot true and must be >= 0')
            # Restormer's Dataset_* classes mirror-pad images smaller than the patch; ours raise unless asked
            self.pad_to_gt_size = bool(opt.get('pad_to_gt_size', str(opt.get('type', '')).startswith('Dataset_')))
            self.pad_mode = opt.get('pad_mode') or 'symmetric'
            if self.pad_mode not in ('symmetric', 'reflect'):
                raise DataError(f"{self.owner}: option 'pad_mode' must be 'symmetric' (edge pixel repeated, "
                                f"Restormer) or 'reflect' (MPRNet, DSRIR), got {self.pad_mode!r}")

    # ------------------------------------------------------------------ run-time state
    def set_seed(self, seed: int) -> None:
        """Base seed of all per-sample randomness (``build_dataloader`` sets it to ``manual_seed``)."""
        self._state[_SEED] = int(seed) % (2 ** 63)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices."""
        self._state[_EPOCH] = int(epoch)

    def set_patch_size(self, gt_size: int) -> None:
        """GT patch size of training crops from now on (progressive training changes it between stages)."""
        if gt_size <= 0 or gt_size % self.scale:
            raise DataError(f'{self.owner}: patch size gt_size={gt_size} must be a positive multiple of scale '
                            f'{self.scale}')
        self._state[_GT_SIZE] = int(gt_size)

    @property
    def gt_size(self) -> int:
        """Training patch size: the one the sampler key carries, else the dataset's."""
        return self._key_size['gt_size'] or int(self._state[_GT_SIZE])

    def sample_rng(self, index: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([int(self._state[_SEED]), epoch, index])

    def exclude(self, names: Sequence[str], reason: str) -> None:
        """Leave ``names`` out (``skip_bad``): log one warning and record them in :attr:`excluded`."""
        if names:
            logger.warning('%s: skip_bad: leaving out %d file(s) (%s): %s', self.owner, len(names), reason,
                           preview(names))
            self.excluded += [(n, reason) for n in names]

    def sample_name(self, index: int) -> str:
        """File name of sample ``index`` (its LQ image where there is one), for reports of skipped samples."""
        return f'{index:05d}'

    # ------------------------------------------------------------------ access
    def read(self, source: ImageSource, name: str) -> np.ndarray:
        """(H, W, C) image in its stored dtype (RGB, or gray with ``in_ch: 1``); pass crops to :meth:`finalize`.

        Converting to float after cropping saves converting the whole image. With ``cache_images: true``
        decoded images are kept in memory (per worker process): for small datasets read many times.
        """
        key = (str(source.root), name)
        img = self._cache.get(key) if self._cache is not None else None
        if img is None:
            img = source.read(name, 3 if self.color == 'y' else self.in_ch, float32=False)
            if self._cache is not None:
                self._cache[key] = img
        return img

    def prepare_pair(self, gt: np.ndarray, lq: np.ndarray, gt_path: str, lq_path: str, rng: np.random.Generator,
                     align: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """Align GT to LQ (SR benchmark sizes) and, in training, pad/crop/augment the pair alike; size
        problems become a :class:`DataError` naming both files."""
        from basicsr.data.transforms import (align_gt_to_lq, augment, center_trim, pad_to_patch, paired_random_crop,
                                             saturation_jitter)
        try:
            if align:
                gt = align_gt_to_lq(gt, lq, self.scale, gt_path, lq_path)
            if self.phase == 'train':
                if self.trim_to_multiple:
                    gt, lq = center_trim([gt, lq], self.trim_to_multiple)
                if self.pad_to_gt_size:
                    gt, lq = pad_to_patch(gt, lq, self.gt_size, self.scale, self.pad_mode)
                gt, lq = paired_random_crop(gt, lq, self.gt_size, self.scale, gt_path, rng, lq_path)
                gt, lq = augment([gt, lq], self.use_hflip, self.use_rot, rng,
                                 identity_weight=self.identity_weight)
                if self.saturation_jitter:
                    gt, lq = saturation_jitter([gt, lq], rng, **self.saturation_jitter)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        return gt, lq

    def finalize(self, img: np.ndarray, path: str) -> np.ndarray:
        """Stored dtype -> float32 in [0, 1]; with ``color: y`` the BT.601 luma in [16/255, 235/255]."""
        img = to_unit_float(img, path)
        if self.color == 'y':
            img = rgb_to_y(img, data_range=1.0).astype(np.float32)
        return img

    @abstractmethod
    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        """Sample ``index`` (``{'lq', 'gt', 'lq_path', 'gt_path'}``) with all randomness drawn from ``rng``."""

    def __getitem__(self, key: Union[int, Tuple[int, ...]]) -> Dict[str, Any]:
        """``key``: index, or ``(index, epoch)`` from the sampler, or ``(index, epoch, gt_size)`` when the sampler
        sets each sample's patch size (progressive stages loaded at their own size); indices >= len wrap."""
        self._key_size['gt_size'] = None
        if isinstance(key, (tuple, list)):
            index, epoch = int(key[0]), int(key[1])
            if len(key) > 2:
                self._key_size['gt_size'] = int(key[2])
        else:
            index, epoch = int(key), int(self._state[_EPOCH])
        n = len(self)
        if self.skip_bad and self.phase != 'train':  # never score a replacement: report the sample skipped
            try:
                return self.load_sample(index % n, self.sample_rng(index, epoch))
            except (ImageReadError, DataError) as exc:
                logger.warning('%s: skip_bad: skipping sample %d (%s)', self.owner, index % n, exc)
                return {'skipped': str(exc), 'name': self.sample_name(index % n)}
        first_error: Optional[Exception] = None
        for attempt in range(min(n, _MAX_BAD_IN_A_ROW) if self.skip_bad else 1):
            i = index + attempt
            try:
                return self.load_sample(i % n, self.sample_rng(i, epoch))
            except (ImageReadError, DataError) as exc:
                if not self.skip_bad:
                    raise
                first_error = first_error or exc
                logger.warning('%s: skip_bad: skipping sample %d (%s); using sample %d instead',
                               self.owner, i % n, exc, (i + 1) % n)
        raise DataError(f'{self.owner}: skip_bad gave up after {min(n, _MAX_BAD_IN_A_ROW)} bad samples in a row '
                        f'starting at index {index % n}; first error: {first_error}')


def _saturation_option(value: Any, owner: str) -> Optional[Dict[str, float]]:
    """``saturation_jitter: {prob, max_change}`` checked, or None when not set."""
    if value is None:
        return None
    if not (isinstance(value, dict) and set(value) == {'prob', 'max_change'}
            and all(isinstance(v, (int, float)) for v in value.values())
            and 0 <= value['prob'] <= 1 and value['max_change'] >= 0):
        raise DataError(f"{owner}: option 'saturation_jitter' must be {{prob: p in [0, 1], max_change: m >= 0}} "
                        f'(MPRNet deblurring: prob 0.3333333333333333, max_change 0.2), got {value!r}')
    return {'prob': float(value['prob']), 'max_change': float(value['max_change'])}
