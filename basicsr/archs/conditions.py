"""Inputs a network takes besides the image, read from the data batch.

A network class that needs more than the degraded image lists the batch keys it takes as keyword arguments
in ``conditions`` (MiOIR's explicit-prompt networks: ``('task',)``, the task id that selects the prompt map).
The model, the inference pipeline and TLC's calibration pass all go through these helpers, so a new kind
of conditioning is one class attribute and, for calibration, one example here.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ['network_conditions', 'condition_kwargs', 'example_conditions', 'whole_image_inputs', 'repeat_for_pieces']

# a harmless value of each known condition for a batch of n, used where only shapes matter (TLC calibration)
_EXAMPLES: Dict[str, Callable[[int], Any]] = {'task': lambda n: torch.zeros(n, dtype=torch.long)}


def _unwrapped(net: Any, attribute: str) -> Any:
    while not hasattr(net, attribute) and isinstance(getattr(net, 'module', None), nn.Module):
        net = net.module
    return net


def network_conditions(net: Any) -> Tuple[str, ...]:
    """Batch keys ``net`` takes as keyword arguments (unwrapping DDP / ``.module`` wrappers)."""
    return tuple(getattr(_unwrapped(net, 'conditions'), 'conditions', ()))


def whole_image_inputs(net: Any, lq: Tensor, given: Mapping[str, Any]) -> Dict[str, Any]:
    """The inputs ``net`` derives from whole images ``lq`` (its ``whole_image_inputs``) that ``given`` lacks;
    {} for networks without any."""
    derive = getattr(_unwrapped(net, 'whole_image_inputs'), 'whole_image_inputs', None)
    if derive is None:
        return {}
    return {k: v for k, v in derive(lq).items() if k not in given}


def repeat_for_pieces(value: Any, images: int, pieces: int) -> Any:
    """A per-image input (first dimension ``images``) repeated for a batch of ``pieces`` tiles / crops of those
    images, in the order tiling and grids stack them (every image's first piece, then every image's second
    piece, ...); other values unchanged."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == images != pieces and pieces % images == 0:
        return value.repeat(pieces // images, *([1] * (value.dim() - 1)))
    return value


def condition_kwargs(net: Any, batch: Mapping[str, Any], where: str, device: Any = None,
                     single: bool = False, optional: Sequence[str] = ()) -> Dict[str, Any]:
    """The keyword arguments ``net`` needs from ``batch``; ``single``: ``batch`` is one dataset item (values
    get a batch dimension); ``optional``: keys that may be missing (something else provides them, e.g. a
    task classifier). Raises a KeyError naming the key when the data does not provide it."""
    out: Dict[str, Any] = {}
    for key in network_conditions(net):
        if key not in batch and key in optional:
            continue
        if key not in batch:
            raise KeyError(f"{type(net).__name__} needs '{key}' from the data ({where}), which the dataset does "
                           f"not provide; use a dataset that labels its samples (MultiTaskDataset gives 'task' "
                           f"from each task block's 'label'; for 'task' at test time, test.task_classifier can predict it)")
        value = batch[key]
        if single or not isinstance(value, Tensor):
            value = torch.as_tensor(value).reshape(-1)
        out[key] = value.to(device) if device is not None else value
    return out


def example_conditions(net: Any, batch_size: int, device: Any = None) -> Dict[str, Any]:
    """Example keyword arguments for every condition of ``net`` (shape-only uses such as calibration)."""
    out = {}
    for key in network_conditions(net):
        if key not in _EXAMPLES:
            raise KeyError(f"{type(net).__name__} takes '{key}', which has no example value; add one to "
                           f'basicsr.archs.conditions._EXAMPLES')
        value = _EXAMPLES[key](batch_size)
        out[key] = value.to(device) if device is not None and isinstance(value, Tensor) else value
    return out
