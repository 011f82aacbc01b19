"""Reading weight and state files without running code from them; safetensors as the shared weight format.

A pickled file (``.pth``/``.pt``) can run any code when it is unpickled. Every torch file the toolbox reads
goes through :func:`load_torch_file`, which unpickles only tensors, numbers, strings, lists, tuples and dicts
(``torch.load(weights_only=True)``). A file that pickles anything else is refused with
:class:`RefusedPickleError`, naming the file and the pickled global (found by scanning the pickle's opcodes,
never by unpickling it). ``trust_pickle=True`` (``--trust-pickle`` / ``path.trust_pickle``) is the only way to
unpickle other objects, for trusted files such as official checkpoints that pickle an ``argparse.Namespace``.

``.safetensors`` files hold only tensors and a string-to-string metadata header, so they are safe to load from
anyone: :func:`read_safetensors` / :func:`write_safetensors`. Weight files with several state dicts
(``{'params': sd, 'params_ema': sd}``) are stored flat as ``<group>/<name>`` with the groups listed in the
metadata (:data:`GROUPS_KEY`), and read back nested by :func:`read_weights`; :data:`NETWORK_KEY` holds the
architecture spec (JSON) when the writer knows it.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import pickletools
import warnings
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch

__all__ = ['TRUST_PICKLE_HINT', 'GROUPS_KEY', 'NETWORK_KEY', 'RefusedPickleError', 'UnreadableFileError',
           'pickled_globals', 'unsafe_globals', 'trust_pickle_scope', 'load_torch_file', 'is_safetensors',
           'read_safetensors', 'write_safetensors', 'read_weights', 'write_weights', 'atomic_write_bytes']

PathLike = Union[str, Path]
SAFETENSORS_SUFFIX = '.safetensors'
GROUPS_KEY = 'basicsr.groups'    # metadata: comma-separated state-dict groups ('params,params_ema'), keys '<g>/<name>'
NETWORK_KEY = 'basicsr.network'  # metadata: the network spec as JSON ({"type": ..., **kwargs})
TRUST_PICKLE_HINT = 'pass --trust-pickle (option path.trust_pickle: true) only for files you trust'
# the globals a weights-only torch file needs, used to name the offending one when torch's own list is unavailable
_FALLBACK_SAFE = ('torch.', 'collections.OrderedDict', 'collections.Counter', 'builtins.set', 'builtins.bytearray',
                  'builtins.complex', '_codecs.encode')
_STRING_OPS = {'UNICODE', 'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'STRING', 'BINSTRING', 'SHORT_BINSTRING'}
_GET_OPS = {'GET', 'BINGET', 'LONG_BINGET'}
_PUT_OPS = {'PUT', 'BINPUT', 'LONG_BINPUT'}
logger = logging.getLogger('basicsr')
# the run's opt-in (--trust-pickle / path.trust_pickle), set by the entry points for everything the run loads
_TRUST_PICKLE: ContextVar[bool] = ContextVar('basicsr_trust_pickle', default=False)


class RefusedPickleError(ValueError):
    """A file pickles objects other than tensors and containers; it was not unpickled (exit status 2).

    Made by :meth:`for_file` (``path`` and ``global_name`` set); ``RefusedPickleError(message)`` also works, so
    callers can re-raise it with their option key in front.
    """

    exit_code = 2  # a user mistake for the command-line wrapper (basicsr.utils.cli)
    path: Optional[str] = None
    global_name: Optional[str] = None

    @classmethod
    def for_file(cls, path: PathLike, global_name: str) -> 'RefusedPickleError':
        exc = cls(f'refusing to load {path}: it pickles {global_name}; only tensors, numbers, strings, lists and '
                  f'dicts are read from pickled files, since unpickling anything else can run code; '
                  f'{TRUST_PICKLE_HINT}')
        exc.path, exc.global_name = str(path), global_name
        return exc


class UnreadableFileError(ValueError):
    """A file is missing its format: truncated, corrupt or not a torch / safetensors file."""


def _scan_pickle(stream: io.BytesIO, found: List[str]) -> None:
    """Append the globals of the one pickle at ``stream``'s position to ``found`` (``module.name``).

    ``STACK_GLOBAL`` takes its module and name from the stack: the last two strings pushed (directly or from
    the memo) are tracked, which is how every pickler writes them.
    """
    memo: Dict[int, Any] = {}
    pushed: List[Any] = []
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _STRING_OPS:
            pushed.append(arg)
        elif name in _GET_OPS:
            pushed.append(memo.get(arg))
        elif name == 'MEMOIZE':
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in _PUT_OPS:
            memo[arg] = pushed[-1] if pushed else None
        elif name in ('GLOBAL', 'INST'):
            found.append('.'.join(str(arg).split(' ', 1)))
            pushed.append(None)
        elif name == 'STACK_GLOBAL':
            module, attr = (pushed[-2:] if len(pushed) >= 2 else [None, None])
            found.append(f'{module}.{attr}' if isinstance(module, str) and isinstance(attr, str)
                         else 'a global named on the stack')
            pushed.append(None)
        elif name in ('EXT1', 'EXT2', 'EXT4'):
            found.append(f'copyreg extension {arg}')
            pushed.append(None)
        else:
            pushed.append(None)


def pickled_globals(data: bytes) -> List[str]:
    """Every global (``module.name``) that the pickles in ``data`` refer to, in order, without unpickling.

    ``data`` is a torch zip file (every ``*.pkl`` record is scanned), a legacy torch file (a sequence of
    pickles followed by raw storages) or a plain pickle.
    """
    found: List[str] = []
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in (m for m in archive.namelist() if m.endswith('.pkl')):
                    try:
                        _scan_pickle(io.BytesIO(archive.read(member)), found)
                    except Exception:  # noqa: BLE001 - a damaged record: the globals before the damage are kept
                        continue
            return found
    except Exception:  # noqa: BLE001 - a damaged archive (zipfile raises several types): torch reports it
        return found
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            _scan_pickle(stream, found)
        except Exception:  # noqa: BLE001 - the raw storages after a legacy file's pickles, or a damaged pickle
            break
    return found


def _torch_safe_globals() -> Optional[set]:
    """The globals torch's weights-only unpickler allows (its private lists; None when this torch has none)."""
    try:
        from torch import _weights_only_unpickler as wou
    except ImportError:
        return None
    lists = [getattr(wou, name, None) for name in ('_get_allowed_globals', '_get_user_allowed_globals')]
    safe = {name for get in lists if callable(get) for name in get()}
    return safe or None


