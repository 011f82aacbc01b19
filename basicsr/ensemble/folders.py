"""Folders of model predictions and ground truth, as the ensemble tools read them.

Layout (as the official EnsIR reference sets): one folder per base model and one ground-truth folder,
holding files with the same base names (extensions may differ between folders, e.g. MPRNet PNG and
MAXIM JPEG). Images are returned on the EnsIR scale: (3, H, W) float32 RGB in [0, 255], computed as
``uint8 / 255 * 255`` like the official reader, which is exact for every 8-bit value.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from basicsr.utils.img_util import img2tensor, read_image

PathLike = Union[str, Path]
Tensor = torch.Tensor

# the official reader's order first, then other lossless formats
IMAGE_EXTENSIONS = ('png', 'jpg', 'jpeg', 'PNG', 'JPG', 'JPEG', 'bmp', 'tif', 'tiff', 'webp')


def list_names(folder: PathLike) -> List[str]:
    """Sorted base names (no extension) of the images in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f'image folder {folder}: expected an existing directory, got no such directory')
    names = sorted({p.stem for p in folder.iterdir() if p.is_file() and p.suffix[1:] in IMAGE_EXTENSIONS})
    if not names:
        raise ValueError(f'image folder {folder}: expected image files ({", ".join(IMAGE_EXTENSIONS[:3])}, ...), '
                         f'got none')
    return names


def find_image(folder: PathLike, name: str) -> Path:
    """Path of image ``name`` in ``folder``, trying the extensions in :data:`IMAGE_EXTENSIONS` order."""
    for ext in IMAGE_EXTENSIONS:
        path = Path(folder) / f'{name}.{ext}'
        if path.is_file():
            return path
    raise ValueError(f'image {name!r} not found in {folder}: expected {name}.<{"|".join(IMAGE_EXTENSIONS)}>')


def read_image_255(path: PathLike) -> Tensor:
    """(3, H, W) float32 RGB image in [0, 255]."""
    return img2tensor(read_image(path, channels=3)) * 255.0


def read_predictions(model_dirs: Sequence[PathLike], name: str) -> Tensor:
    """(M, 3, H, W) predictions of image ``name`` by the models in ``model_dirs`` (in that order)."""
    images = [read_image_255(find_image(d, name)) for d in model_dirs]
    sizes = [tuple(img.shape[-2:]) for img in images]
    if len(set(sizes)) != 1:
        listing = ', '.join(f'{d}: {s}' for d, s in zip(model_dirs, sizes))
        raise ValueError(f'image {name!r}: expected the same size from every model, got {listing}')
    return torch.stack(images, 0)


def load_reference_set(model_dirs: Sequence[PathLike], gt_dir: PathLike, names: Optional[Sequence[str]] = None,
                       progress: bool = False) -> Tuple[List[Tensor], List[Tensor], List[str]]:
    """Read a reference set: ([(M, 3, H, W)], [(3, H, W)], names), all [0, 255].

    ``names`` defaults to every image of ``gt_dir`` (sorted, so results do not depend on directory order).
    Model and ground-truth sizes must match (ValueError otherwise).
    """
    names = list(names) if names is not None else list_names(gt_dir)
    preds, gts = [], []
    for name in _progress(names, progress, 'reading'):
        pred = read_predictions(model_dirs, name)
        gt = read_image_255(find_image(gt_dir, name))
        if tuple(gt.shape[-2:]) != tuple(pred.shape[-2:]):
            raise ValueError(f'image {name!r}: models and ground truth must have the same size, got predictions '
                             f'{tuple(pred.shape[-2:])} and ground truth {tuple(gt.shape[-2:])} ({gt_dir})')
        preds.append(pred)
        gts.append(gt)
    return preds, gts, names


def _progress(items: Sequence, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='img')
