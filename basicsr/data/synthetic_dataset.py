"""Clean images degraded on the fly by registered degradations (Gaussian denoising and later tasks)."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, eval_noise_rng
from basicsr.data.degradations import build_degradations
from basicsr.data.image_source import ImageSource, backend_type, list_sources
from basicsr.data.transforms import augment, center_trim, pad_to_patch, paired_random_crop, saturation_jitter
from basicsr.utils.img_util import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY


def restormer_noise_option(opt: Dict[str, Any], owner: str) -> Dict[str, Any]:
    """Translate Restormer's ``sigma_type``/``sigma_range``/``sigma_test`` keys into a GaussianNoise block."""
    if opt.get('phase', 'train') != 'train':
        if opt.get('sigma_test') is None:
            raise DataError(f"{owner}: option 'sigma_test' is required outside training (or give 'degradation')")
        return {'type': 'GaussianNoise', 'sigma': opt['sigma_test']}
    kind, value = opt.get('sigma_type'), opt.get('sigma_range')
    keys = {'constant': 'sigma', 'random': 'sigma_range', 'choice': 'sigma_choices'}
    if kind not in keys or value is None:
        raise DataError(f"{owner}: give 'degradation' (e.g. {{type: GaussianNoise, sigma: 25}}) or Restormer's "
                        f"'sigma_type' (constant | random | choice) with 'sigma_range'; got sigma_type={kind!r}")
    return {'type': 'GaussianNoise', keys[kind]: value}


@DATASET_REGISTRY.register(name='Dataset_GaussianDenoising')
@DATASET_REGISTRY.register()
class SyntheticDegradationDataset(RestorationDataset):
    """GT from clean images, LQ synthesised by ``degradation`` (one block or a list applied in order).

    Options:
        dataroot_gt: a folder or a list of folders of clean images (or an LMDB with io_backend lmdb).
        meta_info_file: optional, single folder only.
        degradation: e.g. ``{type: GaussianNoise, sigma: 25}`` or ``[{...}, {...}]``. Restormer's
            ``Dataset_GaussianDenoising`` keys (``sigma_type``, ``sigma_range``, ``sigma_test``) are accepted
            instead.
        noise_seed: seed of the fixed validation/test degradations (default 0). Image ``name`` always gets
            the same degradation (seed ``[noise_seed, crc32(name without extension)]``), whatever the order
            or subset of images and in a folder or its LMDB copy, so a benchmark such as CBSD68 sigma=25 is
            reproducible.
        phase, gt_size, use_hflip/use_flip, use_rot, geometric_augs, in_ch, color, skip_bad: as
            PairedImageDataset.

    In training the degradation is drawn from the per-sample generator after crop and flips.
    Sample: ``{'lq', 'gt'`` (C, H, W) float tensors, ``'lq_path', 'gt_path'}`` (both paths name the clean file).
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        if opt.get('dataroot_lq') not in (None, 'none', 'None'):
            raise DataError(f"{self.owner}: option 'dataroot_lq' must be unset or 'none': the LQ images are "
                            'synthesised from dataroot_gt (use PairedImageDataset for stored pairs)')
        backend = backend_type(opt, self.owner)
        meta = opt.get('meta_info_file') if backend == 'disk' else None
        self.sources: List[ImageSource] = list_sources(opt.get('dataroot_gt'), backend, 'dataroot_gt', self.owner,
                                                       meta)
        self.items: List[Tuple[int, str]] = [(s, n) for s, src in enumerate(self.sources) for n in src.names]
        deg_opt = opt.get('degradation')
        if deg_opt is None:
            deg_opt = restormer_noise_option(opt, self.owner)
        self.degrade = build_degradations(deg_opt, 'degradation')
        self.noise_seed = int(opt.get('noise_seed', 0))

    def __len__(self) -> int:
        return len(self.items)

    def eval_rng(self, name: str) -> np.random.Generator:
        """Fixed generator of image ``name`` for validation and test."""
        return eval_noise_rng(self.noise_seed, name)

    def sample_name(self, index: int) -> str:
        return self.items[index][1]

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        src_idx, name = self.items[index]
        source = self.sources[src_idx]
        path = source.path(name)
        gt = self.read(source, name)
        if self.phase == 'train':
            try:
                if self.trim_to_multiple:
                    gt = center_trim([gt], self.trim_to_multiple)[0]
                if self.pad_to_gt_size:
                    gt, _ = pad_to_patch(gt, gt, self.gt_size, 1, self.pad_mode)
                # one image on both sides: a plain random crop that shares the paired crop's checks
                gt, _ = paired_random_crop(gt, gt, self.gt_size, 1, path, rng)
            except ValueError as exc:
                raise DataError(str(exc)) from None
            gt = augment(gt, self.use_hflip, self.use_rot, rng, identity_weight=self.identity_weight)
            if self.saturation_jitter:
                gt = saturation_jitter([gt], rng, **self.saturation_jitter)[0]
        else:
            rng = self.eval_rng(name)
        gt = self.finalize(gt, path)
        lq = self.degrade(gt, rng)
        return {'lq': img2tensor(lq), 'gt': img2tensor(gt), 'lq_path': path, 'gt_path': path}
