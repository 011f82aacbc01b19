"""Arrange the bundled denoising model's data under datasets/ from the shared benchmark images.

    python scripts/prepare_denoise_data.py [--shared ../shared/data] [--out datasets]

Writes:
    datasets/denoise/train/   Kodak24 + McMaster + Set14/HR as RGB PNG (lossless; Set14's gray 'bridge'
                              becomes 3 channels), named <set>_<name>.png
    datasets/denoise/CBSD68/  the 68 clean CBSD68 test images (byte-for-byte copies)
    datasets/denoise/Set5/    Set5 HR (byte-for-byte copies), a small validation set for training runs
    datasets/samples/         a few small demo pairs: <name>_clean.png (centre crop of a CBSD68 image) and
                              <name>_noisy.png (sigma 25 Gaussian noise, fixed seed, clipped, 8-bit)
Running it twice gives identical files.
"""
from __future__ import annotations

import shutil
import sys
import zlib
from pathlib import Path
from typing import List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.data.data_util import scan_images, stem  # noqa: E402
from basicsr.data.degradations import GaussianNoise  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.img_util import read_image, write_image  # noqa: E402

TRAIN_SETS = (('kodak24', 'Kodak24'), ('mcmaster', 'McMaster'), ('set14', 'Set14/HR'))
TEST_SET = 'CBSD68'
VAL_SET = ('Set5', 'Set5/HR')  # five images: quick validation during training (not a training image)
SAMPLES = ('101085', '119082', '163085', '253027')  # CBSD68 images with texture, edges and smooth areas
SAMPLE_SIZE = 256
SAMPLE_SIGMA = 25
SAMPLE_SEED = 2024


def _folder(shared: Path, rel: str) -> Path:
    folder = shared / rel
    if not folder.is_dir():
        raise SystemExit(f"error: '{folder}' is missing; pass --shared DIR pointing at the benchmark data folder")
    return folder


def prepare_train(shared: Path, out: Path) -> int:
    dst = out / 'denoise' / 'train'
    count = 0
    for prefix, rel in TRAIN_SETS:
        src = _folder(shared, rel)
        for name in scan_images(src):
            img = read_image(src / name, channels=3, float32=False)
            write_image(dst / f"{prefix}_{stem(name).replace('/', '_')}.png", img)
            count += 1
    return count


def copy_set(shared: Path, rel: str, dst: Path) -> int:
    """Byte-for-byte copy of the images of ``shared/rel`` into ``dst``."""
    src = _folder(shared, rel)
    dst.mkdir(parents=True, exist_ok=True)
    names = scan_images(src)
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, dst / name)
    return len(names)


def prepare_samples(shared: Path, out: Path) -> List[Path]:
    """Centre crops (at most SAMPLE_SIZE px a side) of a few CBSD68 images and their noisy versions."""
    src, dst = _folder(shared, TEST_SET), out / 'samples'
    noise = GaussianNoise(sigma=SAMPLE_SIGMA, quantize='round')
    written = []
    for name in SAMPLES:
        clean = read_image(src / f'{name}.png', channels=3, float32=False)
        h, w = clean.shape[:2]
        ch, cw = min(h, SAMPLE_SIZE), min(w, SAMPLE_SIZE)
        top, left = (h - ch) // 2, (w - cw) // 2
        clean = clean[top:top + ch, left:left + cw]
        rng = np.random.default_rng([SAMPLE_SEED, zlib.crc32(name.encode())])
        noisy = noise(clean.astype(np.float32) / 255.0, rng)
        for suffix, img in (('clean', clean), ('noisy', noisy)):
            path = dst / f'{name}_{suffix}.png'
            write_image(path, img)
            written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--shared', type=Path, default=ROOT.parent / 'shared' / 'data',
                        help='folder holding Kodak24/, McMaster/, Set14/, CBSD68/ (default: ../shared/data)')
    parser.add_argument('--out', type=Path, default=ROOT / 'datasets', help='datasets folder (default: datasets/)')
    parser.add_argument('--no-samples', action='store_true', help='leave datasets/samples/ untouched')
    args = parser.parse_args(argv)
    n_train = prepare_train(args.shared, args.out)
    n_test = copy_set(args.shared, TEST_SET, args.out / 'denoise' / TEST_SET)
    n_val = copy_set(args.shared, VAL_SET[1], args.out / 'denoise' / VAL_SET[0])
    print(f"train: {n_train} images in {args.out / 'denoise' / 'train'}")
    print(f"val:   {n_val} images in {args.out / 'denoise' / VAL_SET[0]}")
    print(f"test:  {n_test} images in {args.out / 'denoise' / TEST_SET}")
    if not args.no_samples:
        samples = prepare_samples(args.shared, args.out)
        print(f"samples: {len(samples)} files in {args.out / 'samples'}")
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
