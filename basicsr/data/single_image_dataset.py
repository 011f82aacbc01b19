"""Degraded images without ground truth (inference, demo)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.image_source import ImageSource, backend_type
from basicsr.utils.img_util import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class SingleImageDataset(RestorationDataset):
    """Every image of ``dataroot_lq`` (folder, ``meta_info_file`` or LMDB), whole, in sorted order.

    Sample: ``{'lq': (C, H, W) float tensor in [0, 1], 'lq_path': str}``.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__({**opt, 'phase': opt.get('phase', 'test')})
        backend = backend_type(opt, self.owner)
        meta = opt.get('meta_info_file') if backend == 'disk' else None
        self.lq_source = ImageSource(opt.get('dataroot_lq'), backend, 'dataroot_lq', self.owner, meta)

    def __len__(self) -> int:
        return len(self.lq_source.names)

    def sample_name(self, index: int) -> str:
        return self.lq_source.names[index]

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        name = self.lq_source.names[index]
        path = self.lq_source.path(name)
        return {'lq': img2tensor(self.finalize(self.read(self.lq_source, name), path)), 'lq_path': path}
