"""What every loss shares: ``loss_weight``, ``reduction`` and optional element weights."""
import functools
from typing import Any, Callable, Optional

import torch
from torch import nn

REDUCTIONS = ('none', 'mean', 'sum')


def weight_reduce(loss: torch.Tensor, weight: Optional[torch.Tensor], reduction: str) -> torch.Tensor:
    """Multiply an element-wise loss by ``weight`` and reduce it.

    Args:
        loss: element-wise loss, e.g. (B, C, H, W).
        weight: None or a tensor broadcastable to ``loss`` ((B, 1, H, W) masks are common).
        reduction: 'none' returns the weighted map; 'sum' its sum; 'mean' the weighted mean
            sum(w * loss) / sum(w) (BasicSR's convention: the mean over the weighted region).
    """
    if weight is not None:
        try:
            weight = weight.expand_as(loss)
        except RuntimeError as exc:
            raise ValueError(f'loss weight of shape {tuple(weight.shape)} does not broadcast to the loss '
                             f'of shape {tuple(loss.shape)}') from exc
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if weight is None:
        return loss.mean()
    return loss.sum() / weight.sum().clamp_min(1e-12)


class WeightedLoss(nn.Module):
    """Base for the losses here: checks and stores ``loss_weight`` and ``reduction``.

    Subclasses return ``self.loss_weight * <reduced loss>`` from ``forward(pred, target, weight=None, **kw)``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {', '.join(REDUCTIONS)}; "
                             f'got {reduction!r}')
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, reduction={self.reduction!r}'


def check_same_shape(pred: torch.Tensor, target: torch.Tensor, owner: str) -> None:
    """Raise ValueError naming ``owner`` when prediction and target differ in shape."""
    if pred.shape != target.shape:
        raise ValueError(f'{owner}: pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}')


# ---------------------------------------------------------------------------------------------- BasicSR's names
def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """BasicSR's ``reduce_loss``: 'none', 'mean' or 'sum' of an element-wise loss."""
    return weight_reduce(loss, None, reduction)


def weight_reduce_loss(loss: torch.Tensor, weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """BasicSR's ``weight_reduce_loss`` (see :func:`weight_reduce`)."""
    return weight_reduce(loss, weight, reduction)


def weighted_loss(loss_func: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """BasicSR's decorator: ``loss_func(pred, target, **kw)`` gives an element-wise loss; the wrapped function
    takes ``weight=None, reduction='mean'`` too and reduces it with :func:`weight_reduce`."""
    @functools.wraps(loss_func)
    def wrapper(pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                reduction: str = 'mean', **kwargs: Any) -> torch.Tensor:
        return weight_reduce(loss_func(pred, target, **kwargs), weight, reduction)
    return wrapper
