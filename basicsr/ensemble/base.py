"""Common interface of the ensemblers and the input checks they share.

Every ensembler combines the outputs of M restoration models of one scene into one image. Inputs and
outputs are float tensors on the EnsIR scale: RGB, values in [0, 255] (the official EnsIR code reads
8-bit images and multiplies by 255). Work is done in chunks of pixels so memory stays bounded for
large images.
"""
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

from abc import ABC, abstractmethod

import torch

Tensor = torch.Tensor
PredStack = Union[Tensor, Sequence[Tensor]]

# Pixels per chunk: with M = 5 models a chunk needs a few tens of MB of temporaries.
DEFAULT_CHUNK_PIXELS = 1 << 20
# Intra-op CPU threads for ensembling. The work is a sequence of cheap memory-bound passes; on the 2-core
# test machine, under load, 2 threads made EnsIR fitting 10-20x and application ~20x slower than 1
# thread (OpenMP synchronisation), as the official code's 20.5 s vs 2.0 s (ensir.md section 11.17).
DEFAULT_CPU_THREADS = 1


@contextmanager
def cpu_threads(num_threads: Optional[int], device: torch.device) -> Iterator[None]:
    """Run the block with ``num_threads`` intra-op threads on CPU (None or a CUDA device: unchanged)."""
    if num_threads is None or device.type != 'cpu' or torch.get_num_threads() == num_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_stack(preds: PredStack, what: str = 'preds') -> Tuple[Tensor, bool]:
    """Return ``preds`` as a (B, M, 3, H, W) float tensor and whether the input had no batch dimension.

    Accepts a (M, 3, H, W) tensor, a (B, M, 3, H, W) tensor or a sequence of M (3, H, W) tensors.
    Raises ValueError naming the expected and the given shape.
    """
    if isinstance(preds, (list, tuple)):
        if len(preds) == 0:
            raise ValueError(f'{what}: expected a (M, 3, H, W) tensor or M images, got an empty sequence')
        shapes = {tuple(p.shape) for p in preds}
        if len(shapes) != 1:
            raise ValueError(f'{what}: all model outputs must have the same shape, got {sorted(shapes)}')
        preds = torch.stack(list(preds), 0)
    if not isinstance(preds, Tensor):
        raise ValueError(f'{what}: expected a float tensor (M, 3, H, W) or (B, M, 3, H, W), '
                         f'got {type(preds).__name__}')
    if preds.dim() not in (4, 5):
        raise ValueError(f'{what}: expected a tensor of shape (M, 3, H, W) or (B, M, 3, H, W), '
                         f'got shape {tuple(preds.shape)}')
    if preds.shape[-3] != 3:
        raise ValueError(f'{what}: expected 3 colour channels (RGB) in dimension -3, got {preds.shape[-3]} '
                         f'(shape {tuple(preds.shape)})')
    if preds.dtype not in (torch.float32, torch.float64):
        preds = preds.float()
    check_finite(preds, what)
    single = preds.dim() == 4
    return (preds.unsqueeze(0) if single else preds), single


def device_of(preds: Union[PredStack, Sequence[Tensor]]) -> torch.device:
    """Device of a prediction tensor or of the first tensor of a sequence (CPU when there is none)."""
    first = preds if isinstance(preds, Tensor) else (preds[0] if len(preds) else None)
    return first.device if isinstance(first, Tensor) else torch.device('cpu')


def check_finite(x: Tensor, what: str) -> None:
    """Raise ValueError if ``x`` holds NaN (or infinite) values; they have no bin and no weight."""
    if bool(torch.isfinite(x.sum())):  # one cheap reduction; NaN and inf propagate into the sum
        return
    n_nan = int(torch.isnan(x).sum())
    n_inf = int(torch.isinf(x).sum())
    if n_nan or n_inf:
        raise ValueError(f'{what}: expected finite values in [0, 255], got {n_nan} NaN and {n_inf} infinite '
                         f'values (shape {tuple(x.shape)})')


def check_num_models(expected: Optional[int], given: int, where: str) -> None:
    """Raise ValueError when the model count differs from the one the ensembler was fitted/loaded with."""
    if expected is not None and expected != given:
        raise ValueError(f'model count mismatch: {where} has M = {expected} models, got predictions of '
                         f'M = {given} models; give the {expected} models it was fitted for (same order) or fit '
                         f'it on these {given}')


