"""BasicSR's ``RealESRGANModel``: SRGAN training on Real-ESRGAN's second-order degradation, synthesised per batch.

``feed_data`` (training) degrades the USM-sharpened ``gt`` of a :class:`~basicsr.data.realesrgan_dataset.
RealESRGANDataset` batch twice: blur (``kernel1``), random resize (``resize_prob``/``resize_range``; area,
bilinear or bicubic), Gaussian (``gaussian_noise_prob``, ``noise_range``) or Poisson (``poisson_scale_range``)
noise, gray with ``gray_noise_prob``, JPEG (``jpeg_range``); then the same with the ``2`` options (blur with
probability ``second_blur_prob``); then, in random order, resize to ``gt / scale`` + ``sinc_kernel`` and JPEG
(``jpeg_range2``); rounds to 8 bits, crops ``gt_size`` pairs and passes them through a pool of ``queue_size``
recent pairs (shuffled when full) so a batch mixes degradations. ``l1_gt_usm``/``percep_gt_usm``/``gan_gt_usm``
choose the sharpened or plain ``gt`` per loss. Random draws follow BasicSR's order (global ``random``, numpy and
torch RNGs, which the engine's checkpoints restore); the pool is part of the checkpoint, so resumes are exact.
Registered as ``RealESRGANModel_basicsr`` (found by the plain name unless a plug-in defines its own).
"""
from __future__ import annotations

import random
from typing import Any, Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt
from basicsr.data.transforms import paired_random_crop
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import USMSharp, filter2D
from basicsr.utils.registry import MODEL_REGISTRY

MODES = ['area', 'bilinear', 'bicubic']


