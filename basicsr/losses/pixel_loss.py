"""Pixel losses: L1, MSE, Charbonnier, PSNR loss and DSRIR's uncertainty-weighted L1.

All take (B, C, H, W) tensors (float, any range; the toolbox uses [0, 1]) and return
``loss_weight * reduced loss``. ``weight`` is an optional element weight broadcastable to the loss.
"""
import math
from typing import Optional

import torch

from basicsr.losses.loss_util import WeightedLoss, check_same_shape, weight_reduce
from basicsr.utils.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class L1Loss(WeightedLoss):
    """Mean absolute error |pred - target|."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'L1Loss')
        return self.loss_weight * weight_reduce((pred - target).abs(), weight, self.reduction)


@LOSS_REGISTRY.register()
class MSELoss(WeightedLoss):
    """Mean squared error (pred - target)^2."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'MSELoss')
        return self.loss_weight * weight_reduce((pred - target) ** 2, weight, self.reduction)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Element-wise sqrt((pred - target)^2 + eps^2), MPRNet's and DSRIR's form (eps squared inside)."""
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps)


@LOSS_REGISTRY.register()
class CharbonnierLoss(WeightedLoss):
    """Charbonnier (smooth L1): mean of sqrt((pred - target)^2 + eps^2).

    eps = 1e-3 as in MPRNet/DSRIR (``losses.py``: ``mean(sqrt(d*d + eps*eps))``). Upstream BasicSR adds eps
    unsquared with eps = 1e-12, which equals eps = 1e-6 here; the difference is below 1e-6 per pixel.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', eps: float = 1e-3) -> None:
        super().__init__(loss_weight, reduction)
        if eps <= 0:
            raise ValueError(f'CharbonnierLoss: eps must be > 0, got {eps}')
        self.eps = float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'CharbonnierLoss')
        return self.loss_weight * weight_reduce(charbonnier(pred, target, self.eps), weight, self.reduction)


# BT.601 luma weights on [0, 1] RGB, giving Y*255 - 16 (NAFNet/HINet PSNRLoss ``toY``)
_Y_COEFFS = (65.481, 128.553, 24.966)


@LOSS_REGISTRY.register()
class PSNRLoss(WeightedLoss):
    """Negative PSNR (peak 1) of each image: (10 / ln 10) * ln(MSE_{C,H,W} + 1e-8), as NAFNet, HINet and DSRIR.

    Minimising it maximises the mean per-image PSNR. Reduction is over the batch: 'mean' (the official
    form), 'sum', or 'none' for a (B,) tensor. With ``weight``, MSE is the weighted mean per image.
    ``to_y`` measures the BT.601 Y channel (Y / 255, offset included) of (B, 3, H, W) RGB inputs.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', to_y: bool = False) -> None:
        super().__init__(loss_weight, reduction)
        self.to_y = to_y
        self.register_buffer('y_coeffs', torch.tensor(_Y_COEFFS).view(1, 3, 1, 1), persistent=False)

    def _luma(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[1] != 3:
            raise ValueError(f'PSNRLoss(to_y=True) needs (B, 3, H, W) RGB inputs, got {tuple(img.shape)}')
        return ((img * self.y_coeffs.to(img.dtype)).sum(dim=1, keepdim=True) + 16.0) / 255.0

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'PSNRLoss')
        if pred.dim() != 4:
            raise ValueError(f'PSNRLoss expects (B, C, H, W) tensors, got {tuple(pred.shape)}')
        if self.to_y:
            pred, target = self._luma(pred), self._luma(target)
        sq = (pred - target) ** 2
        if weight is None:
            mse = sq.mean(dim=(1, 2, 3))
        else:
            w = weight.expand_as(sq)
            mse = (sq * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp_min(1e-12)
        per_image = (10.0 / math.log(10.0)) * torch.log(mse + 1e-8)
        return self.loss_weight * weight_reduce(per_image, None, self.reduction)


@LOSS_REGISTRY.register()
class UncertaintyLoss(WeightedLoss):
    """DSRIR's uncertainty loss: mean |exp(-s) * pred - exp(-s) * target| + 2 * mean(s).

    ``s = log_var`` is the network's log-variance map for this output ((B, C, H, W) or (B, 1, H, W)).
    Large s down-weights the L1 error where the network is unsure; the 2*s term keeps s from growing
    without bound. 'none' returns the map |exp(-s)(pred - target)| + 2 s, whose mean is the official loss.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                log_var: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'UncertaintyLoss')
        if log_var is None:
            raise ValueError("UncertaintyLoss needs log_var= (the network's log-variance output, "
                             "e.g. 'var:1' for 'stage:1')")
        try:
            log_var = log_var.expand_as(pred)
        except RuntimeError as exc:
            raise ValueError(f'UncertaintyLoss: log_var of shape {tuple(log_var.shape)} does not broadcast to '
                             f'pred of shape {tuple(pred.shape)}') from exc
        scale = torch.exp(-log_var)
        elementwise = (scale * pred - scale * target).abs() + 2.0 * log_var
        return self.loss_weight * weight_reduce(elementwise, weight, self.reduction)
