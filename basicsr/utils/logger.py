"""Logging: one 'basicsr' logger (text file on rank 0), TensorBoard writer, and the progress message."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

LOGGER_NAME = 'basicsr'


def _process_rank() -> int:
    """This process's rank: the process group's, else torchrun's ``RANK`` (0 outside torchrun)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get('RANK', '0'))


def get_logger(log_file: Optional[str | Path] = None, rank: Optional[int] = None,
               level: int = logging.INFO) -> logging.Logger:
    """The package logger; adds a file handler for ``log_file`` once. Ranks > 0 only log errors (``rank``
    defaults to this process's rank, so a plain ``get_logger()`` on rank 1 stays quiet too)."""
    if rank is None:
        rank = _process_rank()
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s: %(message)s'))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level if rank == 0 else logging.ERROR)
    if log_file is not None and rank == 0:
        log_file = str(Path(log_file).resolve())
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == log_file for h in logger.handlers):
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file, mode='a')
            fh.setFormatter(logging.Formatter('%(asctime)s %(levelname)s: %(message)s'))
            logger.addHandler(fh)
    return logger


def init_tb_logger(log_dir: str | Path, purge_step: Optional[int] = None) -> Any:
    """A TensorBoard ``SummaryWriter`` (None if tensorboard is not installed, with a warning).

    ``purge_step``: readers drop the events of steps >= it that earlier writers left (a resumed run passes
    the first iteration it trains again, so an interrupted run's later scalars do not appear twice).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # tensorboard is a requirement; keep training if it is broken
        get_logger().warning(f'TensorBoard disabled: {exc}')
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class ETA:
    """Iteration timer with a moving average and an ETA that stays right after a resume."""

    def __init__(self, start_iter: int, total_iter: int, window: int = 50) -> None:
        self.start_iter, self.total_iter, self.window = start_iter, total_iter, window
        self.times: list = []
        self.last = time.perf_counter()
        self.data_time = 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        dt = now - self.last
        self.last = now
        self.times = (self.times + [dt])[-self.window:]
        return dt

    def eta_seconds(self, current_iter: int) -> float:
        if not self.times:
            return float('nan')
        return sum(self.times) / len(self.times) * max(self.total_iter - current_iter, 0)


def format_duration(seconds: float) -> str:
    """'H:MM:SS', with a day count beyond 24 h ('3d 04:05:06'); '?' for NaN."""
    if seconds != seconds:
        return '?'
    days, rest = divmod(int(round(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    clock = f'{hours:02d}:{rest // 60:02d}:{rest % 60:02d}'
    return f'{days}d {clock}' if days else clock


def format_log(epoch: int, it: int, lrs: list, losses: Dict[str, float], eta_s: float, it_time: float) -> str:
    eta = format_duration(eta_s)
    lr_s = ','.join(f'{lr:.3e}' for lr in lrs)
    loss_s = ' '.join(f'{k}: {v:.4e}' for k, v in losses.items())
    return f'[epoch:{epoch:3d}, iter:{it:8,d}, lr:({lr_s})] [eta: {eta}, time: {it_time:.3f}s] {loss_s}'


# ---------------------------------------------------------------------------------------------- BasicSR names
def get_root_logger(logger_name: str = 'basicsr', log_level: int = logging.INFO,
                    log_file: Optional[str] = None) -> logging.Logger:
    """BasicSR's logger accessor: the package logger (the name is accepted; there is one logger)."""
    from basicsr.utils.dist import get_dist_info
    return get_logger(log_file, get_dist_info()[0], log_level)


def get_env_info() -> str:
    """Versions of the toolbox, PyTorch and Python (logged at the start of a run)."""
    import platform

    import torch

    import basicsr
    return f'basicsr {basicsr.__version__}, PyTorch {torch.__version__}, Python {platform.python_version()}'


class AvgTimer:
    """Average duration between ``start()`` and ``record()`` over the last ``window`` records."""

    def __init__(self, window: int = 200) -> None:
        self.window = window
        self.times: list = []
        self.start()

    def start(self) -> None:
        self.start_time = time.time()

    def record(self) -> None:
        self.times = (self.times + [time.time() - self.start_time])[-self.window:]
        self.start()

    def get_current_time(self) -> float:
        return self.times[-1] if self.times else 0.0

    def get_avg_time(self) -> float:
        return sum(self.times) / len(self.times) if self.times else 0.0


class MessageLogger:
    """BasicSR's training message: ``MessageLogger(opt, start_iter, tb_logger)(log_vars)`` logs epoch, iteration,
    learning rates, ETA and the ``l_*`` losses (also to TensorBoard under ``losses/``)."""

    def __init__(self, opt: Dict[str, Any], start_iter: int = 1, tb_logger: Any = None) -> None:
        self.total_iter = int(opt['train']['total_iter'])
        self.tb_logger = tb_logger
        self.eta = ETA(start_iter, self.total_iter)

    def reset_start_time(self) -> None:
        self.eta = ETA(self.eta.start_iter, self.total_iter)

    def __call__(self, log_vars: Dict[str, Any]) -> None:
        log_vars = dict(log_vars)
        epoch, it, lrs = log_vars.pop('epoch'), log_vars.pop('iter'), log_vars.pop('lrs')
        it_time = log_vars.pop('time', self.eta.tick())
        log_vars.pop('data_time', None)
        get_logger().info(format_log(epoch, it, lrs, log_vars, self.eta.eta_seconds(it), it_time))
        if self.tb_logger is not None:
            for k, v in log_vars.items():
                self.tb_logger.add_scalar(f'losses/{k}' if k.startswith('l_') else k, v, it)


def init_wandb_logger(opt: Dict[str, Any]) -> None:
    """Weights & Biases is not bundled: say so instead of failing deep inside a run."""
    get_logger().warning('logger.wandb is set but wandb logging is not supported here; TensorBoard is used')
