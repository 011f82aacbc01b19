"""BasicSR's ``ESRGANModel`` (``basicsr.models.esrgan_model``): SRGAN with the relativistic average GAN loss.

The generator's adversarial term is the mean of ``gan(D(gt) - mean D(out), fake)`` and ``gan(D(out) -
mean D(gt), real)``; the discriminator's real and fake terms are each relative to the mean of the other
kind and weighted 0.5 (BasicSR's order of forward passes, so seeded runs match it).
"""
from __future__ import annotations

from typing import Dict

import torch

from basicsr.models.srgan_model import SRGANModel
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class ESRGANModel(SRGANModel):
    """ESRGAN: SRGANModel with the relativistic average discriminator (RaGAN)."""

    def _generator_gan_loss(self, gan_gt: torch.Tensor) -> torch.Tensor:
        real_d_pred = self.net_d(gan_gt).detach()
        fake_g_pred = self.net_d(self.output)
        l_g_real = self.cri_gan(real_d_pred - torch.mean(fake_g_pred), False, is_disc=False)
        l_g_fake = self.cri_gan(fake_g_pred - torch.mean(real_d_pred), True, is_disc=False)
        return (l_g_real + l_g_fake) / 2

    def _discriminator_backward(self, loss_dict: Dict[str, torch.Tensor], gan_gt: torch.Tensor) -> None:
        fake_d_pred = self.net_d(self.output).detach()
        real_d_pred = self.net_d(gan_gt)
        l_d_real = self.cri_gan(real_d_pred - torch.mean(fake_d_pred), True, is_disc=True) * 0.5
        l_d_real.backward()
        fake_d_pred = self.net_d(self.output.detach())
        l_d_fake = self.cri_gan(fake_d_pred - torch.mean(real_d_pred.detach()), False, is_disc=True) * 0.5
        l_d_fake.backward()
        loss_dict['l_d_real'], loss_dict['l_d_fake'] = l_d_real, l_d_fake
        loss_dict['out_d_real'] = torch.mean(real_d_pred.detach())
        loss_dict['out_d_fake'] = torch.mean(fake_d_pred.detach())
