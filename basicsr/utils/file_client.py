"""BasicSR's ``FileClient``: read raw bytes from disk or from LMDB databases (``basicsr.utils.file_client``).

Datasets written against BasicSR create ``FileClient(io_backend_opt.pop('type'), **io_backend_opt)`` and
decode ``client.get(path, key)`` with :func:`basicsr.utils.imfrombytes`. LMDB environments open lazily in
the reading process (each DataLoader worker gets its own handle), read-only and without locking.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union


class HardDiskBackend:
    """Bytes of a file on disk."""

    def get(self, filepath: Union[str, Path], client_key: str = 'default') -> bytes:
        with open(filepath, 'rb') as fh:
            return fh.read()

    def get_text(self, filepath: Union[str, Path]) -> str:
        with open(filepath, 'r') as fh:
            return fh.read()


class LmdbBackend:
    """Records of one or more LMDB databases, addressed by ``client_key`` (default: the only one).

    Args:
        db_paths: one path or a list of ``.lmdb`` folders.
        client_keys: one name per database ('default' for a single one).
        readonly, lock, readahead, kwargs: passed to ``lmdb.open``.
    """

    def __init__(self, db_paths: Union[str, Sequence[str]], client_keys: Union[str, Sequence[str]] = 'default',
                 readonly: bool = True, lock: bool = False, readahead: bool = False, **kwargs: Any) -> None:
        paths = [str(db_paths)] if isinstance(db_paths, (str, Path)) else [str(p) for p in db_paths]
        keys = [client_keys] if isinstance(client_keys, str) else list(client_keys)
        if len(paths) != len(keys):
            raise ValueError(f'LmdbBackend: {len(paths)} db_paths but {len(keys)} client_keys ({keys}); '
                             'give one key per database')
        self.db_paths: Dict[str, str] = dict(zip(keys, paths))
        self.open_kwargs = dict(readonly=readonly, lock=lock, readahead=readahead, **kwargs)
        self._envs: Dict[str, Any] = {}
        self._pid: Optional[int] = None

    def _env(self, client_key: str) -> Any:
        import lmdb  # optional dependency, needed only for LMDB data
        if self._pid != os.getpid():  # handles do not survive a fork: reopen in the worker
            self._envs, self._pid = {}, os.getpid()
        if client_key not in self.db_paths:
            raise KeyError(f"LmdbBackend: no database for client_key '{client_key}' (have {list(self.db_paths)})")
        if client_key not in self._envs:
            self._envs[client_key] = lmdb.open(self.db_paths[client_key], **self.open_kwargs)
        return self._envs[client_key]

    def get(self, filepath: Union[str, Path], client_key: str = 'default') -> bytes:
        with self._env(client_key).begin(write=False) as txn:
            buf = txn.get(str(filepath).encode('ascii'))
        if buf is None:
            raise KeyError(f"LMDB '{self.db_paths[client_key]}' has no record '{filepath}'")
        return bytes(buf)

    def get_text(self, filepath: Union[str, Path]) -> str:
        raise NotImplementedError('LmdbBackend stores images; get_text is not available')

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state['_envs'], state['_pid'] = {}, None
        return state


class FileClient:
    """``FileClient(backend='disk' | 'lmdb', **backend_kwargs)``; ``get(path, client_key)`` returns bytes."""

    _backends = {'disk': HardDiskBackend, 'lmdb': LmdbBackend}

    def __init__(self, backend: str = 'disk', **kwargs: Any) -> None:
        if backend not in self._backends:
            raise ValueError(f"FileClient: backend '{backend}' is not supported; choose one of "
                             f'{list(self._backends)} (memcached is not available here)')
        self.backend = backend
        self.client = self._backends[backend](**kwargs)

    def get(self, filepath: Union[str, Path], client_key: str = 'default') -> bytes:
        return self.client.get(filepath, client_key)

    def get_text(self, filepath: Union[str, Path]) -> str:
        return self.client.get_text(filepath)

