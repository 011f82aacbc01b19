"""Losses on degradation embeddings: UniRestorer's centre likelihood (L_dg) and a supervised contrastive loss.

Both take integer labels rather than a ground-truth image, so the models that use them pass the labels
themselves (:class:`~basicsr.models.unirestorer_model.UniRestorerModel`,
:class:`~basicsr.models.degradation_encoder_model.DegradationEncoderModel`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

Tensor = torch.Tensor


@LOSS_REGISTRY.register()
class CentreNLLLoss(nn.Module):
    """UniRestorer's ``L_dg``: Gaussian negative log-likelihood of the leaf centre under ``N(mu, exp(logvar))``.

    ``loss_weight * mean_b 0.5 * sum_d [(c_b - mu_b)^2 / exp(logvar_b) + logvar_b]`` with ``c_b`` the centre
    of sample b's leaf (paper: ``E[||u - e_d||^2 / (2 e_g) + log(e_g) / 2]``, e_g = exp(logvar)). A large
    ``logvar`` is cheap where ``mu`` cannot reach the centre: the uncertainty the level router reads.
    ``forward(mu, logvar, centres)``: all ``(B, D)``.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, mu: Tensor, logvar: Tensor, centres: Tensor) -> Tensor:
        if mu.shape != logvar.shape or mu.shape != centres.shape or mu.dim() != 2:
            raise ValueError(f'CentreNLLLoss: mu, logvar and centres must all be (B, D), got {tuple(mu.shape)}, '
                             f'{tuple(logvar.shape)}, {tuple(centres.shape)}')
        mu, logvar, centres = mu.float(), logvar.float(), centres.float()
        per_sample = 0.5 * ((centres - mu) ** 2 / logvar.exp() + logvar).sum(dim=1)
        return self.loss_weight * per_sample.mean()


@LOSS_REGISTRY.register()
class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020, "L_out"): embeddings of the same label attract.

    Features are L2-normalised; for every anchor with at least one positive (same label, other sample),
    ``-mean_p log(exp(z_a . z_p / T) / sum_{k != a} exp(z_a . z_k / T))``; averaged over those anchors
    (0 when no anchor has a positive). ``forward(features (B, D), labels (B,))``.
    """

    def __init__(self, temperature: float = 0.1, loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'SupConLoss: temperature must be positive, got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(f'SupConLoss: features must be (B, D) and labels (B,), got {tuple(features.shape)} '
                             f'and {tuple(labels.shape)}')
        z = F.normalize(features.float(), dim=1)
        sim = z @ z.t() / self.temperature
        self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
        log_prob = sim - torch.logsumexp(sim.masked_fill(self_mask, float('-inf')), dim=1, keepdim=True)
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        count = positives.sum(1)
        has = count > 0
        if not bool(has.any()):
            return features.sum() * 0
        per_anchor = -(log_prob * positives).sum(1)[has] / count[has]
        return self.loss_weight * per_anchor.mean()
