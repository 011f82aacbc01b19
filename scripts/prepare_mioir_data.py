"""Synthesise MiOIR's degraded copies of clean images offline, then cut both into overlapping sub-images.

    python scripts/prepare_mioir_data.py --gt DF2K_HR --out datasets/MiOIR/train [--tasks blur noise ...]
        [--split train|ood] [--depth-dir depth/] [--seed 0] [--sub-size 300 --step 150 --min-rest 48 | --no-sub]

MiOIR degrades the *full* images (so rain streaks are normalised over the whole image and haze reads each
image's depth map by name), then cuts every folder into sub-images (``gen_sub.py``). This script does the
same with the toolbox's degradations (``basicsr/data/mioir_degradations.py``)::

    <out>/GT/<stem>.png, <out>/<task>/<stem>.png              full images (degraded copies keep the GT size)
    <out>/GT_sub<S>/<stem>_sNNN.png, <out>/<task>_sub<S>/...  sub-images, S x S, step ``--step``; a last row /
                                                              column at the border is added when more than
                                                              ``--min-rest`` pixels would be left out

Each (image, task) pair draws its parameters from its own generator seeded by ``(seed, task id, image index)``,
so a rerun, or a run with other tasks, gives the same files. Train on the result with paired folders, e.g. a
``MultiTaskDataset`` whose tasks are ``PairedImageDataset`` blocks ``dataroot_gt: <out>/GT_sub300``,
``dataroot_lq: <out>/<task>_sub300``, ``filename_tmpl: '{}'`` and ``label`` = the MiOIR task id.
Haze needs ``--depth-dir`` (MiOIR's per-image depth maps, ``<stem>.npy|.png|.mat``); no depth estimator
ships here.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.archs.prompt_blocks import MIOIR_TASKS  # noqa: E402
from basicsr.data.mioir_degradations import mioir_degradation  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.img_util import read_image, write_image  # noqa: E402
from basicsr.utils.registry import DEGRADATION_REGISTRY  # noqa: E402

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def sub_positions(size: int, crop: int, step: int, min_rest: int) -> List[int]:
    """Start offsets along one axis: every ``step`` while a full crop fits, plus one flush with the far border
    when more than ``min_rest`` pixels would otherwise be left out (MiOIR's ``gen_sub.py`` rule)."""
    if size < crop:
        return []
    starts = list(range(0, size - crop + 1, step))
    if size - (starts[-1] + crop) > min_rest:
        starts.append(size - crop)
    return starts


def cut_sub_images(img: np.ndarray, crop: int, step: int, min_rest: int) -> List[np.ndarray]:
    """Sub-images of an (H, W, C) image in row-major order (see :func:`sub_positions`)."""
    h, w = img.shape[:2]
    return [img[y:y + crop, x:x + crop] for y in sub_positions(h, crop, step, min_rest)
            for x in sub_positions(w, crop, step, min_rest)]


def _degrader(task: str, split: str, depth_dir: Optional[Path]):
    block = mioir_degradation(task, split)
    if block['type'] == 'Haze':
        if depth_dir is None:
            raise SystemExit('error: the haze task needs --depth-dir (MiOIR per-image depth maps); leave haze out '
                             'of --tasks otherwise')
        block['depth_dir'] = str(depth_dir)
    return DEGRADATION_REGISTRY.build(block), block['type'] == 'Haze'


def prepare(gt_dir: Path, out: Path, tasks: Sequence[str], split: str = 'train', depth_dir: Optional[Path] = None,
            seed: int = 0, sub_size: Optional[int] = 300, step: int = 150, min_rest: int = 48) -> Dict[str, int]:
    """Write the layout of the module docstring; returns the number of sub-images (or images) per folder."""
    paths = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if gt_dir.is_dir() else []
    if not paths:
        raise SystemExit(f"error: no images in '{gt_dir}' (expected {', '.join(IMAGE_SUFFIXES)})")
    degraders = {t: _degrader(t, split, depth_dir) for t in tasks}
    counts: Dict[str, int] = {}
    for index, path in enumerate(tqdm(paths, desc='MiOIR synthesis', unit='img')):
        clean = read_image(path)  # (H, W, 3) float32 RGB in [0, 1]; names the file when unreadable
        outputs = {'GT': clean}
        for task, (deg, needs_name) in degraders.items():
            rng = np.random.default_rng([seed, MIOIR_TASKS.index(task), index])
            outputs[task] = deg(clean, rng, name=path.stem) if needs_name else deg(clean, rng)
        for folder, img in outputs.items():
            write_image(out / folder / f'{path.stem}.png', img)
            if sub_size:
                subs = cut_sub_images(img, sub_size, step, min_rest)
                for k, sub in enumerate(subs, start=1):
                    write_image(out / f'{folder}_sub{sub_size}' / f'{path.stem}_s{k:03d}.png', sub)
                counts[folder] = counts.get(folder, 0) + len(subs)
            else:
                counts[folder] = counts.get(folder, 0) + 1
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gt', type=Path, required=True, help='folder of clean (high-quality) images')
    parser.add_argument('--out', type=Path, required=True, help='output root')
    parser.add_argument('--tasks', nargs='+', default=[t for t in MIOIR_TASKS if t != 'haze'], choices=MIOIR_TASKS,
                        help='tasks to synthesise (default: all but haze, which needs --depth-dir)')
    parser.add_argument('--split', default='train', choices=['train', 'ood'],
                        help="'train': MiOIR's in-distribution ranges; 'ood': its out-of-distribution test ranges")
    parser.add_argument('--depth-dir', type=Path, default=None, help='per-image depth maps for haze')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sub-size', type=int, default=300, help='sub-image size (MiOIR: 300)')
    parser.add_argument('--step', type=int, default=150, help='sub-image step (MiOIR: 150)')
    parser.add_argument('--min-rest', type=int, default=48, help='add a border row/column if more is left out')
    parser.add_argument('--no-sub', action='store_true', help='only the full images')
    args = parser.parse_args(argv)
    counts = prepare(args.gt, args.out, args.tasks, args.split, args.depth_dir, args.seed,
                     None if args.no_sub else args.sub_size, args.step, args.min_rest)
    for folder, n in counts.items():
        print(f'{folder}: {n} {"images" if args.no_sub else "sub-images"}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
