"""Small image fixtures for the tests/test_data_*.py files (generated images; the shared data locator)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def shared_data(sub: str = '') -> Path:
    """A folder of ../shared/data, or pytest.skip when it is absent."""
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f'{path} is not present')
    return path


def random_image(h: int, w: int, c: int = 3, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """Random HWC RGB image (uint8 or uint16) with some structure so crops differ."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    img = rng.integers(0, top + 1, size=(h, w, c), dtype=np.int64)
    return img.astype(dtype)


def save(path: Path, img: np.ndarray) -> Path:
    """Write an RGB/gray array with OpenCV (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = img[:, :, ::-1] if img.ndim == 3 and img.shape[2] == 3 else img
    assert cv2.imwrite(str(path), np.ascontiguousarray(out))
    return path


def make_pair_folders(root: Path, names, gt_hw=(32, 40), scale: int = 1, tmpl: str = '{}',
                      lq_ext: str = '.png', seed: int = 0, bad_size: Optional[str] = None):
    """GT/LQ folders where LQ = GT subsampled by ``scale``; returns (gt_dir, lq_dir)."""
    gt_dir, lq_dir = root / 'gt', root / 'lq'
    for i, name in enumerate(names):
        gt = random_image(*gt_hw, seed=seed + i)
        h, w = gt_hw
        lq = gt[:h - h % scale:scale, :w - w % scale:scale]  # floor(HR / s), like SR benchmark folders
        if name == bad_size:
            lq = lq[:-2]
        save(gt_dir / f'{name}.png', gt)
        save(lq_dir / f'{tmpl.format(name)}{lq_ext}', lq)
    return gt_dir, lq_dir


def load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / 'scripts' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'script_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