@MODEL_REGISTRY.register(suffix='basicsr')
class RealESRGANModel(SRGANModel):
    """SRGANModel whose training pairs are synthesised on the fly (see the module docstring)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        self.jpeger = DiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = int(opt.get('queue_size', 180))

    # ------------------------------------------------------------------ degradation
    def _resize(self, out: torch.Tensor, probs: Sequence[float], scale_range: Sequence[float],
                size: Any = None) -> torch.Tensor:
        kind = random.choices(['up', 'down', 'keep'], probs)[0]
        scale = {'up': lambda: np.random.uniform(1, scale_range[1]), 'down': lambda: np.random.uniform(scale_range[0], 1),
                 'keep': lambda: 1}[kind]()
        mode = random.choice(MODES)
        if size is None:
            return F.interpolate(out, scale_factor=scale, mode=mode)
        return F.interpolate(out, size=(int(size[0] * scale), int(size[1] * scale)), mode=mode)

    def _noise(self, out: torch.Tensor, suffix: str) -> torch.Tensor:
        o = self.opt
        gray = o[f'gray_noise_prob{suffix}']
        if np.random.uniform() < o[f'gaussian_noise_prob{suffix}']:
            return random_add_gaussian_noise_pt(out, sigma_range=o[f'noise_range{suffix}'], clip=True, rounds=False,
                                                gray_prob=gray)
        return random_add_poisson_noise_pt(out, scale_range=o[f'poisson_scale_range{suffix}'], gray_prob=gray,
                                           clip=True, rounds=False)

    def _jpeg(self, out: torch.Tensor, quality_range: Sequence[float]) -> torch.Tensor:
        quality = out.new_zeros(out.size(0)).uniform_(*quality_range)
        return self.jpeger(torch.clamp(out, 0, 1), quality=quality)

    def _final(self, out: torch.Tensor, size: Any) -> torch.Tensor:
        return filter2D(F.interpolate(out, size=size, mode=random.choice(MODES)), self.sinc_kernel)

    @torch.no_grad()
    def degrade(self, gt_usm: torch.Tensor) -> torch.Tensor:
        """Second-order degradation of (B, 3, H, W) images in [0, 1] -> LQ of size H / scale (8-bit values)."""
        o, scale = self.opt, int(self.opt['scale'])
        h, w = gt_usm.shape[2:]
        out = self._resize(filter2D(gt_usm, self.kernel1), o['resize_prob'], o['resize_range'])
        out = self._jpeg(self._noise(out, ''), o['jpeg_range'])
        if np.random.uniform() < o['second_blur_prob']:
            out = filter2D(out, self.kernel2)
        out = self._resize(out, o['resize_prob2'], o['resize_range2'], size=(h / scale, w / scale))
        out = self._noise(out, '2')
        size = (h // scale, w // scale)
        if np.random.uniform() < 0.5:
            out = self._jpeg(self._final(out, size), o['jpeg_range2'])
        else:
            out = self._final(self._jpeg(out, o['jpeg_range2']), size)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        """Keep a pool of ``queue_size`` recent pairs; once full, swap the batch with random pool entries."""
        b = self.lq.size(0)
        if not hasattr(self, 'queue_lr'):
            if self.queue_size % b:
                raise ValueError(f'queue_size {self.queue_size} must be a multiple of the batch size {b}')
            self.queue_lr = self.lq.new_zeros(self.queue_size, *self.lq.shape[1:])
            self.queue_gt = self.gt.new_zeros(self.queue_size, *self.gt.shape[1:])
            self.queue_ptr = 0
        if self.queue_ptr == self.queue_size:
            idx = torch.randperm(self.queue_size)
            self.queue_lr, self.queue_gt = self.queue_lr[idx], self.queue_gt[idx]
            lq, gt = self.queue_lr[:b].clone(), self.queue_gt[:b].clone()
            self.queue_lr[:b], self.queue_gt[:b] = self.lq.clone(), self.gt.clone()
            self.lq, self.gt = lq, gt
        else:
            self.queue_lr[self.queue_ptr:self.queue_ptr + b] = self.lq.clone()
            self.queue_gt[self.queue_ptr:self.queue_ptr + b] = self.gt.clone()
            self.queue_ptr += b

    @torch.no_grad()
    def feed_data(self, data: Dict[str, Any]) -> None:
        if not (self.is_train and self.opt.get('high_order_degradation', True)):
            self.lq = data['lq'].to(self.device)
            if 'gt' in data:
                self.gt = data['gt'].to(self.device)
                self.gt_usm = self.usm_sharpener(self.gt)
            return
        self.gt = data['gt'].to(self.device)
        self.gt_usm = self.usm_sharpener(self.gt)
        self.kernel1, self.kernel2 = data['kernel1'].to(self.device), data['kernel2'].to(self.device)
        self.sinc_kernel = data['sinc_kernel'].to(self.device)
        self.lq = self.degrade(self.gt_usm)
        (self.gt, self.gt_usm), self.lq = paired_random_crop([self.gt, self.gt_usm], self.lq, self.opt['gt_size'],
                                                             self.opt['scale'])
        self._dequeue_and_enqueue()
        self.gt_usm = self.usm_sharpener(self.gt)
        self.lq = self.lq.contiguous()

    def nondist_validation(self, dataloader: Any, current_iter: Any, tb_logger: Any, save_img: bool) -> None:
        self.is_train = False  # validation pairs come from the dataset, not from the synthesis
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.is_train = True

    # ------------------------------------------------------------------ training step
    def optimize_parameters(self, current_iter: int) -> None:
        targets = {k: (self.gt_usm if self.opt.get(f'{k}_gt_usm', True) else self.gt) for k in ('l1', 'percep', 'gan')}
        self._gan_step(current_iter, targets['l1'], targets['percep'], targets['gan'])

    # ------------------------------------------------------------------ exact resume
    def extra_state(self) -> Dict[str, Any]:
        if not hasattr(self, 'queue_lr'):
            return {}
        return {'queue_lr': self.queue_lr.cpu(), 'queue_gt': self.queue_gt.cpu(), 'queue_ptr': self.queue_ptr}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        if state:
            self.queue_lr, self.queue_gt = state['queue_lr'].to(self.device), state['queue_gt'].to(self.device)
            self.queue_ptr = int(state['queue_ptr'])
