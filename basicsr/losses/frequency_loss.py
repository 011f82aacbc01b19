"""Losses on image frequency content: MPRNet's Laplacian edge loss and the FFT L1 loss."""
from typing import Optional

import torch
import torch.nn.functional as F

from basicsr.losses.loss_util import WeightedLoss, check_same_shape, weight_reduce
from basicsr.losses.pixel_loss import charbonnier
from basicsr.utils.registry import LOSS_REGISTRY

# 5-tap binomial-like smoothing kernel of MPRNet's edge loss (Burt-Adelson pyramid, a = 0.4)
_PYRAMID_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def laplacian_band(img: torch.Tensor, kernel_2d: torch.Tensor) -> torch.Tensor:
    """One Laplacian-pyramid level at full size: img - G(up(down(G(img)))).

    G: per-channel 5x5 smoothing with replicated borders; down: keep every 2nd row/column (from 0);
    up: put those samples back at their positions, zeros elsewhere, times 4 (to restore the mean).
    """
    c = img.shape[1]
    weight = kernel_2d.to(img.dtype).expand(c, 1, *kernel_2d.shape)
    pad = kernel_2d.shape[-1] // 2

    def smooth(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode='replicate'), weight, groups=c)

    blurred = smooth(img)
    upsampled = torch.zeros_like(blurred)
    upsampled[:, :, ::2, ::2] = 4 * blurred[:, :, ::2, ::2]
    return img - smooth(upsampled)


@LOSS_REGISTRY.register()
class EdgeLoss(WeightedLoss):
    """MPRNet's edge loss: Charbonnier (eps 1e-3) between the Laplacian bands of pred and target.

    MPRNet trains with ``Charbonnier + 0.05 * EdgeLoss`` on every stage, so set ``loss_weight: 0.05``.
    Works for any number of channels (the official code fixes 3).
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', eps: float = 1e-3) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = float(eps)
        taps = torch.tensor(_PYRAMID_TAPS, dtype=torch.float64)  # cast to the input dtype when used
        self.register_buffer('kernel', torch.outer(taps, taps), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'EdgeLoss')
        if pred.dim() != 4:
            raise ValueError(f'EdgeLoss expects (B, C, H, W) tensors, got {tuple(pred.shape)}')
        band = charbonnier(laplacian_band(pred, self.kernel), laplacian_band(target, self.kernel), self.eps)
        return self.loss_weight * weight_reduce(band, weight, self.reduction)


@LOSS_REGISTRY.register()
class FFTLoss(WeightedLoss):
    """L1 distance between the 2-D Fourier spectra of pred and target (MIMO-UNet's frequency loss).

    ``torch.fft.fft2`` over (H, W), unnormalised; real and imaginary parts are stacked as a last axis of
    size 2 and compared with L1, so 'none' returns (B, C, H, W, 2) and 'mean' averages over all of it.
    MIMO-UNet uses ``loss_weight: 0.1`` next to an L1 loss. Some forks use ``rfft2`` (half spectrum),
    which gives a different value; this is the full-spectrum form. ``weight`` must broadcast to
    (B, C, H, W, 2).
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'FFTLoss')
        pred_f, target_f = _spectrum(pred), _spectrum(target)
        return self.loss_weight * weight_reduce((pred_f - target_f).abs(), weight, self.reduction)


def _spectrum(img: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., H, W, 2) real/imaginary parts of fft2; half precision is lifted to float32."""
    img = img.to(torch.promote_types(img.dtype, torch.float32))
    return torch.view_as_real(torch.fft.fft2(img, dim=(-2, -1)))