def unsafe_globals(data: bytes) -> List[str]:
    """The globals in ``data`` that ``torch.load(weights_only=True)`` does not allow, first occurrence order."""
    safe = _torch_safe_globals()
    out: List[str] = []
    for name in pickled_globals(data):
        allowed = name in safe if safe is not None else name.startswith(_FALLBACK_SAFE)
        if not allowed and name not in out:
            out.append(name)
    return out


@contextmanager
def trust_pickle_scope(enabled: bool) -> Iterator[None]:
    """Within the block, every :func:`load_torch_file` unpickles any object when ``enabled``: how an entry point's
    ``--trust-pickle`` / ``path.trust_pickle`` reaches files read deep inside a run (VGG weights of a loss, the
    task classifier, EnsIR tables) without passing the flag through every builder."""
    token = _TRUST_PICKLE.set(bool(enabled))
    try:
        yield
    finally:
        _TRUST_PICKLE.reset(token)


def load_torch_file(path: PathLike, map_location: Any = 'cpu', trust_pickle: bool = False,
                    data: Optional[bytes] = None) -> Any:
    """``torch.load`` of ``path`` (or of its bytes ``data`` already read) that unpickles no code.

    Args:
        path: the file (named in every error).
        map_location: where tensors go, as for ``torch.load``.
        trust_pickle: unpickle any object (torch's weights-only mode off): only for files the user trusts; also
            on inside :func:`trust_pickle_scope` ``(True)``.
        data: the file's bytes when the caller has read (and checked) them already.
    Raises:
        RefusedPickleError: the file pickles another global (the message names it and ``--trust-pickle``).
        UnreadableFileError: truncated, corrupt or not a torch file.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    trust_pickle = trust_pickle or _TRUST_PICKLE.get()
    if data is None and not path.is_file():
        raise FileNotFoundError(f'file not found: {path}')
    source = io.BytesIO(data) if data is not None else path
    try:
        if trust_pickle:
            logger.warning(f'unpickling {path} with trust_pickle (--trust-pickle): it may run code it contains')
            return torch.load(source, map_location=map_location, weights_only=False)
        with warnings.catch_warnings():  # torch warns about pickle protocols > 2 before refusing them itself
            warnings.filterwarnings('ignore', message='.*pickle protocol', category=UserWarning)
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            refused = unsafe_globals(data if data is not None else path.read_bytes())
            if refused:
                raise RefusedPickleError.for_file(path, refused[0]) from None
        raise UnreadableFileError(f'{path} cannot be read (truncated or not a torch file?): '
                                  f'{_first_line(exc)}') from exc
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails anywhere in torch's reader (struct, index, ...)
        raise UnreadableFileError(f'{path} cannot be read (truncated or not a torch file?): '
                                  f'{type(exc).__name__}: {_first_line(exc)}') from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def is_safetensors(path: PathLike) -> bool:
    """Whether ``path`` names a safetensors file (by its ``.safetensors`` suffix)."""
    return Path(path).suffix.lower() == SAFETENSORS_SUFFIX


def read_safetensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``(name -> tensor on the CPU, metadata)`` of a safetensors file; raises :class:`UnreadableFileError`."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'file not found: {path}')
    try:
        with safe_open(str(path), framework='pt', device='cpu') as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad header
        raise UnreadableFileError(f'{path} cannot be read as safetensors (truncated or another format?): '
                                  f'{type(exc).__name__}: {_first_line(exc)}') from exc
    return tensors, metadata


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: PathLike,
                      metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write ``tensors`` (contiguous CPU copies; shared storage is split) with string ``metadata`` atomically."""
    from safetensors.torch import save
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    blob = save(plain, metadata={str(k): str(v) for k, v in (metadata or {}).items()})
    return atomic_write_bytes(blob, path)


