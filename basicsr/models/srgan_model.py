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
from basicsr.utils.logger import get_logger
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class SRGANModel(SRModel):
    """SRModel plus a discriminator ``net_d`` and an adversarial loss (SRGAN's standard GAN objective)."""

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.ema_decay = float(train_opt.get('ema_decay', 0) or 0)
        if self.ema_decay > 0:
            get_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            path = self.opt.get('path') or {}
            if path.get('pretrain_network_g'):
                self.load_network(self.net_g_ema, path['pretrain_network_g'], path.get('strict_load_g', True),
                                  'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
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
        train_opt = self.opt['train']
        for net, key, attr in ((self.net_g, 'optim_g', 'optimizer_g'), (self.net_d, 'optim_d', 'optimizer_d')):
            if not train_opt.get(key):
                raise ValueError(f'train.{key} is required by {type(self).__name__} (e.g. {{type: Adam, lr: 1e-4}})')
            optim = dict(train_opt[key])
            setattr(self, attr, self.get_optimizer(optim.pop('type'), net.parameters(), **optim))
            self.optimizers.append(getattr(self, attr))

    def _generator_losses(self, loss_dict: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Pixel, perceptual and style terms of the generator (added to ``loss_dict``); their sum."""
        total = 0
        if self.cri_pix:
            loss_dict['l_g_pix'] = self.cri_pix(self.output, self.gt)
            total = total + loss_dict['l_g_pix']
        if self.cri_perceptual:
            for name, value in zip(('l_g_percep', 'l_g_style'), self.cri_perceptual(self.output, self.gt)):
                if value is not None:
                    loss_dict[name] = value
                    total = total + value
        return total

    def _set_d_grad(self, flag: bool) -> None:
        for p in self.net_d.parameters():
            p.requires_grad = flag

    def _g_step_due(self, current_iter: int) -> bool:
        return current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

    def optimize_parameters(self, current_iter: int) -> None:
        self._set_d_grad(False)
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict: Dict[str, torch.Tensor] = OrderedDict()
        if self._g_step_due(current_iter):
            l_g_total = self._generator_losses(loss_dict)
            loss_dict['l_g_gan'] = self.cri_gan(self.net_d(self.output), True, is_disc=False)
            (l_g_total + loss_dict['l_g_gan']).backward()
            self.optimizer_g.step()
        self._set_d_grad(True)
        self.optimizer_d.zero_grad()
        real_d_pred = self.net_d(self.gt)
        loss_dict['l_d_real'] = self.cri_gan(real_d_pred, True, is_disc=True)
        loss_dict['out_d_real'] = torch.mean(real_d_pred.detach())
        loss_dict['l_d_real'].backward()
        fake_d_pred = self.net_d(self.output.detach())
        loss_dict['l_d_fake'] = self.cri_gan(fake_d_pred, False, is_disc=True)
        loss_dict['out_d_fake'] = torch.mean(fake_d_pred.detach())
        loss_dict['l_d_fake'].backward()
        self.optimizer_d.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def save(self, epoch: int, current_iter: int) -> None:
        super().save(epoch, current_iter)
        self.save_network(self.net_d, 'net_d', current_iter)
