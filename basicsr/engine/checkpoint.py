"""Atomic, self-checking training checkpoints.

One file per save (``training_states/ckpt_<iter>.pth``) holds everything a run needs to continue
exactly: networks, EMA, optimisers, schedulers, AMP scaler, iteration, epoch, sampler position, RNG
states of every rank, best metrics and the options hash. Files are written to a temporary name,
fsync'ed and renamed, with a SHA-256 side file; a corrupt or truncated file is skipped (with a warning)
in favour of the previous one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from basicsr.utils.dist import broadcast_object, get_dist_info
from basicsr.utils.logger import get_logger
from basicsr.utils.serialization import (NETWORK_KEY, UnreadableFileError, atomic_write_bytes, load_torch_file,
                                         write_weights)

CKPT_PATTERN = re.compile(r'^ckpt_(\d+)\.pth$')


def atomic_torch_save(obj: Any, path: str | Path) -> str:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename); returns the SHA-256."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    # the side file first: a kill between the two renames leaves a digest without its checkpoint (ignored, and
    # rewritten by the next save of that iteration), never a checkpoint whose digest is missing or stale
    atomic_write_bytes((digest + '\n').encode(), path.with_name(path.name + '.sha256'))
    atomic_write_bytes(data, path)  # an OSError names the file
    _fsync_dir(path.parent)
    return digest


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def verified_load(path: str | Path, map_location: Any = 'cpu', trust_pickle: bool = False) -> Any:
    """Load a checkpoint written by :func:`atomic_torch_save`, checking its SHA-256 side file.

    The SHA-256 proves integrity, not origin, so the file is unpickled with tensors and containers only
    (a training state holds nothing else); ``trust_pickle`` allows other objects, for trusted files only.
    Raises ``ValueError`` naming the file when it is truncated or corrupt, and
    :class:`~basicsr.utils.serialization.RefusedPickleError` when it pickles other objects.
    """
    path = Path(path)
    data = path.read_bytes()
    sha = path.with_name(path.name + '.sha256')
    if sha.exists():
        expected = sha.read_text().strip()
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(f'checkpoint {path} is corrupt or truncated: SHA-256 differs from {sha.name} '
                             f'({len(data)} bytes on disk)')
    try:
        return load_torch_file(path, map_location, trust_pickle=trust_pickle, data=data)
    except UnreadableFileError as exc:
        raise ValueError(f'checkpoint {exc}') from exc


def list_checkpoints(folder: str | Path) -> List[Path]:
    """Checkpoint files in ``folder``, newest iteration first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def checkpoint_path(folder: str | Path, iteration: int) -> Path:
    return Path(folder) / f'ckpt_{iteration:08d}.pth'


def save_checkpoint(state: Dict[str, Any], folder: str | Path, iteration: int, keep_last: int = 3) -> Path:
    """Write ``state`` as the checkpoint of ``iteration`` and delete all but the newest ``keep_last``, never the
    file just written (a run resumed from an older checkpoint may find newer ones of the abandoned run).

    The trainer calls it after every rank has read the checkpoint it resumed from (a barrier), so pruning
    never deletes a file a resume is reading."""
    path = checkpoint_path(folder, iteration)
    atomic_torch_save(state, path)
    if keep_last > 0:
        for old in list_checkpoints(folder)[keep_last:]:
            if old == path:
                continue
            old.unlink(missing_ok=True)
            old.with_name(old.name + '.sha256').unlink(missing_ok=True)
    return path


def load_latest_checkpoint(folder: str | Path, map_location: Any = 'cpu',
                           trust_pickle: bool = False) -> Optional[Dict[str, Any]]:
    """The newest readable checkpoint in ``folder`` (None if there is none); broken ones and ones that pickle
    objects other than tensors and containers (unless ``trust_pickle``) are skipped with a warning."""
    logger = get_logger()
    for path in list_checkpoints(folder):
        try:
            state = verified_load(path, map_location, trust_pickle)
        except (ValueError, OSError) as exc:
            logger.warning(f'{exc}; falling back to the previous checkpoint')
            continue
        state['_path'] = str(path)
        return state
    return None


