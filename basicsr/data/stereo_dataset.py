"""NAFSSR's stereo pairs: left and right views stacked into 6 channels (L RGB | R RGB).

Layout (NAFNet's ``PairedStereoImageDataset``): ``dataroot_gt`` holds one folder per scene with ``hr0.png``
(left) and ``hr1.png`` (right), ``dataroot_lq`` the same scene folders with ``lr0.png`` / ``lr1.png`` (both keys
may name the same folder, as the official training patches do). Scenes pair by folder name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, preview, require_dir
from basicsr.utils.img_util import img2tensor, read_image
from basicsr.utils.options import Key
from basicsr.utils.registry import DATASET_REGISTRY

# flip_RGB: one of the 6 permutations of the colour channels, applied to both views alike
_RGB_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


@DATASET_REGISTRY.register()
class PairedStereoImageDataset(RestorationDataset):
    """Stereo LQ/GT pairs as 6-channel images (left RGB, then right RGB), float in [0, 1].

    Training options (NAFSSR keys): ``gt_size_h`` / ``gt_size_w`` (GT patch, else ``gt_size`` square),
    ``use_hflip`` (mirror, which swaps the views), ``use_vflip``, ``use_rot`` (transpose; NAFNet flips vertically
    when ``use_vflip`` or ``use_rot``), ``flip_RGB`` (random colour-channel permutation). Each with
    probability 1/2, as NAFNet's ``augment``.
    Sample: ``{'lq': (6, h, w), 'gt': (6, H, W), 'lq_path', 'gt_path'}`` (paths: the scene folders).
    """

    option_keys = {'gt_size_h': Key(int), 'gt_size_w': Key(int), 'use_vflip': Key(bool), 'flip_RGB': Key(bool)}

    def __init__(self, opt: Dict[str, Any]) -> None:
        if opt.get('phase', 'train') == 'train' and opt.get('gt_size') is None:
            opt = {**opt, 'gt_size': int(opt.get('gt_size_h') or 0) or None}
        super().__init__(opt)
        self.gt_root = require_dir(opt.get('dataroot_gt'), 'dataroot_gt', self.owner)
        self.lq_root = require_dir(opt.get('dataroot_lq'), 'dataroot_lq', self.owner)
        self.scenes = self._scenes()
        if self.phase == 'train':
            self.patch_hw = (int(opt.get('gt_size_h') or opt['gt_size']), int(opt.get('gt_size_w') or opt['gt_size']))
            self.use_vflip = bool(opt.get('use_vflip', False)) or self.use_rot
            self.flip_rgb = bool(opt.get('flip_RGB', False))

    def _scenes(self) -> List[str]:
        scenes = sorted(p.name for p in self.gt_root.iterdir() if (p / 'hr0.png').is_file())
        if not scenes:
            raise DataError(f"{self.owner}: no scene folders with hr0.png/hr1.png in dataroot_gt '{self.gt_root}'")
        missing = [s for s in scenes if not all((self.lq_root / s / f).is_file() for f in ('lr0.png', 'lr1.png'))
                   or not (self.gt_root / s / 'hr1.png').is_file()]
        if missing:
            raise DataError(f'{self.owner}: {len(missing)} scene(s) lack hr1.png in dataroot_gt or lr0.png/lr1.png in '
                            f"dataroot_lq '{self.lq_root}': {preview(missing)}")
        return scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def sample_name(self, index: int) -> str:
        return self.scenes[index]

    def _views(self, root: Path, scene: str, prefix: str) -> np.ndarray:
        return np.concatenate([read_image(root / scene / f'{prefix}{i}.png') for i in (0, 1)], axis=-1)

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        scene = self.scenes[index]
        gt, lq = self._views(self.gt_root, scene, 'hr'), self._views(self.lq_root, scene, 'lr')
        if self.phase == 'train':
            gt, lq = self._augment(gt, lq, rng, str(self.gt_root / scene))
        return {'lq': img2tensor(np.ascontiguousarray(lq)), 'gt': img2tensor(np.ascontiguousarray(gt)),
                'lq_path': str(self.lq_root / scene), 'gt_path': str(self.gt_root / scene)}

    def _augment(self, gt: np.ndarray, lq: np.ndarray, rng: np.random.Generator,
                 where: str) -> Tuple[np.ndarray, np.ndarray]:
        if self.flip_rgb:
            perm = list(_RGB_PERMUTATIONS[int(rng.integers(0, 6))])
            order = perm + [c + 3 for c in perm]
            gt, lq = gt[..., order], lq[..., order]
        gt, lq = stereo_random_crop(gt, lq, self.patch_hw, self.scale, rng, where)
        hflip = self.use_hflip and rng.random() < 0.5
        vflip = self.use_vflip and rng.random() < 0.5
        transpose = self.use_rot and rng.random() < 0.5
        out = []
        for img in (gt, lq):
            if hflip:  # mirrored, the left view becomes the right one
                img = img[:, ::-1][..., [3, 4, 5, 0, 1, 2]]
            if vflip:
                img = img[::-1]
            if transpose:
                img = img.transpose(1, 0, 2)
            out.append(img)
        return out[0], out[1]


def stereo_random_crop(gt: np.ndarray, lq: np.ndarray, patch_hw: Tuple[int, int], scale: int,
                       rng: np.random.Generator, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """Aligned ``patch_hw`` (GT) / ``patch_hw // scale`` (LQ) crops at one random position."""
    ph, pw = patch_hw[0] // scale, patch_hw[1] // scale
    h, w = lq.shape[:2]
    if patch_hw[0] % scale or patch_hw[1] % scale:
        raise DataError(f'{where}: gt_size_h/gt_size_w {patch_hw} must be multiples of scale {scale}')
    if gt.shape[:2] != (h * scale, w * scale):
        raise DataError(f'{where}: GT is {gt.shape[0]}x{gt.shape[1]}, LQ {h}x{w}; with scale {scale} the GT must be '
                        f'{h * scale}x{w * scale}')
    if h < ph or w < pw:
        raise DataError(f'{where}: LQ {h}x{w} is smaller than the patch {ph}x{pw} (gt_size_h/gt_size_w // scale)')
    top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    return (gt[top * scale:(top + ph) * scale, left * scale:(left + pw) * scale],
            lq[top:top + ph, left:left + pw])
