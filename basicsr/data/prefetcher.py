"""Batch prefetchers: ``next()`` returns the next batch (a dict) or None at the end of the epoch.

Both report every batch they hand out to an ``EnlargedSampler`` behind the loader (``sampler.record``),
so the sampler's ``state_dict`` is the exact resume position, and ``reset()`` after a change of patch size
or epoch restarts the loader exactly at the next unconsumed sample.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch.utils.data import DataLoader


def _batch_size(batch: Dict[str, Any]) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            return int(value.shape[0])
        if isinstance(value, (list, tuple)):
            return len(value)
    return 0


class CPUPrefetcher:
    """Plain iteration over a DataLoader (its workers already prefetch in the background)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self._sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', None) or loader.sampler
        self._iter = None

    def _record(self, batch: Dict[str, Any]) -> None:
        if hasattr(self._sampler, 'record'):
            self._sampler.record(_batch_size(batch))

    def next(self) -> Optional[Dict[str, Any]]:
        if self._iter is None:
            self._iter = iter(self.loader)
        try:
            batch = next(self._iter)
        except StopIteration:
            return None
        self._record(batch)
        return batch

    def reset(self) -> None:
        """Start a new pass; it begins at the sampler's current position."""
        self._iter = None


class CUDAPrefetcher(CPUPrefetcher):
    """Copies the following batch to ``device`` on a side stream while the current one is being used.

    Needs ``pin_memory: true`` for the copy to overlap. Tensors handed out are recorded on the consumer's
    stream so their memory is not reused while still in use.
    """

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        super().__init__(loader)
        self.device = torch.device(device)
        if self.device.type != 'cuda':
            raise ValueError(f'CUDAPrefetcher needs a CUDA device, got {self.device}; use CPUPrefetcher')
        self.stream = torch.cuda.Stream(device=self.device)
        self._next: Optional[Dict[str, Any]] = None
        self._started = False

    def _preload(self) -> None:
        try:
            batch = next(self._iter)
        except StopIteration:
            self._next = None
            return
        with torch.cuda.stream(self.stream):
            self._next = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                          for k, v in batch.items()}

    def next(self) -> Optional[Dict[str, Any]]:
        if not self._started:
            self._iter = iter(self.loader)
            self._started = True
            self._preload()
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        batch = self._next
        if batch is None:
            return None
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                value.record_stream(torch.cuda.current_stream(self.device))
        self._record(batch)
        self._preload()
        return batch

    def reset(self) -> None:
        self._iter = None
        self._next = None
        self._started = False
