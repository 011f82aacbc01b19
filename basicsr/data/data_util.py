"""Listing and pairing image files: folders, meta-info files and LMDB key lists.

Names are paths relative to their root, with '/' separators. Pairing matches file *stems*: the LQ stem
is ``filename_tmpl.format(gt_stem)`` in the same sub-folder, whatever the extensions (hazy ``.jpg`` pairs
with clear ``.png``).
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class DataError(ValueError):
    """Bad data or data options: unpaired or size-mismatched files, a missing folder, a bad meta-info line."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def require_dir(path: Optional[str], key: str, owner: str) -> Path:
    """Return ``path`` as a Path, or raise naming the option ``key`` when it is unset or not a folder."""
    if path in (None, '', 'none', 'None'):
        raise DataError(f"{owner}: option '{key}' is required (a folder of images)")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_dir():
        what = 'is not a folder' if p.exists() else 'does not exist'
        raise DataError(f"{owner}: option '{key}' = '{path}' {what}")
    return p


def scan_images(folder: Path) -> List[str]:
    """All image files under ``folder`` (recursive, hidden entries skipped), sorted, as relative names."""
    names = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        rel = os.path.relpath(root, folder)
        for f in files:
            if not f.startswith('.') and is_image_file(f):
                names.append(f if rel == '.' else f'{rel}/{f}'.replace(os.sep, '/'))
    return sorted(names)


def stem(name: str) -> str:
    """'sub/img.png' -> 'sub/img'."""
    return os.path.splitext(name)[0]


def eval_noise_rng(noise_seed: int, name: str) -> np.random.Generator:
    """Generator of the fixed validation/test degradation of image ``name``, seeded by ``noise_seed`` and the
    CRC-32 of the name without its extension: the same image gets the same noise whatever the order or subset
    of images, and in a folder ('img.png') and an LMDB copy (key 'img') alike."""
    return np.random.default_rng([noise_seed, zlib.crc32(stem(name).encode('utf-8'))])


def apply_tmpl(name_stem: str, tmpl: str) -> str:
    """Apply ``filename_tmpl`` to the base name only: ('sub/img', '{}x2') -> 'sub/imgx2'."""
    head, _, base = name_stem.rpartition('/')
    try:
        out = tmpl.format(base)
    except (IndexError, KeyError, ValueError) as exc:
        raise DataError(f"filename_tmpl '{tmpl}' is not a valid template with one '{{}}' slot: {exc}") from None
    return f'{head}/{out}' if head else out


def read_meta_info(meta_file: str, key: str = 'meta_info_file') -> List[str]:
    """Names listed in a BasicSR meta-info file: the first token of every non-empty line.

    Lines look like ``name.png (480,500,3) 1``; only the name is used.
    """
    path = Path(meta_file)
    if not path.is_file():
        raise DataError(f"option '{key}' = '{meta_file}' does not exist")
    names = []
    for lineno, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        line = line.strip()
        if line and not line.startswith('#'):
            names.append(line.split()[0])
    if not names:
        raise DataError(f"meta-info file '{meta_file}' ({key}) lists no images")
    return names


def pair_names(gt_names: Sequence[str], lq_names: Sequence[str], tmpl: str = '{}'
               ) -> Tuple[List[Tuple[str, str]], List[str], List[str]]:
    """Pair GT and LQ names by stem through ``tmpl``.

    Returns:
        (pairs as (gt_name, lq_name) in GT order, GT names without LQ, LQ names without GT).

    Raises:
        DataError: two LQ files share a stem (e.g. ``a.png`` and ``a.jpg``), so the pairing is ambiguous.
    """
    by_stem: Dict[str, str] = {}
    for name in lq_names:
        s = stem(name)
        if s in by_stem:
            raise DataError(f"ambiguous LQ files '{by_stem[s]}' and '{name}' have the same name stem")
        by_stem[s] = name
    pairs, gt_only, used = [], [], set()
    for name in gt_names:
        want = apply_tmpl(stem(name), tmpl)
        if want in by_stem:
            pairs.append((name, by_stem[want]))
            used.add(want)
        else:
            gt_only.append(name)
    lq_only = [n for n in lq_names if stem(n) not in used]
    return pairs, gt_only, lq_only


def preview(names: Iterable[str], limit: int = 5) -> str:
    """'a, b, c, ... (+7 more)' for error messages."""
    names = list(names)
    shown = ', '.join(names[:limit])
    return shown + (f', ... (+{len(names) - limit} more)' if len(names) > limit else '')


