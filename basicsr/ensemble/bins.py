"""Joint value bins of EnsIR, shared by the weight estimation and the table lookup.

A sample is one (pixel, colour channel). Model m's value v_m falls in bin
``i_m = min(trunc(v_m / b), nb - 1)`` with ``nb = ceil(256 / b)`` (half-open bins [i b, (i + 1) b);
255 is in the last bin). The joint bin of the M values is the lexicographic (first model slowest) flat
index ``k = sum_m i_m * nb**(M - 1 - m)``, which is also the row of the dense weight table.
Values below 0 use the first bin (the official code only handles [0, 256)).
"""
import math
from typing import Dict, Optional

import torch

Tensor = torch.Tensor


def check_bin_width(bin_width: int) -> int:
    """Return ``bin_width`` as int or raise ValueError unless it is an integer in 1..256."""
    if isinstance(bin_width, bool) or not isinstance(bin_width, (int, float)) or int(bin_width) != bin_width:
        raise ValueError(f'bin_width: expected an integer in 1..256, got {bin_width!r}')
    if not 1 <= int(bin_width) <= 256:
        raise ValueError(f'bin_width: expected an integer in 1..256, got {bin_width}')
    return int(bin_width)


def bins_per_model(bin_width: int) -> int:
    """nb = ceil(256 / bin_width): number of value bins for one model."""
    return math.ceil(256 / bin_width)


def joint_bin_index(x: Tensor, bin_width: int, workspace: Optional[Dict[str, Tensor]] = None) -> Tensor:
    """Flat joint bin index of every sample.

    Args:
        x: (M, ...) float predictions of the M models, [0, 255] scale.
        bin_width: b in 1..256.
        workspace: optional dict of scratch tensors reused between calls (keys 'digits', 'index', 'long');
            large fresh allocations cost page faults that dominate this cheap computation, so callers that
            run it repeatedly (application) keep one. The result then lives in the workspace.
    Returns:
        (...) int64 tensor of k in [0, nb**M).
    """
    nb = bins_per_model(bin_width)
    num_models = x.shape[0]
    ws = workspace if workspace is not None else {}
    # trunc of the true quotient, as the official code; clamp folds values >= 256 and < 0 into the ends
    digits = torch.div(x, bin_width, rounding_mode='trunc', out=scratch_buffer(ws, 'digits', x.shape, x))
    digits.clamp_(0, nb - 1)
    if nb**num_models <= 2**(53 if x.dtype == torch.float64 else 24):
        # the index is an exact integer in the float type: build it there, convert once (fewer passes)
        index = digits[0]
        if num_models > 1:
            index = scratch_buffer(ws, 'index', x.shape[1:], x)
            torch.add(digits[1], digits[0], alpha=nb, out=index)
            for m in range(2, num_models):
                torch.add(digits[m], index, alpha=nb, out=index)
        return scratch_buffer(ws, 'long', x.shape[1:], x, torch.long).copy_(index)
    index = digits[0].long()
    for m in range(1, num_models):
        index = index.mul_(nb).add_(digits[m].long())
    return index


def scratch_buffer(ws: Dict[str, Tensor], key: str, shape: torch.Size, like: Tensor,
             dtype: Optional[torch.dtype] = None) -> Tensor:
    """A tensor of ``shape`` from the workspace, reusing its storage when it is large enough."""
    dtype = dtype or like.dtype
    buf = ws.get(key)
    if buf is None or buf.dtype != dtype or buf.device != like.device:
        buf = ws[key] = torch.empty(0, dtype=dtype, device=like.device)
    return buf.resize_(shape)