def write_weights(state: Mapping[str, Any], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write a state dict, or groups of them (``{'params': sd, 'params_ema': sd}``), as a safetensors file."""
    groups = [k for k, v in state.items() if isinstance(v, Mapping)]
    if groups and len(groups) != len(state):
        raise ValueError(f'{path}: expected a state dict or a mapping of state dicts, got a mix of both')
    if not groups:
        return write_safetensors(state, path, metadata)
    flat = {f'{g}/{name}': tensor for g in groups for name, tensor in state[g].items()}
    return write_safetensors(flat, path, {**(metadata or {}), GROUPS_KEY: ','.join(groups)})


def read_weights(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``(state, metadata)`` of a safetensors weight file: the raw state dict, or the groups that
    :func:`write_weights` wrote (``{'params': sd, 'params_ema': sd}``)."""
    flat, metadata = read_safetensors(path)
    groups = [g for g in metadata.get(GROUPS_KEY, '').split(',') if g]
    if not groups:
        return flat, metadata
    nested: Dict[str, Any] = {g: {} for g in groups}
    for key, tensor in flat.items():
        group, sep, name = key.partition('/')
        if not sep or group not in nested:
            raise UnreadableFileError(f'{path}: key {key!r} is not in one of the groups {groups} its metadata lists')
        nested[group][name] = tensor
    return nested, metadata


def atomic_write_bytes(data: bytes, path: PathLike) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync'ed, then renamed.

    A failed write (disk full, file-size limit, permissions) raises an ``OSError`` naming ``path``; the
    temporary file is removed and an existing ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, 'wb') as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f'could not write {path} ({len(data)} bytes): {exc.strerror or exc}; check the '
                      f'free space, size limit and permissions of {path.parent}', str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