def unpaired_message(owner: str, gt_desc: str, lq_desc: str, tmpl: str, gt_only: Sequence[str],
                     lq_only: Sequence[str]) -> str:
    """Human report of unpaired files (shared by datasets and scripts/check_pairs.py)."""
    parts = []
    if gt_only:
        parts.append(f'{len(gt_only)} GT file(s) in {gt_desc} have no LQ partner in {lq_desc}: {preview(gt_only)}')
    if lq_only:
        parts.append(f'{len(lq_only)} LQ file(s) in {lq_desc} have no GT partner in {gt_desc}: {preview(lq_only)}')
    return f"{owner}: {'; '.join(parts)} (LQ name = filename_tmpl '{tmpl}' applied to the GT name stem)"


# ---------------------------------------------------------------------------------------------- BasicSR's names
# ``basicsr.data.data_util`` helpers that datasets written against BasicSR import: lists of paths or of
# ``{'<key>_path': ...}`` pairs; LMDB entries are keys (the name before the first '.').
def scandir(dir_path: str, suffix: Optional[Sequence[str]] = None, recursive: bool = False,
            full_path: bool = False) -> Iterable[str]:
    """BasicSR's ``scandir`` (see :func:`basicsr.utils.misc.scandir`)."""
    from basicsr.utils.misc import scandir as scan
    return scan(dir_path, suffix=suffix, recursive=recursive, full_path=full_path)


def _two(folders: Sequence[str], keys: Sequence[str]) -> Tuple[str, str, str, str]:
    if len(folders) != 2 or len(keys) != 2:
        raise DataError(f'expected [input_folder, gt_folder] and [input_key, gt_key], got {folders} and {keys}')
    return folders[0], folders[1], keys[0], keys[1]


def _lmdb_keys(folder: str) -> List[str]:
    if not str(folder).endswith('.lmdb'):
        raise DataError(f"'{folder}' is not an LMDB folder (its name must end with .lmdb)")
    return [name.split('.')[0] for name in read_meta_info(os.path.join(folder, 'meta_info.txt'),
                                                          f'{folder}/meta_info.txt')]


def paths_from_folder(folder: str) -> List[str]:
    """The files at the top level of ``folder`` (hidden ones skipped), as full paths."""
    return [os.path.join(folder, p) for p in scandir(folder)]


def paths_from_lmdb(folder: str) -> List[str]:
    """The keys of an LMDB folder, from its ``meta_info.txt``."""
    return _lmdb_keys(folder)


def paired_paths_from_folder(folders: Sequence[str], keys: Sequence[str], filename_tmpl: str) -> List[Dict[str, str]]:
    """Pairs of files: for every GT file, the input file named ``filename_tmpl.format(gt_stem) + ext``."""
    input_folder, gt_folder, input_key, gt_key = _two(folders, keys)
    inputs, gts = set(scandir(input_folder)), list(scandir(gt_folder))
    if len(inputs) != len(gts):
        raise DataError(f"{input_key} folder '{input_folder}' has {len(inputs)} files, {gt_key} folder "
                        f"'{gt_folder}' has {len(gts)}")
    pairs = []
    for gt in gts:
        stem_, ext = os.path.splitext(os.path.basename(gt))
        name = f'{filename_tmpl.format(stem_)}{ext}'
        if name not in inputs:
            raise DataError(f"'{name}' (for {gt_key} '{gt}') is missing from {input_key} folder '{input_folder}'")
        pairs.append({f'{input_key}_path': os.path.join(input_folder, name),
                      f'{gt_key}_path': os.path.join(gt_folder, gt)})
    return pairs


def paired_paths_from_lmdb(folders: Sequence[str], keys: Sequence[str]) -> List[Dict[str, str]]:
    """Pairs of LMDB keys; both databases must hold the same keys."""
    input_folder, gt_folder, input_key, gt_key = _two(folders, keys)
    input_keys, gt_keys = _lmdb_keys(input_folder), _lmdb_keys(gt_folder)
    if set(input_keys) != set(gt_keys):
        raise DataError(f"LMDB keys of {input_key} '{input_folder}' and {gt_key} '{gt_folder}' differ")
    return [{f'{input_key}_path': k, f'{gt_key}_path': k} for k in sorted(input_keys)]


def paired_paths_from_meta_info_file(folders: Sequence[str], keys: Sequence[str], meta_info_file: str,
                                     filename_tmpl: str) -> List[Dict[str, str]]:
    """Pairs for the GT names listed in ``meta_info_file`` (the input name from ``filename_tmpl``)."""
    input_folder, gt_folder, input_key, gt_key = _two(folders, keys)
    pairs = []
    for gt in read_meta_info(meta_info_file):
        stem_, ext = os.path.splitext(os.path.basename(gt))
        pairs.append({f'{input_key}_path': os.path.join(input_folder, f'{filename_tmpl.format(stem_)}{ext}'),
                      f'{gt_key}_path': os.path.join(gt_folder, gt)})
    return pairs
