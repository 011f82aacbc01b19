"""Where images come from: a folder on disk or an LMDB database (BasicSR layout), behind one reader.

An LMDB database is a folder holding ``data.mdb`` and ``meta_info.txt``; every line of the meta-info file
is ``<key><ext> (h,w,c) <png compression>`` and the record stored under ``<key>`` is the encoded image
(``scripts/create_lmdb.py`` writes this layout). LMDB environments are opened lazily in the process that
reads, one per database path and process (:func:`lmdb_env`): datasets sharing a database (train and val,
several tasks over one clean LMDB) share its handle, and every DataLoader worker opens its own.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np

from basicsr.data.data_util import DataError, read_meta_info, require_dir, scan_images, stem
from basicsr.utils.img_util import ImageReadError, read_image, read_image_bytes

BACKENDS = ('disk', 'lmdb')
# database path -> read-only environment opened by process _LMDB_PID (py-lmdb opens a path once per process)
_LMDB_ENVS: Dict[str, Any] = {}
_LMDB_PID: Optional[int] = None


def lmdb_env(root: str | os.PathLike) -> Any:
    """The read-only LMDB environment of ``root`` for this process, opened on first use.

    py-lmdb refuses a second ``lmdb.open`` of a path in one process ('already open'), also in a forked
    worker that inherited the parent's handles: a new process closes the inherited ones and opens its own
    (with ``lock=False`` that touches nothing of the parent's).
    """
    global _LMDB_PID
    import lmdb  # optional dependency, only needed for LMDB data

    if _LMDB_PID != os.getpid():
        for env in _LMDB_ENVS.values():
            env.close()
        _LMDB_ENVS.clear()
        _LMDB_PID = os.getpid()
    key = os.path.realpath(root)
    if key not in _LMDB_ENVS:
        _LMDB_ENVS[key] = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
    return _LMDB_ENVS[key]


def backend_type(opt: Dict[str, Any], owner: str) -> str:
    """The ``io_backend.type`` of a dataset option block ('disk' when absent)."""
    io = opt.get('io_backend') or {'type': 'disk'}
    if not isinstance(io, dict) or io.get('type') not in BACKENDS or set(io) - {'type'}:
        raise DataError(f"{owner}: option 'io_backend' must be {{type: disk}} or {{type: lmdb}}, got {io!r}")
    return io['type']


class ImageSource:
    """A list of image names under one root, and a way to read them.

    Args:
        root: folder (disk) or ``.lmdb`` folder.
        backend: 'disk' or 'lmdb'.
        key: option key of ``root`` (named in errors, e.g. 'dataroot_gt').
        owner: who is asking (dataset type and name), named in errors.
        meta_info_file: disk only; restricts and orders the images to those listed.
    """

    def __init__(self, root: str, backend: str, key: str, owner: str,
                 meta_info_file: Optional[str] = None) -> None:
        self.root = require_dir(root, key, owner)
        self.backend = backend
        self.key = key
        if backend == 'lmdb':
            if not (self.root / 'data.mdb').is_file():
                raise DataError(f"{owner}: option '{key}' = '{root}' is not an LMDB database (no data.mdb); "
                                'create one with scripts/create_lmdb.py')
            meta = self.root / 'meta_info.txt'
            if not meta.is_file():
                raise DataError(f"{owner}: LMDB '{root}' ({key}) has no meta_info.txt listing its keys")
            self.names = [stem(n) for n in read_meta_info(str(meta), f'{key}/meta_info.txt')]
        elif meta_info_file:
            self.names = read_meta_info(meta_info_file)
            missing = [n for n in self.names if not (self.root / n).is_file()]
            if missing:
                raise DataError(f"{owner}: {len(missing)} file(s) listed in meta_info_file '{meta_info_file}' are "
                                f"missing from {key} '{root}': {', '.join(missing[:5])}")
        else:
            self.names = scan_images(self.root)
        if not self.names:
            raise DataError(f"{owner}: option '{key}' = '{root}' contains no images")

    def describe(self) -> str:
        return f"{self.key} '{self.root}'"

    def path(self, name: str) -> str:
        """Display path of ``name``: the file path, or '<db>.lmdb/<key>' for LMDB records."""
        return str(self.root / name)

    def read(self, name: str, channels: Optional[int] = 3, float32: bool = True) -> np.ndarray:
        """(H, W, C) RGB, float32 in [0, 1] or the stored dtype; ImageReadError names the file or LMDB record."""
        if self.backend == 'disk':
            return read_image(self.root / name, channels=channels, float32=float32)
        buf = self._lmdb_get(name)
        return read_image_bytes(buf, self.path(name), channels=channels, float32=float32)

    def _lmdb_get(self, name: str) -> bytes:
        with lmdb_env(self.root).begin(write=False) as txn:
            buf = txn.get(name.encode('utf-8'))
        if buf is None:
            raise ImageReadError(f"LMDB '{self.root}' has no record '{name}' although its meta_info.txt lists it")
        return bytes(buf)


def list_sources(roots: Any, backend: str, key: str, owner: str, meta_info_file: Optional[str]) -> List[ImageSource]:
    """One ImageSource per root; ``roots`` is a path or a list of paths (several clean folders)."""
    root_list: List[str] = list(roots) if isinstance(roots, (list, tuple)) else [roots]
    if meta_info_file and len(root_list) > 1:
        raise DataError(f"{owner}: 'meta_info_file' works with a single '{key}' folder, got {len(root_list)}")
    return [ImageSource(r, backend, key if len(root_list) == 1 else f'{key}[{i}]', owner, meta_info_file)
            for i, r in enumerate(root_list)]
