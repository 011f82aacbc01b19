"""BasicSR's ``RealESRGANDataset``: HR images plus the random blur kernels of Real-ESRGAN's second-order
degradation (the degradation itself runs batched in :class:`basicsr.models.realesrgan_model.RealESRGANModel`).

Each item: ``gt`` (flipped/rotated, reflect-padded or randomly cropped to ``crop_pad_size``, default 400),
``kernel1`` and ``kernel2`` (21x21: a sinc kernel with probability ``sinc_prob``/``sinc_prob2``, else
``random_mixed_kernels`` of a random odd size 7..21, zero-padded), ``sinc_kernel`` (the final sinc filter with
probability ``final_sinc_prob``, else a unit pulse) and ``gt_path``. Draws use the global ``random``/numpy RNGs in
BasicSR's order; the trainer seeds them per sample. Registered as ``RealESRGANDataset_basicsr`` (found by the
plain name unless a plug-in defines its own). Images come from ``dataroot_gt`` (listed by ``meta_info`` when
given) or an LMDB folder (``io_backend: {type: lmdb}``).
"""
from __future__ import annotations

import math
import os
import random
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np
import torch
from torch.utils import data

from basicsr.data.data_util import paths_from_folder, paths_from_lmdb, read_meta_info
from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels
from basicsr.data.transforms import augment
from basicsr.utils.file_client import FileClient
from basicsr.utils.img_bgr import imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

KERNEL_SIZES = [2 * v + 1 for v in range(3, 11)]  # 7 .. 21
MAX_KERNEL = 21


def random_blur_kernel(sinc_prob: float, kernel_list: Sequence[str], kernel_prob: Sequence[float],
                       blur_sigma: Sequence[float], betag_range: Sequence[float],
                       betap_range: Sequence[float]) -> np.ndarray:
    """One 21x21 kernel of a random odd size: a sinc low-pass (cut-off from pi/3 or pi/5 to pi) with probability
    ``sinc_prob``, else a mixed Gaussian/generalized/plateau kernel."""
    size = random.choice(KERNEL_SIZES)
    if np.random.uniform() < sinc_prob:
        omega = np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
        kernel = circular_lowpass_kernel(omega, size, pad_to=False)
    else:
        kernel = random_mixed_kernels(kernel_list, kernel_prob, size, blur_sigma, blur_sigma, [-math.pi, math.pi],
                                      betag_range, betap_range, noise_range=None)
    pad = (MAX_KERNEL - size) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad)))


@DATASET_REGISTRY.register(suffix='basicsr')
class RealESRGANDataset(data.Dataset):
    """Option keys: dataroot_gt, meta_info, io_backend, use_hflip, use_rot, crop_pad_size, blur_kernel_size,
    kernel_list, kernel_prob, blur_sigma, betag_range, betap_range, sinc_prob and the same with a ``2`` suffix,
    final_sinc_prob."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        root = opt['dataroot_gt']
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt.update(db_paths=[root], client_keys=['gt'])
            self.paths: List[str] = paths_from_lmdb(root)
        elif opt.get('meta_info'):
            self.paths = [os.path.join(root, n) for n in read_meta_info(opt['meta_info'], 'meta_info')]
        else:
            self.paths = sorted(paths_from_folder(root))
        self.pulse = torch.zeros(MAX_KERNEL, MAX_KERNEL)
        self.pulse[MAX_KERNEL // 2, MAX_KERNEL // 2] = 1

    def _kernel(self, suffix: str) -> np.ndarray:
        o = self.opt
        return random_blur_kernel(o[f'sinc_prob{suffix}'], o[f'kernel_list{suffix}'], o[f'kernel_prob{suffix}'],
                                  o[f'blur_sigma{suffix}'], o[f'betag_range{suffix}'], o[f'betap_range{suffix}'])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if self.file_client is None:
            opt = dict(self.io_backend_opt)
            self.file_client = FileClient(opt.pop('type'), **opt)
        gt_path = self.paths[index]
        img = augment(imfrombytes(self.file_client.get(gt_path, 'gt'), float32=True), self.opt['use_hflip'],
                      self.opt['use_rot'])
        size = int(self.opt.get('crop_pad_size', 400))
        h, w = img.shape[:2]
        if h < size or w < size:
            img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        if img.shape[0] > size or img.shape[1] > size:
            top = random.randint(0, img.shape[0] - size)
            left = random.randint(0, img.shape[1] - size)
            img = img[top:top + size, left:left + size]
        kernel1, kernel2 = self._kernel(''), self._kernel('2')
        if np.random.uniform() < self.opt['final_sinc_prob']:
            sinc = torch.FloatTensor(circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi),
                                                             random.choice(KERNEL_SIZES), pad_to=MAX_KERNEL))
        else:
            sinc = self.pulse
        return {'gt': img2tensor([img], bgr2rgb=True, float32=True)[0], 'kernel1': torch.FloatTensor(kernel1),
                'kernel2': torch.FloatTensor(kernel2), 'sinc_kernel': sinc, 'gt_path': gt_path}

    def __len__(self) -> int:
        return len(self.paths)