def load_resume_state(training_states: str | Path, resume_state: Optional[str | Path] = None,
                      auto_resume: bool = True, trust_pickle: bool = False) -> Optional[Dict[str, Any]]:
    """The checkpoint every rank resumes from (None: start afresh), the same file on all ranks.

    ``resume_state`` names it; otherwise (``auto_resume``) rank 0 picks the newest valid checkpoint of
    ``training_states`` and sends its path to the others, which read that file too: the experiments folder
    must be on a filesystem every node sees.
    """
    if resume_state:
        path = str(resume_state)
    elif not auto_resume:
        return None
    else:
        state, failure = None, None
        if get_dist_info()[0] == 0:
            try:
                state = load_latest_checkpoint(training_states, trust_pickle=trust_pickle)
            except Exception as exc:  # noqa: BLE001 - the other ranks must not wait for a path that never comes
                failure = exc
        path = broadcast_object(f'\0{failure}' if failure else state and state['_path'])
        if failure is not None:
            raise failure
        if state is not None or path is None:
            return state
        if path.startswith('\0'):
            raise RuntimeError(f'rank 0 could not pick the checkpoint to resume from: {path[1:]}')
        if not Path(path).is_file():
            raise FileNotFoundError(f'rank 0 resumes from {path}, which rank {get_dist_info()[0]} cannot see: put '
                                    f'the experiments folder (path.experiments_root) on a filesystem every node mounts')
    state = verified_load(path, trust_pickle=trust_pickle)
    state['_path'] = path
    return state


def sampler_state_for_rank(state: Dict[str, Any], rank: int, world: int, batch_size_per_gpu: int,
                           accumulate: int = 1) -> Dict[str, Any]:
    """This rank's sampler position in checkpoint ``state``.

    A checkpoint of another number of ranks resumes when the global batch (``batch_size_per_gpu`` x ranks x
    ``accumulate_grad``) is the one it was written with: every rank's sampler takes its share of one global
    sample order, so the position maps to the new world size (:meth:`EnlargedSampler.load_state_dict`) and the
    run continues with the same samples per iteration. Otherwise ``ValueError`` says which batch keeps it.
    """
    samplers = state['sampler']
    old_world = int(state.get('world_size', len(samplers)))
    if old_world == world:
        return samplers[rank]
    old_batch, batch = state.get('global_batch'), batch_size_per_gpu * world * accumulate
    if old_batch is not None and int(old_batch) != batch:
        hint = (f'--set datasets.train.batch_size_per_gpu={old_batch // (world * accumulate)}'
                if old_batch % (world * accumulate) == 0 else 'datasets.train.batch_size_per_gpu and '
                'train.accumulate_grad')
        raise ValueError(f"cannot resume from {state.get('_path', 'the checkpoint')}: it was written by {old_world} "
                         f'rank(s) with a global batch of {old_batch} samples and this run has {world} rank(s) with '
                         f'{batch} (batch_size_per_gpu {batch_size_per_gpu} x {world} x accumulate_grad '
                         f'{accumulate}); keep the global batch ({hint}) or start afresh with --no-resume')
    return samplers[0]  # the ranks' positions are equal; the sampler maps it to this world size


def network_file(models_dir: str | Path, save_format: str = 'pth', name: str = 'net_g_latest') -> Path:
    """``models_dir/<name>.pth`` or ``.safetensors`` (``logger.save_format``)."""
    return Path(models_dir) / f"{name}.{'safetensors' if save_format == 'safetensors' else 'pth'}"


def save_network_file(state: Dict[str, Any], models_dir: str | Path, save_format: str = 'pth',
                      network: Optional[Dict[str, Any]] = None, name: str = 'net_g_latest') -> Path:
    """Write ``{'params': sd, 'params_ema': sd}`` to :func:`network_file`: a torch file (with SHA-256 side file)
    or safetensors (groups as in :func:`~basicsr.utils.serialization.write_weights`, ``network`` spec in the
    metadata), which anyone can load without running code."""
    path = network_file(models_dir, save_format, name)
    if save_format == 'safetensors':
        metadata = {NETWORK_KEY: json.dumps(network, sort_keys=True, default=str)} if network else None
        write_weights(state, path, metadata)
    else:
        atomic_torch_save(state, path)
    return path


def capture_rng_state() -> Dict[str, Any]:
    """RNG states of python, numpy, torch and (if present) every CUDA device of this process.

    Only tuples, numbers, strings and tensors, so a checkpoint holding them loads with ``weights_only``:
    numpy's ``(name, uint32 keys, pos, has_gauss, cached_gaussian)`` becomes a dict with the keys as a tensor.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    numpy_state = {'name': str(name), 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                   'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)}
    state = {'python': random.getstate(), 'numpy': numpy_state, 'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned (also numpy's tuple form of older checkpoints)."""
    random.setstate(state['python'])
    numpy_state = state['numpy']
    if isinstance(numpy_state, dict):
        keys = np.asarray(numpy_state['keys'].numpy() if torch.is_tensor(numpy_state['keys'])
                          else numpy_state['keys'], dtype=np.uint32)
        numpy_state = (numpy_state['name'], keys, numpy_state['pos'], numpy_state['has_gauss'],
                       numpy_state['cached_gaussian'])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
