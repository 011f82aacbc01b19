"""Helpers for the engine tests: a tiny training option file over images the test generates."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_clean_images(folder: Path, n: int = 6, size: int = 72, seed: int = 0) -> Path:
    """Smooth random colour images with edges (so denoising has structure to learn)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.random((size // 8, size // 8, 3)).astype(np.float32)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        img[:, size // 2:] = 1 - img[:, size // 2:]
        cv2.imwrite(str(folder / f'img{i:02d}.png'), (np.clip(img, 0, 1) * 255).round().astype(np.uint8))
    return folder


def tiny_options(root: Path, name: str = 'tiny', total_iter: int = 6, batch: int = 4, ckpt_freq: int = 3,
                 width: int = 8, gt_size: int = 48, val: bool = False, extra: Optional[Dict] = None) -> Path:
    """Write a tiny denoising option file under ``root`` and return its path."""
    data = make_clean_images(root / 'clean')
    opt = {
        'name': name, 'model_type': 'ImageRestorationModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 3,
        'datasets': {'train': {
            'name': 'gen', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
            'degradation': {'type': 'GaussianNoise', 'sigma': 25}, 'gt_size': gt_size, 'use_hflip': True,
            'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': 2}},
        'network_g': {'type': 'NAFNet', 'width': width, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1,
                      'dec_blk_nums': [1, 1]},
        'path': {'experiments_root': str(root / 'experiments' / name)},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'betas': [0.9, 0.9]},
                  'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': 100, 'eta_min': 1e-6},
                  'total_iter': total_iter, 'ema_decay': 0.9, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': ckpt_freq, 'use_tb_logger': False},
    }
    if val:
        opt['datasets']['val'] = {'name': 'genval', 'type': 'SyntheticDegradationDataset',
                                  'dataroot_gt': str(data), 'degradation': {'type': 'GaussianNoise', 'sigma': 25}}
        opt['val'] = {'val_freq': total_iter, 'profile': 'basicsr_rgb', 'save_img': True, 'pad_multiple': 4}
    for key, value in (extra or {}).items():
        node = opt
        *parents, last = key.split('.')
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = root / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def read_losses(exp_root: Path, key: str = 'l_pixel') -> Dict[int, float]:
    """iteration -> logged loss from ``log/losses.csv`` (all sessions of the run, last write wins)."""
    import csv
    rows: Dict[int, float] = {}
    with open(exp_root / 'log' / 'losses.csv') as fh:
        for row in csv.DictReader(fh):
            rows[int(row['iter'])] = float(row[key])
    return rows


def run_script(args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: int = 300,
               ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT), **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


PYTHON = sys.executable
