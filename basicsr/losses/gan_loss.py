"""GAN losses with BasicSR's names and behaviour (``basicsr.losses.gan_loss``).

``GANLoss(gan_type)(pred, target_is_real, is_disc)``: 'vanilla' (BCE on logits), 'lsgan' (MSE to the label),
'wgan' (-mean for real, mean for fake), 'wgan_softplus' (softplus(-x) / softplus(x)) and 'hinge' (discriminator:
mean relu(1 -/+ x); generator: -mean x). ``loss_weight`` scales the generator's loss only, as in BasicSR.
"""
import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import autograd, nn

from basicsr.utils.registry import LOSS_REGISTRY


def _wgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return -pred.mean() if real else pred.mean()


def _wgan_softplus(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.softplus(-pred).mean() if real else F.softplus(pred).mean()


# gan_type -> (criterion on (pred, target), whether the target is a label tensor rather than the bool)
_CRITERIA: Dict[str, Tuple[Callable[[], Any], bool]] = {
    'vanilla': (nn.BCEWithLogitsLoss, True),
    'lsgan': (nn.MSELoss, True),
    'wgan': (lambda: _wgan, False),
    'wgan_softplus': (lambda: _wgan_softplus, False),
    'hinge': (nn.ReLU, False),
}


@LOSS_REGISTRY.register()
class GANLoss(nn.Module):
    """Adversarial loss of discriminator outputs (logits of any shape).

    Args:
        gan_type: 'vanilla', 'lsgan', 'wgan', 'wgan_softplus' or 'hinge'.
        real_label_val, fake_label_val: targets of 'vanilla'/'lsgan'.
        loss_weight: multiplies the generator's loss (``is_disc=False``).
    """

    def __init__(self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gan_type not in _CRITERIA:
            raise ValueError(f"GANLoss: gan_type must be one of {sorted(_CRITERIA)}, got {gan_type!r}")
        self.gan_type = gan_type
        self.real_label_val, self.fake_label_val = real_label_val, fake_label_val
        self.loss_weight = loss_weight
        make, self._label_tensor = _CRITERIA[gan_type]
        self.loss = make()

    def get_target_label(self, input: torch.Tensor, target_is_real: bool) -> Union[torch.Tensor, bool]:
        """A tensor of the real/fake label for 'vanilla'/'lsgan', the bool itself otherwise."""
        if not self._label_tensor:
            return target_is_real
        return input.new_ones(input.size()) * (self.real_label_val if target_is_real else self.fake_label_val)

    def forward(self, input: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        if self.gan_type == 'hinge':
            loss = self.loss(1 + (-input if target_is_real else input)).mean() if is_disc else -input.mean()
        else:
            loss = self.loss(input, self.get_target_label(input, target_is_real))
        return loss if is_disc else loss * self.loss_weight


@LOSS_REGISTRY.register()
class MultiScaleGANLoss(GANLoss):
    """GANLoss averaged over a list of discriminator outputs (the last entry of nested lists)."""

    def forward(self, input: Union[torch.Tensor, List[Any]], target_is_real: bool,
                is_disc: bool = False) -> torch.Tensor:
        if not isinstance(input, list):
            return super().forward(input, target_is_real, is_disc)
        preds = [p[-1] if isinstance(p, list) else p for p in input]
        return sum(super(MultiScaleGANLoss, self).forward(p, target_is_real, is_disc).mean() for p in preds) / len(preds)


def r1_penalty(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1 regulariser: mean over the batch of the squared gradient norm of D at real images."""
    grad = autograd.grad(outputs=real_pred.sum(), inputs=real_img, create_graph=True)[0]
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def g_path_regularize(fake_img: torch.Tensor, latents: torch.Tensor, mean_path_length: Any,
                      decay: float = 0.01) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regulariser: (penalty, mean path length, updated running mean)."""
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    grad = autograd.grad(outputs=(fake_img * noise).sum(), inputs=latents, create_graph=True)[0]
    lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    path_mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    return (lengths - path_mean).pow(2).mean(), lengths.detach().mean(), path_mean.detach()


def gradient_penalty_loss(discriminator: nn.Module, real_data: torch.Tensor, fake_data: torch.Tensor,
                          weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """WGAN-GP: mean of (||grad D(x)||_2 - 1)^2 at random interpolates of real and fake (optionally weighted)."""
    alpha = torch.rand(real_data.size(0), 1, 1, 1, device=real_data.device, dtype=real_data.dtype)
    inter = (alpha * real_data + (1. - alpha) * fake_data).detach().requires_grad_(True)
    out = discriminator(inter)
    grad = autograd.grad(outputs=out, inputs=inter, grad_outputs=torch.ones_like(out), create_graph=True,
                         retain_graph=True, only_inputs=True)[0]
    if weight is not None:
        grad = grad * weight
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    return penalty / torch.mean(weight) if weight is not None else penalty
