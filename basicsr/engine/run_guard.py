"""Guards of an experiment folder against killed and concurrent runs.

* :class:`RunLock`: one live trainer per experiment folder. ``<experiments_root>/train.lock`` names the
  holder's PID, host and torchrun job id; a second run fails with one line naming the holder, and the lock of
  a process that no longer exists (a killed run) is taken over with a warning, as is the lock of an earlier
  attempt of the same elastic job (torchrun ``--max-restarts`` stops every worker of a group before it
  starts the next one, whose rank 0 may run on another node).
* :func:`remove_stale_temp_files`: temporary files of atomic writes (``.<name>.tmp<pid>`` of checkpoints,
  ``.<name>.<random>.tmp`` of images) that a kill in the middle of a write left behind.
* :class:`LauncherWatch`: a worker started by torchrun stops when torchrun dies (``kill -9`` of ``train.sh``)
  instead of training on as an orphan beside the next run.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Optional, Tuple

from basicsr.utils.logger import get_logger

LOCK_NAME = 'train.lock'
TEMP_PATTERN = re.compile(r'^\..+\.tmp\d*$')
PR_SET_PDEATHSIG = 1


class RunLockedError(RuntimeError):
    """Another live trainer holds the experiment folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _elastic_job() -> str:
    """The torchrun job id of this worker (``--rdzv-id``), '' outside torchrun or with torchrun's default id."""
    job = os.environ.get('TORCHELASTIC_RUN_ID', '')
    return '' if job == 'none' else job


class RunLock:
    """Exclusive lock of ``folder`` for this process (``acquire`` / ``release``; re-entrant in one process)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _holder(self) -> Optional[Tuple[int, str]]:
        try:
            text = self.path.read_text().split()
            return int(text[0]), text[1]
        except (OSError, ValueError, IndexError):
            return None

    def _holder_job(self) -> str:
        try:
            return (self.path.read_text().split() + ['', '', ''])[2]
        except OSError:
            return ''

    def acquire(self) -> None:
        """Take the lock; raises :class:`RunLockedError` when a live process (or another host) holds it."""
        me = (os.getpid(), socket.gethostname())
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder == me:
                    self.held = True
                    return
                if holder is not None:
                    pid, host = holder
                    dead_here = host == me[1] and not _pid_alive(pid)
                    same_job = bool(_elastic_job()) and self._holder_job() == _elastic_job()
                    if not (dead_here or (same_job and host != me[1])):
                        raise RunLockedError(
                            f'{self.path.parent} is in use by another training run (PID {pid} on {host}, lock file '
                            f'{self.path}); wait for it to finish or stop it, or give this run another name '
                            f'(delete the lock file only if that process is gone)')
                    why = 'which no longer runs' if dead_here else f'an earlier attempt of job {_elastic_job()}'
                    get_logger().warning(f'taking over the stale lock {self.path} of PID {pid} on {host}, {why}')
                else:
                    get_logger().warning(f'replacing the unreadable lock file {self.path}')
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, 'w') as fh:
                fh.write(' '.join([str(me[0]), me[1], _elastic_job()]).strip() + '\n')
            self.held = True
            atexit.register(self.release)  # also when the run stops with an error
            return
        raise RunLockedError(f'could not take the lock {self.path}: another run keeps creating it')

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.held and self._holder() == (os.getpid(), socket.gethostname()):
            self.path.unlink(missing_ok=True)
        self.held = False


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete temporary files of interrupted atomic writes under ``folder``; returns how many were removed.

    Call it only while holding the folder's :class:`RunLock`: then no live writer owns them.
    """
    removed = 0
    for path in Path(folder).rglob('.*.tmp*'):
        if path.is_file() and TEMP_PATTERN.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        get_logger().warning(f'removed {removed} temporary file(s) of interrupted writes under {folder}')
    return removed


class LauncherWatch:
    """Under torchrun, stop this worker when the launcher dies.

    On Linux the kernel sends SIGTERM at the launcher's death (``prctl(PR_SET_PDEATHSIG)``); everywhere,
    :meth:`launcher_gone` tells the training loop that the parent process changed (it was re-parented).
    Outside torchrun (a plain ``python basicsr/train.py``, possibly under ``nohup``) it does nothing.
    """

    def __init__(self) -> None:
        self.parent: Optional[int] = None
        if 'TORCHELASTIC_RUN_ID' not in os.environ:
            return
        self.parent = os.getppid()
        if sys.platform.startswith('linux'):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            except (OSError, AttributeError):
                pass
        if self.launcher_gone():  # died before the prctl call took effect
            os.kill(os.getpid(), signal.SIGTERM)

    def launcher_gone(self) -> bool:
        return self.parent is not None and os.getppid() != self.parent
