"""BasicSR's ``SRGANModel`` (``basicsr.models.srgan_model``): generator + discriminator training.

Each iteration (BasicSR's schedule): when ``current_iter % net_d_iters == 0`` and ``current_iter >
net_d_init_iters`` the generator takes a step on ``pixel_opt`` + ``perceptual_opt`` (+ style) + ``gan_opt``
(with the discriminator frozen); then the discriminator always takes a step on real (``gt``) and fake
(detached output) images. Options: ``network_d``, ``path.{pretrain_network_d, param_key_d, strict_load_d}``,
``train.{optim_d, gan_opt, net_d_iters, net_d_init_iters}``. Checkpoints hold ``net_d`` and ``optimizer_d``
too (every ``net_*`` and every optimiser of the model), so resumes are exact and DDP wraps both networks.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict

import torch

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class SRGANModel(SRModel):
    """SRModel plus a discriminator ``net_d`` and an adversarial loss (SRGAN's standard GAN objective)."""

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self._setup_ema()
        self.net_d = self.model_to_device(build_network(self.opt['network_d']))
        self.print_network(self.net_d)
        path = self.opt.get('path') or {}
        if path.get('pretrain_network_d'):
            self.load_network(self.net_d, path['pretrain_network_d'], path.get('strict_load_d', True),
                              path.get('param_key_d', 'params'))
        self.net_g.train()
        self.net_d.train()
        for key, attr in (('pixel_opt', 'cri_pix'), ('ldl_opt', 'cri_ldl'), ('perceptual_opt', 'cri_perceptual'),
                          ('gan_opt', 'cri_gan')):
            setattr(self, attr, build_loss(train_opt[key]).to(self.device) if train_opt.get(key) else None)
        if self.cri_gan is None:
            raise ValueError(f'train.gan_opt is required by {type(self).__name__} (e.g. {{type: GANLoss, gan_type: '
                             'vanilla, loss_weight: 0.005}})')
        self.net_d_iters = int(train_opt.get('net_d_iters', 1))
        self.net_d_init_iters = int(train_opt.get('net_d_init_iters', 0))
        self.setup_optimizers()
        self.setup_schedulers()

    def setup_optimizers(self) -> None:
        self.optimizer_g = self._add_optimizer('optim_g', self.net_g.parameters())
        self.optimizer_d = self._add_optimizer('optim_d', self.net_d.parameters())

    def _set_d_grad(self, flag: bool) -> None:
        for p in self.net_d.parameters():
            p.requires_grad = flag

    def _g_step_due(self, current_iter: int) -> bool:
        return current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

    def optimize_parameters(self, current_iter: int) -> None:
        self._gan_step(current_iter, self.gt, self.gt, self.gt)

    def _gan_step(self, current_iter: int, pix_gt: torch.Tensor, percep_gt: torch.Tensor,
                  gan_gt: torch.Tensor) -> None:
        """One iteration of BasicSR's GAN schedule: a generator step when due (content losses against ``pix_gt`` /
        ``percep_gt`` plus :meth:`_generator_gan_loss`, with ``net_d`` frozen), then a discriminator step
        (:meth:`_discriminator_backward`, ``gan_gt`` as the real images), then the EMA update."""
        self._set_d_grad(False)
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict: Dict[str, torch.Tensor] = OrderedDict()
        if self._g_step_due(current_iter):
            l_g_total = self._content_losses(loss_dict, 'l_g_', pix_gt, percep_gt)
            loss_dict['l_g_gan'] = self._generator_gan_loss(gan_gt)
            (l_g_total + loss_dict['l_g_gan']).backward()
            self.optimizer_g.step()
        self._set_d_grad(True)
        self.optimizer_d.zero_grad()
        self._discriminator_backward(loss_dict, gan_gt)
        self.optimizer_d.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _generator_gan_loss(self, gan_gt: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term: ``self.output`` should be judged real."""
        return self.cri_gan(self.net_d(self.output), True, is_disc=False)

    def _discriminator_backward(self, loss_dict: Dict[str, torch.Tensor], gan_gt: torch.Tensor) -> None:
        """Back-propagate the discriminator's real (``gan_gt``) and fake (detached output) terms; log them and the
        mean predictions in ``loss_dict``."""
        real_d_pred = self.net_d(gan_gt)
        loss_dict['l_d_real'] = self.cri_gan(real_d_pred, True, is_disc=True)
        loss_dict['out_d_real'] = torch.mean(real_d_pred.detach())
        loss_dict['l_d_real'].backward()
        fake_d_pred = self.net_d(self.output.detach())
        loss_dict['l_d_fake'] = self.cri_gan(fake_d_pred, False, is_disc=True)
        loss_dict['out_d_fake'] = torch.mean(fake_d_pred.detach())
        loss_dict['l_d_fake'].backward()

    def save(self, epoch: int, current_iter: int) -> None:
        super().save(epoch, current_iter)
        self.save_network(self.net_d, 'net_d', current_iter)
