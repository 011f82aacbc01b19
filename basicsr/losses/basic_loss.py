"""BasicSR's ``basicsr.losses.basic_loss`` names: the toolbox's pixel losses with BasicSR's signatures.

``L1Loss`` and ``MSELoss`` are the registered classes (``loss_weight``, ``reduction``, optional ``weight``
map; a weighted mean divides by the sum of the expanded weights, as BasicSR). ``CharbonnierLoss`` here has
BasicSR's form ``sqrt((pred - target)^2 + eps)`` with ``eps = 1e-12``; the registered ``CharbonnierLoss``
(``type: CharbonnierLoss`` in option files) is the MPRNet/Restormer form ``sqrt(d^2 + eps^2)``, so this class
passes ``sqrt(eps)`` to it: the same function, not a second implementation.
"""
import math

from basicsr.losses.pixel_loss import CharbonnierLoss as _SquaredEpsCharbonnier
from basicsr.losses.pixel_loss import L1Loss, MSELoss

__all__ = ['L1Loss', 'MSELoss', 'CharbonnierLoss']


class CharbonnierLoss(_SquaredEpsCharbonnier):
    """BasicSR's Charbonnier loss: mean of ``sqrt((pred - target)^2 + eps)`` (``eps`` added unsquared)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction, eps=math.sqrt(eps))
