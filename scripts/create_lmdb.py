"""Pack a folder of images into an LMDB database with a BasicSR meta_info.txt.

    python scripts/create_lmdb.py --input datasets/DIV2K/HR --output datasets/DIV2K/HR.lmdb

Every image (searched recursively) is re-encoded as PNG (lossless; 8 or 16 bit kept) and stored under its
relative path without extension; ``<output>/meta_info.txt`` gets one line ``<name>.png (h,w,c) <level>``
per image. The map size starts from the data size and grows when LMDB reports it is full.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.data.data_util import scan_images, stem  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.img_util import ImageReadError, read_image  # noqa: E402


def encode_png(path: Path, level: int) -> tuple:
    """(PNG bytes, (h, w, c)) of an image file, channels as stored (alpha dropped)."""
    img = read_image(path, channels=None, float32=False)
    h, w, c = img.shape
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if c == 3 else img[:, :, 0]
    ok, buf = cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ImageReadError(f"cannot re-encode '{path}' as PNG")
    return buf.tobytes(), (h, w, c)


def create_lmdb(input_dir: Path, output: Path, compress_level: int = 1, batch: int = 200) -> int:
    """Write ``output`` (an .lmdb folder) from every image under ``input_dir``; returns the image count."""
    import lmdb

    names = scan_images(input_dir)
    if not names:
        raise SystemExit(f"no images found under '{input_dir}'")
    if (output / 'data.mdb').exists():
        raise SystemExit(f"'{output}' already holds an LMDB database; remove it or choose another --output")
    output.mkdir(parents=True, exist_ok=True)
    total = sum((input_dir / n).stat().st_size for n in names)
    map_size = max(int(total * 4), 64 * 2 ** 20)
    env = lmdb.open(str(output), map_size=map_size)
    meta: List[str] = []
    pending = []

    def flush() -> None:
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:
                env.set_mapsize(env.info()['map_size'] * 2)
        pending.clear()

    for i, name in enumerate(names, 1):
        data, (h, w, c) = encode_png(input_dir / name, compress_level)
        key = stem(name)
        pending.append((key.encode('utf-8'), data))
        meta.append(f'{key}.png ({h},{w},{c}) {compress_level}')
        if len(pending) >= batch:
            flush()
        if i % 100 == 0 or i == len(names):
            print(f'  {i}/{len(names)} images', flush=True)
    flush()
    env.close()
    (output / 'meta_info.txt').write_text('\n'.join(meta) + '\n', encoding='utf-8')
    return len(names)


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--input', required=True, type=Path, help='folder of images (searched recursively)')
    parser.add_argument('--output', required=True, type=Path, help='LMDB folder to create, e.g. x.lmdb')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10),
                        help='PNG compression level 0-9 (lossless at every level; default 1)')
    args = parser.parse_args(argv)
    if not args.input.is_dir():
        parser.error(f"--input '{args.input}' is not a folder")
    n = create_lmdb(args.input, args.output, args.compress_level)
    print(f"wrote {n} images to '{args.output}' (+ meta_info.txt)")
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
