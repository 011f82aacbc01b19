"""Training-free baseline ensembles: per-pixel average, ZZPM, per-pixel median.

Same interface and value scale as :class:`basicsr.ensemble.ensir.EnsIR` ((M, 3, H, W) or
(B, M, 3, H, W) float in [0, 255]); ``fit`` only checks the reference set and remembers M.
"""
from typing import Any, Optional

import torch

from basicsr.ensemble.base import DEFAULT_CHUNK_PIXELS, DEFAULT_CPU_THREADS, Ensembler
from basicsr.utils.registry import ENSEMBLE_REGISTRY

Tensor = torch.Tensor


@ENSEMBLE_REGISTRY.register()
class Average(Ensembler):
    """Per-pixel mean of the M predictions (the official ``avg``)."""

    def _combine(self, x: Tensor, ctx: Any) -> Tensor:
        return x.mean(0)


@ENSEMBLE_REGISTRY.register()
class ZZPM(Ensembler):
    """One weight per model and image: models closer to the consensus get more weight.

    ``MSE_m = mean over C, H, W of (x_m - mean_k x_k)^2`` and ``w = softmax_m(1 / (eps + MSE_m))``
    (official EnsIR ``zzpm``, eps = 1e-3 on the [0, 255] scale), output ``sum_m w_m x_m``.
    """

    def __init__(self, eps: float = 1e-3, chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
                 cpu_threads: Optional[int] = DEFAULT_CPU_THREADS) -> None:
        super().__init__(chunk_pixels, cpu_threads)
        self.eps = float(eps)

    def _prepare(self, x: Tensor) -> Tensor:
        """(M,) weights from the whole image (M, 3, HW), accumulated chunk by chunk."""
        sq_err = x.new_zeros(x.shape[0], dtype=torch.float64)
        for start in range(0, x.shape[-1], self.chunk_pixels):
            chunk = x[..., start:start + self.chunk_pixels]
            sq_err += (chunk - chunk.mean(0, keepdim=True)).pow(2).sum(dim=(1, 2), dtype=torch.float64)
        mse = (sq_err / x[0].numel()).to(x.dtype)
        return torch.softmax(1.0 / (self.eps + mse), dim=0)

    def _combine(self, x: Tensor, weights: Tensor) -> Tensor:
        return (x * weights[:, None, None]).sum(0)


@ENSEMBLE_REGISTRY.register()
class Median(Ensembler):
    """Per-pixel median of the M predictions; for even M the mean of the two middle values.

    (``torch.median`` returns the lower middle value for even M, which would favour darker models.)
    """

    def _combine(self, x: Tensor, ctx: Any) -> Tensor:
        m = x.shape[0]
        ordered = x.sort(dim=0).values
        if m % 2:
            return ordered[m // 2]
        return 0.5 * (ordered[m // 2 - 1] + ordered[m // 2])
