"""Distributed helpers: torchrun-style initialisation (NCCL on CUDA, gloo on CPU) and collectives."""
from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Tuple

import torch
import torch.distributed as dist


def init_dist_from_env(backend: str | None = None, timeout_minutes: int = 30) -> Tuple[int, int]:
    """Initialise the default process group from torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK).

    Returns ``(rank, world_size)``; ``(0, 1)`` without torchrun. The backend defaults to NCCL when CUDA is
    available and gloo otherwise; each rank uses the GPU ``LOCAL_RANK`` (not ``RANK``, BasicSR's bug).
    """
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    use_cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if use_cuda else 'gloo')
    if backend == 'nccl' and not use_cuda:
        backend = 'gloo'
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    if (os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True' and int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', 0))
            and os.environ.get('RANK') == '0'):
        from basicsr.utils.logger import get_logger
        get_logger().warning('torchrun shares its rendezvous store with the workers, so a restarted group may fail '
                             'to connect (pytorch issue 135712): use ./train.sh, or set '
                             'TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 and a c10d rendezvous for torchrun --max-restarts')
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return dist.get_rank(), dist.get_world_size()


def get_dist_info() -> Tuple[int, int]:
    """``(rank, world_size)`` of the current process group, ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return get_dist_info()[0] == 0


def barrier() -> None:
    if get_dist_info()[1] > 1:
        dist.barrier()


_BOUNDED_GROUPS: Dict[float, Any] = {}


def bounded_barrier(timeout_minutes: float, what: str) -> None:
    """A barrier that gives up after ``timeout_minutes`` with a message naming ``what`` the ranks waited for.

    ``monitored_barrier`` on a gloo group whose own timeout is ``timeout_minutes`` (the default group's would
    bound the other ranks' wait for rank 0's answer), created on the first call, which every rank must reach at
    the same point; it works beside NCCL too. A rank that died or hangs raises ``RuntimeError`` on the others
    instead of a wait as long as the process-group timeout.
    """
    world = get_dist_info()[1]
    if world == 1:
        return
    timeout = datetime.timedelta(minutes=timeout_minutes)
    if timeout_minutes not in _BOUNDED_GROUPS:
        _BOUNDED_GROUPS[timeout_minutes] = dist.new_group(backend='gloo', timeout=timeout)
    try:
        dist.monitored_barrier(group=_BOUNDED_GROUPS[timeout_minutes], timeout=timeout)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f'rank {get_dist_info()[0]} waited for {what} and gave up (a rank died or took longer '
                           f'than {timeout_minutes:g} min): {first}') from exc


def all_reduce_mean(values: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Average scalar tensors over ranks (every rank gets the result)."""
    if not values:
        return {}
    names = list(values)
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names])
    if get_dist_info()[1] > 1:
        device = stacked.device
        if dist.get_backend() == 'nccl' and device.type != 'cuda':
            stacked = stacked.cuda()
        dist.all_reduce(stacked)
        stacked = stacked / get_dist_info()[1]
    return {n: float(v) for n, v in zip(names, stacked.cpu())}


def all_gather_objects(obj: Any) -> List[Any]:
    """Gather a picklable object from every rank (list indexed by rank)."""
    world = get_dist_info()[1]
    if world == 1:
        return [obj]
    out: List[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable; the others' argument is ignored)."""
    if get_dist_info()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup() -> None:
    _BOUNDED_GROUPS.clear()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
