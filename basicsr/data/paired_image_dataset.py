"""Paired LQ/GT images from folders, a meta-info file or LMDB databases."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, pair_names, unpaired_message
from basicsr.data.image_source import ImageSource, backend_type
from basicsr.utils.img_util import img2tensor
from basicsr.utils.options import Key
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register(name='Dataset_PairedImage')
@DATASET_REGISTRY.register()
class PairedImageDataset(RestorationDataset):
    """LQ/GT pairs for training and validation (``Dataset_PairedImage`` is Restormer's name for it).

    Options (BasicSR keys):
        dataroot_gt, dataroot_lq: folders, or ``.lmdb`` folders with ``io_backend: {type: lmdb}``.
        meta_info_file: optional (disk): the GT names to use, one per line (BasicSR format).
        filename_tmpl: LQ name stem from the GT stem, default '{}' (e.g. '{}x4' for ``babyx4.png``).
        io_backend: {type: disk | lmdb}.
        phase: 'train' -> random ``gt_size`` crop (+ ``use_hflip``/``use_flip``, ``use_rot``,
            ``geometric_augs``); otherwise the whole image.
        scale: GT size / LQ size (GT may exceed ``scale * LQ`` by less than ``scale``; it is cropped).
        in_ch: 3 (RGB) or 1 (gray); color: 'rgb' or 'y' (BT.601 luma). skip_bad: see RestorationDataset.

    Every pair is checked at construction: missing partners are an error listing them (with ``skip_bad``
    they are left out and listed in ``excluded``).
    Sample: ``{'lq': (C, h, w), 'gt': (C, H, W)`` float tensors in [0, 1], ``'lq_path', 'gt_path'}``.
    """

    option_keys = {'task_from_name': Key(str, choices=['mioir'], doc="'mioir': add the sample's task id from MiOIR's "
                                         'file-name suffix (_r., _h., ...), for explicit-prompt networks')}
    required_option_keys = {'dataroot_gt': 'a folder of ground-truth images', 'dataroot_lq': 'a folder of degraded '
                            'images'}

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        backend = backend_type(opt, self.owner)
        self.tmpl = opt.get('filename_tmpl') or '{}'
        meta = opt.get('meta_info_file') if backend == 'disk' else None
        self.gt_source = ImageSource(opt.get('dataroot_gt'), backend, 'dataroot_gt', self.owner, meta)
        self.lq_source = ImageSource(opt.get('dataroot_lq'), backend, 'dataroot_lq', self.owner)
        pairs, gt_only, lq_only = pair_names(self.gt_source.names, self.lq_source.names, self.tmpl)
        if meta:
            lq_only = []  # the meta-info file selects a subset of the LQ folder on purpose
        if (gt_only or lq_only) and not self.skip_bad:
            raise DataError(unpaired_message(self.owner, self.gt_source.describe(), self.lq_source.describe(),
                                             self.tmpl, gt_only, lq_only))
        self.exclude(lq_only, f'LQ without a GT partner in {self.gt_source.describe()}')
        self.exclude(gt_only, f'GT without an LQ partner in {self.lq_source.describe()}')
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def sample_name(self, index: int) -> str:
        return self.pairs[index][1]

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        gt_name, lq_name = self.pairs[index]
        gt_path, lq_path = self.gt_source.path(gt_name), self.lq_source.path(lq_name)
        gt = self.read(self.gt_source, gt_name)
        lq = self.read(self.lq_source, lq_name)
        gt, lq = self.prepare_pair(gt, lq, gt_path, lq_path, rng)
        gt, lq = self.finalize(gt, gt_path), self.finalize(lq, lq_path)
        out = {'lq': img2tensor(lq), 'gt': img2tensor(gt), 'lq_path': lq_path, 'gt_path': gt_path}
        if self.opt.get('task_from_name') == 'mioir':
            from basicsr.data.mioir_list_dataset import mioir_task_of_suffix
            out['task'] = mioir_task_of_suffix(lq_name)
        return out


@DATASET_REGISTRY.register()
class PairedImageDataset_SIDD(PairedImageDataset):  # noqa: N801 - HINet's type name
    """HINet's SIDD pairs: :class:`PairedImageDataset` whose training pairs are mirror-padded to ``gt_size`` and
    augmented as HINet's ``random_augmentation`` whatever ``use_flip`` / ``use_rot`` say: unchanged with
    probability 1/2, else one of the 7 other flips/rotations (``aug_identity_weight: 7``). HINet reports a
    training length of 320,000 per epoch; here an epoch is the folder once (iteration counts are unaffected)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        if self.phase == 'train':
            self.pad_to_gt_size = True
            self.use_hflip = self.use_rot = True
            self.identity_weight = 7