class Ensembler(ABC):
    """Base class: ``fit`` on a reference set (a no-op for training-free baselines), ``apply`` to predictions.

    Subclasses implement :meth:`_combine`, which receives one image's predictions flattened to
    (M, 3, n) for a chunk of n pixels plus whatever :meth:`_prepare` computed from the whole image.
    """

    source: Optional[str] = None  # the file the ensembler was loaded from (named in errors)

    def describe(self) -> str:
        """The ensembler's name and, when loaded from a file, the file (for error messages)."""
        return type(self).__name__ + (f' table {self.source}' if self.source else '')

    def __init__(self, chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
                 cpu_threads: Optional[int] = DEFAULT_CPU_THREADS) -> None:
        if int(chunk_pixels) < 1:
            raise ValueError(f'chunk_pixels must be a positive number of pixels, got {chunk_pixels}')
        if cpu_threads is not None and int(cpu_threads) < 1:
            raise ValueError(f'cpu_threads must be a positive number or None (torch default), got {cpu_threads}')
        self.chunk_pixels = int(chunk_pixels)
        self.cpu_threads = None if cpu_threads is None else int(cpu_threads)
        self.num_models: Optional[int] = None

    def fit(self, preds: Sequence[Tensor], gts: Sequence[Tensor]) -> 'Ensembler':
        """Training-free methods only check the reference set and remember M; returns self."""
        self.num_models = check_reference_set(preds, gts)[0]
        return self

    @torch.no_grad()
    def apply(self, preds: PredStack) -> Tensor:
        """Combine predictions (M, 3, H, W) -> (3, H, W), or (B, M, 3, H, W) -> (B, 3, H, W); [0, 255] scale."""
        with cpu_threads(self.cpu_threads, device_of(preds)):  # the input checks reduce over the input too
            x, single = as_stack(preds)
            check_num_models(self.num_models, x.shape[1], self.describe())
            return self._apply_stack(x, single)

    def _apply_stack(self, x: Tensor, single: bool) -> Tensor:
        b, m, c, h, w = x.shape
        flat = x.reshape(b, m, c, h * w)
        outs = []
        for i in range(b):
            ctx = self._prepare(flat[i])
            if h * w <= self.chunk_pixels:
                outs.append(self._combine(flat[i], ctx))
                continue
            out = x.new_empty(c, h * w)
            for start in range(0, h * w, self.chunk_pixels):
                stop = min(start + self.chunk_pixels, h * w)
                out[:, start:stop] = self._combine(flat[i, :, :, start:stop], ctx)
            outs.append(out)
        out = outs[0].view(c, h, w)
        return out if single else torch.stack(outs).view(b, c, h, w)

    def _prepare(self, x: Tensor) -> Any:
        """Per-image quantities needed before combining, from the whole image (M, 3, HW). Default: none."""
        return None

    @abstractmethod
    def _combine(self, x: Tensor, ctx: Any) -> Tensor:
        """Combine one chunk (M, 3, n) -> (3, n); each ensembler defines its rule here."""



def _check_rgb(t: Any, what: str, layout: str, channel_dim: int) -> None:
    """ValueError naming ``what`` unless ``t`` is a tensor of ``layout`` with 3 channels."""
    dims = layout.count(',') + 1
    if not isinstance(t, Tensor) or t.dim() != dims:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f'{what}: expected a {layout} tensor, got {shape}')
    if t.shape[channel_dim] != 3:
        raise ValueError(f'{what}: expected 3 colour channels (RGB), got {t.shape[channel_dim]} '
                         f'(shape {tuple(t.shape)})')

def check_reference_set(preds: Sequence[Tensor], gts: Sequence[Tensor]) -> Tuple[int, int]:
    """Validate a reference set; return (M, number of images).

    preds: sequence over images of (M, 3, H, W) tensors; gts: sequence of (3, H, W) tensors, same sizes.
    """
    if isinstance(preds, Tensor) and preds.dim() == 4:
        raise ValueError('preds: expected a sequence over reference images of (M, 3, H, W) tensors, got one '
                         f'4-D tensor of shape {tuple(preds.shape)}; wrap a single image as [preds]')
    if len(preds) == 0 or len(gts) == 0:
        raise ValueError(f'empty reference set: expected at least one image with ground truth, got '
                         f'{len(preds)} prediction stacks and {len(gts)} ground-truth images')
    if len(preds) != len(gts):
        raise ValueError(f'reference set: expected one ground truth per prediction stack, got {len(preds)} '
                         f'prediction stacks and {len(gts)} ground-truth images')
    num_models = None
    for i, (p, g) in enumerate(zip(preds, gts)):
        _check_rgb(p, f'preds[{i}]', '(M, 3, H, W)', channel_dim=1)
        _check_rgb(g, f'gts[{i}]', '(3, H, W)', channel_dim=0)
        if tuple(p.shape[-2:]) != tuple(g.shape[-2:]):
            raise ValueError(f'reference image {i}: models and ground truth must have the same size, got '
                             f'predictions {tuple(p.shape[-2:])} and ground truth {tuple(g.shape[-2:])}')
        if num_models is None:
            num_models = p.shape[0]
        elif p.shape[0] != num_models:
            raise ValueError(f'reference image {i}: expected M = {num_models} models as in image 0, got '
                             f'{p.shape[0]}')
        check_finite(p, f'preds[{i}]')
        check_finite(g, f'gts[{i}]')
    return num_models, len(preds)
