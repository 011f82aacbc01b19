"""Report unpaired and size-mismatched images in a GT folder and an LQ folder (exit status 1 on problems).

    python scripts/check_pairs.py datasets/Rain100H/target datasets/Rain100H/input
    python scripts/check_pairs.py datasets/Set14/HR datasets/Set14/LR_bicubic/X4 --scale 4 --filename-tmpl '{}x4'

Pairs are matched the way PairedImageDataset matches them (LQ stem = filename_tmpl applied to the GT stem);
every pair is decoded, so corrupt or truncated files are reported too.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.data.data_util import pair_names, preview, scan_images, unpaired_message  # noqa: E402
from basicsr.data.transforms import gt_fits_lq  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.img_util import ImageReadError, read_image  # noqa: E402


def check_pairs(gt_dir: Path, lq_dir: Path, scale: int = 1, tmpl: str = '{}') -> List[str]:
    """Problems found, one human-readable line each (empty list: every file is paired and sized right)."""
    gt_names, lq_names = scan_images(gt_dir), scan_images(lq_dir)
    problems: List[str] = []
    if not gt_names or not lq_names:
        empty = [str(d) for d, n in ((gt_dir, gt_names), (lq_dir, lq_names)) if not n]
        return [f"no images in {' and '.join(empty)}"]
    pairs, gt_only, lq_only = pair_names(gt_names, lq_names, tmpl)
    if gt_only or lq_only:
        problems.append(unpaired_message('unpaired', f"GT '{gt_dir}'", f"LQ '{lq_dir}'", tmpl, gt_only, lq_only))
    mismatched = []
    for gt_name, lq_name in pairs:
        try:
            gt = read_image(gt_dir / gt_name, channels=None, float32=False)
            lq = read_image(lq_dir / lq_name, channels=None, float32=False)
        except ImageReadError as exc:
            problems.append(f'unreadable: {exc}')
            continue
        (hg, wg), (hl, wl) = gt.shape[:2], lq.shape[:2]
        if not gt_fits_lq((hg, wg), (hl, wl), scale):
            mismatched.append(f'{gt_name} {hg}x{wg} vs {lq_name} {hl}x{wl}')
    if mismatched:
        problems.append(f'{len(mismatched)} size mismatch(es) (HxW, scale {scale}): {preview(mismatched, 10)}')
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('gt_dir', type=Path, help='folder of ground-truth images')
    parser.add_argument('lq_dir', type=Path, help='folder of degraded images')
    parser.add_argument('--scale', type=int, default=1, help='GT size / LQ size (default 1)')
    parser.add_argument('--filename-tmpl', default='{}', help="LQ name stem from the GT stem, e.g. '{}x4'")
    args = parser.parse_args(argv)
    for d in (args.gt_dir, args.lq_dir):
        if not d.is_dir():
            print(f"error: '{d}' is not a folder", file=sys.stderr)
            return 2
    problems = check_pairs(args.gt_dir, args.lq_dir, args.scale, args.filename_tmpl)
    if problems:
        for p in problems:
            print(f'PROBLEM: {p}')
        return 1
    print(f"OK: every image in '{args.gt_dir}' has an LQ partner of the right size in '{args.lq_dir}'")
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
