"""Arrange a small all-in-one (denoise / derain / dehaze) training and held-out set from the shared images.

    python scripts/prepare_allinone_data.py [--shared ../shared/data] [--out datasets/allinone_small]

The files are byte-for-byte copies laid out like the official PromptIR/DSRIR training roots, with their
list files, so the small recipes exercise the same readers as the full ones::

    <out>/train/Denoise/kodimNN.png                 Kodak24 (clean; noise is synthesised while training)
    <out>/train/Derain/{rainy/rain-K.png, gt/norain-K.png}   Rain100H pairs of the train split
    <out>/train/Dehaze/{synthetic/part1/NNNN.jpg, original/NNNN.jpg}   RESIDE HSTS synthetic pairs
    <out>/lists/{denoise.txt, rainTrain.txt, hazy_outside.txt}     PromptIR id lists (paths under train/Denoise,
                                                                 train/Derain, train/Dehaze)
    <out>/lists/train_{noise,rain,haze,all_in_one}.csv    DSRIR lists: target,degraded relative to train/
    <out>/test/denoise/<id>.png                      8 CBSD68 images (clean; test noise synthesised, fixed seed)
    <out>/test/derain/{input,target}/K.png           Rain100H pairs of the held-out split
    <out>/test/dehaze/{input/NNNN_A_beta.jpg, target/NNNN.png}   SOTS outdoor (never used for training)
    <out>/split_rain100h.txt                         which Rain100H images went where

Rain100H split: the pairs sorted by number; every fifth (5, 10, 15, 20, 25) is held out, the other 20
train. Running the script twice gives identical files.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402

DEFAULT_SHARED = ROOT.parent / 'shared' / 'data'
RAIN_HOLDOUT_EVERY = 5
DENOISE_TEST_COUNT = 8


def _require(folder: Path) -> Path:
    if not folder.is_dir():
        raise SystemExit(f"error: '{folder}' is missing; pass --shared DIR pointing at the benchmark data folder")
    return folder


def _numbered(folder: Path) -> List[Path]:
    return sorted(folder.glob('*.png'), key=lambda p: int(re.sub(r'\D', '', p.stem) or 0))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def prepare(shared: Path, out: Path) -> dict:
    """Write the layout described in the module docstring; returns counts per part."""
    train, test, lists = out / 'train', out / 'test', out / 'lists'
    for sub in (train, test, lists):
        if sub.exists():
            shutil.rmtree(sub)
    # denoising: clean training images and clean held-out images
    denoise = sorted(_require(shared / 'Kodak24').glob('*.png'))
    for p in denoise:
        _copy(p, train / 'Denoise' / p.name)
    cbsd = sorted(_require(shared / 'CBSD68').glob('*.png'))[:DENOISE_TEST_COUNT]
    for p in cbsd:
        _copy(p, test / 'denoise' / p.name)
    # deraining: Rain100H split
    rain_in, rain_gt = _require(shared / 'Rain100H' / 'input'), _require(shared / 'Rain100H' / 'target')
    rain_train, rain_test = [], []
    for i, p in enumerate(_numbered(rain_in), 1):
        k = p.stem
        if i % RAIN_HOLDOUT_EVERY == 0:
            _copy(p, test / 'derain' / 'input' / p.name)
            _copy(rain_gt / p.name, test / 'derain' / 'target' / p.name)
            rain_test.append(k)
        else:
            _copy(p, train / 'Derain' / 'rainy' / f'rain-{k}.png')
            _copy(rain_gt / p.name, train / 'Derain' / 'gt' / f'norain-{k}.png')
            rain_train.append(k)
    # dehazing: HSTS for training, SOTS outdoor held out
    hsts = _require(shared / 'RESIDE_HSTS_synthetic')
    haze_ids = sorted(p.stem for p in (hsts / 'hazy').glob('*.jpg'))
    for k in haze_ids:
        _copy(hsts / 'hazy' / f'{k}.jpg', train / 'Dehaze' / 'synthetic' / 'part1' / f'{k}.jpg')
        _copy(hsts / 'clear' / f'{k}.jpg', train / 'Dehaze' / 'original' / f'{k}.jpg')
    sots = _require(shared / 'SOTS_outdoor')
    for p in sorted((sots / 'hazy').glob('*')):
        _copy(p, test / 'dehaze' / 'input' / p.name)
    for p in sorted((sots / 'clear').glob('*')):
        _copy(p, test / 'dehaze' / 'target' / p.name)

    lists.mkdir(parents=True, exist_ok=True)
    (lists / 'denoise.txt').write_text(''.join(f'{p.name}\n' for p in denoise))
    (lists / 'rainTrain.txt').write_text(''.join(f'rainy/rain-{k}.png\n' for k in rain_train))
    (lists / 'hazy_outside.txt').write_text(''.join(f'synthetic/part1/{k}.jpg\n' for k in haze_ids))
    csv = {
        'noise': [f'Denoise/{p.name},Denoise/{p.name}' for p in denoise],
        'rain': [f'Derain/gt/norain-{k}.png,Derain/rainy/rain-{k}.png' for k in rain_train],
        'haze': [f'Dehaze/original/{k}.jpg,Dehaze/synthetic/part1/{k}.jpg' for k in haze_ids],
    }
    csv['all_in_one'] = csv['noise'] + csv['rain'] + csv['haze']
    for name, rows in csv.items():
        (lists / f'train_{name}.csv').write_text(''.join(r + '\n' for r in rows))
    (out / 'split_rain100h.txt').write_text(f"train: {' '.join(rain_train)}\nheld_out: {' '.join(rain_test)}\n")
    return {'denoise_train': len(denoise), 'denoise_test': len(cbsd), 'rain_train': len(rain_train),
            'rain_test': len(rain_test), 'haze_train': len(haze_ids),
            'haze_test': len(list((sots / 'hazy').glob('*')))}


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--shared', type=Path, default=DEFAULT_SHARED, help='shared benchmark data folder')
    parser.add_argument('--out', type=Path, default=ROOT / 'datasets' / 'allinone_small', help='output folder')
    args = parser.parse_args(argv)
    counts = prepare(args.shared, args.out)
    print(f'wrote {args.out}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    sys.exit(run_cli(main))
