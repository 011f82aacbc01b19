"""Restormer's dual-pixel defocus deblurring data: left and right dual-pixel views (16-bit PNGs) -> sharp image.

The network input stacks the two views into 6 channels (left RGB, then right RGB), as Restormer's
``Dataset_DefocusDeblur_DualPixel_16bit``; the target is the 3-channel all-in-focus image.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, pair_names, unpaired_message
from basicsr.data.image_source import ImageSource
from basicsr.utils.img_util import img2tensor
from basicsr.utils.options import Key
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class Dataset_DefocusDeblur_DualPixel_16bit(RestorationDataset):  # noqa: N801 - Restormer's type name
    """DPDD triplets: ``dataroot_lqL`` / ``dataroot_lqR`` (the two views) and ``dataroot_gt``, same file names
    (``filename_tmpl`` maps GT stems to view stems). Images of any bit depth are scaled to [0, 1] (16-bit / 65535).

    Training: mirror-padding to ``gt_size``, one random crop for all three, ``geometric_augs`` (the 8
    flips/rotations, uniform, as Restormer's ``random_augmentation``).
    Sample: ``{'lq': (6, H, W), 'gt': (3, H, W), 'lq_path': left view, 'gt_path'}``.
    """

    option_keys = {'dataroot_lqL': Key(str, path=True), 'dataroot_lqR': Key(str, path=True)}

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        if self.phase == 'train':
            self.pad_to_gt_size = True
        self.tmpl = opt.get('filename_tmpl') or '{}'
        self.gt_source = ImageSource(opt.get('dataroot_gt'), 'disk', 'dataroot_gt', self.owner)
        self.views = [ImageSource(opt.get(k), 'disk', k, self.owner) for k in ('dataroot_lqL', 'dataroot_lqR')]
        pairs, gt_only, lq_only = pair_names(self.gt_source.names, self.views[0].names, self.tmpl)
        right = set(self.views[1].names)
        no_right = [lq for _, lq in pairs if lq not in right]
        if gt_only or lq_only or no_right:
            if no_right:
                raise DataError(f"{self.owner}: {len(no_right)} left view(s) have no right view in "
                                f"{self.views[1].describe()}: {', '.join(no_right[:5])}")
            raise DataError(unpaired_message(self.owner, self.gt_source.describe(), self.views[0].describe(),
                                             self.tmpl, gt_only, lq_only))
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def sample_name(self, index: int) -> str:
        return self.pairs[index][1]

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        gt_name, lq_name = self.pairs[index]
        gt_path, lq_path = self.gt_source.path(gt_name), self.views[0].path(lq_name)
        gt = self.read(self.gt_source, gt_name)
        left, right = (self.read(v, lq_name) for v in self.views)
        if left.shape != right.shape or left.dtype != right.dtype:
            raise DataError(f"{self.owner}: the views of '{lq_name}' differ ({left.shape} {left.dtype} vs "
                            f'{right.shape} {right.dtype})')
        lq = np.concatenate([self.finalize(left, lq_path), self.finalize(right, self.views[1].path(lq_name))], -1)
        gt, lq = self.prepare_pair(self.finalize(gt, gt_path), lq, gt_path, lq_path, rng)
        return {'lq': img2tensor(lq), 'gt': img2tensor(gt), 'lq_path': lq_path, 'gt_path': gt_path}
