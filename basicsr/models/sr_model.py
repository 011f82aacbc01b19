"""BasicSR's ``SRModel`` (``basicsr.models.sr_model``): one network trained with ``pixel_opt`` / ``perceptual_opt``.

The behaviour is BasicSR's: ``optimize_parameters(current_iter)`` does one step on the fed batch and updates
``net_g_ema`` when ``train.ema_decay > 0``; ``test()`` runs ``net_g_ema`` if it exists (else ``net_g``) on
``self.lq``; ``nondist_validation`` converts outputs with ``tensor2img`` (BGR uint8, rounded), scores them with
``calculate_metric`` over ``val.metrics``, saves images under ``path.visualization`` and keeps the best
metrics; ``dist_validation`` validates on rank 0. Differences: EMA also copies buffers, the x8 self-ensemble
uses ``net_g`` when there is no EMA network (BasicSR calls ``net_g_ema`` there), and the options are never
mutated (BasicSR pops ``type`` from ``optim_g``).
"""
from __future__ import annotations

import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Union

import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.base_model import BaseModel
from basicsr.utils.img_bgr import imwrite, tensor2img
from basicsr.utils.logger import get_logger
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class SRModel(BaseModel):
    """Single-network restoration model with BasicSR's contract (see :mod:`basicsr.models.base_model`)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        self.net_g = self.model_to_device(build_network(opt['network_g']))
        self.print_network(self.net_g)
        path = opt.get('path') or {}
        if path.get('pretrain_network_g'):
            self.load_network(self.net_g, path['pretrain_network_g'], path.get('strict_load_g', True),
                              path.get('param_key_g', 'params'))
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self) -> None:
        self.net_g.train()
        train_opt = self.opt['train']
        self._setup_ema()
        self.cri_pix = build_loss(train_opt['pixel_opt']).to(self.device) if train_opt.get('pixel_opt') else None
        self.cri_perceptual = (build_loss(train_opt['perceptual_opt']).to(self.device)
                               if train_opt.get('perceptual_opt') else None)
        if self.cri_pix is None and self.cri_perceptual is None:
            raise ValueError('train: SRModel needs train.pixel_opt and/or train.perceptual_opt (both are missing)')
        self.setup_optimizers()
        self.setup_schedulers()

    def _setup_ema(self) -> None:
        """Set ``ema_decay`` from ``train.ema_decay``; when > 0 build ``net_g_ema`` in eval mode, loaded from the
        ``params_ema`` of ``path.pretrain_network_g`` if there is one, else a copy of ``net_g``."""
        self.ema_decay = float(self.opt['train'].get('ema_decay', 0) or 0)
        if self.ema_decay <= 0:
            return
        get_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
        self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
        path = self.opt.get('path') or {}
        if path.get('pretrain_network_g'):
            self.load_network(self.net_g_ema, path['pretrain_network_g'], path.get('strict_load_g', True),
                              'params_ema')
        else:
            self.model_ema(0)
        self.net_g_ema.eval()

    def setup_optimizers(self) -> None:
        self.optimizer_g = self._add_optimizer('optim_g', [p for p in self.net_g.parameters() if p.requires_grad])

    def _add_optimizer(self, key: str, params: Any) -> torch.optim.Optimizer:
        """The optimiser that ``train.<key>`` describes (``type`` plus its keyword arguments) over ``params``,
        appended to ``self.optimizers`` (so checkpoints and schedulers include it)."""
        train_opt = self.opt['train']
        if not train_opt.get(key):
            raise ValueError(f'train.{key} is required by {type(self).__name__} (e.g. {{type: Adam, lr: 1e-4}})')
        optim = dict(train_opt[key])
        optimizer = self.get_optimizer(optim.pop('type'), params, **optim)
        self.optimizers.append(optimizer)
        return optimizer

    def feed_data(self, data: Dict[str, Any]) -> None:
        self.lq = data['lq'].to(self.device)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict: Dict[str, torch.Tensor] = OrderedDict()
        self._content_losses(loss_dict, 'l_', self.gt, self.gt).backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _content_losses(self, loss_dict: Dict[str, torch.Tensor], prefix: str, pix_gt: torch.Tensor,
                        percep_gt: torch.Tensor) -> torch.Tensor:
        """The pixel, perceptual and style terms of ``self.output`` against their targets, added to ``loss_dict``
        as ``<prefix>pix``, ``<prefix>percep``, ``<prefix>style`` (those the options switch on); their sum."""
        total = 0
        if self.cri_pix:
            loss_dict[f'{prefix}pix'] = self.cri_pix(self.output, pix_gt)
            total = total + loss_dict[f'{prefix}pix']
        if self.cri_perceptual:
            for name, value in zip(('percep', 'style'), self.cri_perceptual(self.output, percep_gt)):
                if value is not None:
                    loss_dict[prefix + name] = value
                    total = total + value
        return total

    def _forward_eval(self, x: torch.Tensor) -> torch.Tensor:
        """``net_g_ema(x)`` if there is an EMA network, else ``net_g(x)`` in eval mode, without gradients."""
        net = getattr(self, 'net_g_ema', None)
        restore_train = net is None and self.net_g.training
        net = self.net_g if net is None else net
        net.eval()
        with torch.no_grad():
            out = net(x)
        if restore_train:
            self.net_g.train()
        return out

    def test(self) -> None:
        self.output = self._forward_eval(self.lq)

    def test_selfensemble(self) -> None:
        """x8 self-ensemble: the mean of the outputs over flips and transposes of ``self.lq``."""
        outs = []
        for transpose in (False, True):
            for flip_h in (False, True):
                for flip_w in (False, True):
                    x = self.lq.transpose(2, 3) if transpose else self.lq
                    dims = [d for d, f in ((2, flip_h), (3, flip_w)) if f]
                    x = x.flip(dims) if dims else x
                    y = self._forward_eval(x)
                    y = y.flip(dims) if dims else y
                    outs.append(y.transpose(2, 3) if transpose else y)
        self.output = torch.stack(outs).mean(0)

    def dist_validation(self, dataloader: Any, current_iter: Union[int, str], tb_logger: Any, save_img: bool) -> None:
        if self.opt.get('rank', 0) == 0:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader: Any, current_iter: Union[int, str], tb_logger: Any,
                           save_img: bool) -> None:
        dataset_name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics')
        if metrics is not None:
            self.metric_results = {m: 0 for m in metrics}
            self._initialize_best_metric_results(dataset_name)
        count = 0
        for val_data in dataloader:
            if 'skipped' in val_data:  # skip_bad: an unreadable sample, logged by the dataset and never scored
                continue
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            metric_data = {'img': tensor2img([visuals['result']])}
            if 'gt' in visuals:
                metric_data['img2'] = tensor2img([visuals['gt']])
                del self.gt
            del self.lq
            del self.output
            if save_img:
                imwrite(metric_data['img'], self._save_path(img_name, dataset_name, current_iter))
            if metrics is not None:
                for name, metric_opt in metrics.items():
                    self.metric_results[name] += calculate_metric(metric_data, metric_opt)
            count += 1
        if metrics is not None:
            for metric in self.metric_results:
                self.metric_results[metric] /= max(count, 1)
                self._update_best_metric_result(dataset_name, metric, self.metric_results[metric], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def _save_path(self, img_name: str, dataset_name: str, current_iter: Union[int, str]) -> str:
        """BasicSR's image paths: ``<img>/<img>_<iter>.png`` in training, ``<dataset>/<img>_<suffix|name>.png``."""
        vis = self.opt['path']['visualization']
        if self.opt['is_train']:
            return osp.join(vis, img_name, f'{img_name}_{current_iter}.png')
        suffix = (self.opt.get('val') or {}).get('suffix') or self.opt['name']
        return osp.join(vis, dataset_name, f'{img_name}_{suffix}.png')

    def _log_validation_metric_values(self, current_iter: Union[int, str], dataset_name: str, tb_logger: Any) -> None:
        lines = [f'Validation {dataset_name}']
        for metric, value in self.metric_results.items():
            line = f'\t # {metric}: {value:.4f}'
            if hasattr(self, 'best_metric_results'):
                best = self.best_metric_results[dataset_name][metric]
                line += f"\tBest: {best['val']:.4f} @ {best['iter']} iter"
            lines.append(line)
        get_logger().info('\n'.join(lines))
        if tb_logger:
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)

    def get_current_visuals(self) -> Dict[str, torch.Tensor]:
        out = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu())
        if hasattr(self, 'gt'):
            out['gt'] = self.gt.detach().cpu()
        return out

    def save(self, epoch: int, current_iter: int) -> None:
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        self.save_training_state(epoch, current_iter)


@MODEL_REGISTRY.register()
class SwinIRModel(SRModel):
    """BasicSR's SwinIRModel: ``test()`` reflect-pads the input (bottom/right) to a multiple of
    ``network_g.window_size`` and crops the output back to ``scale`` x the input size."""

    def test(self) -> None:
        window = int(self.opt['network_g']['window_size'])
        scale = int(self.opt.get('scale', 1))
        h, w = self.lq.shape[-2:]
        pad_h, pad_w = (-h) % window, (-w) % window
        out = self._forward_eval(F.pad(self.lq, (0, pad_w, 0, pad_h), 'reflect'))
        self.output = out[..., :h * scale, :w * scale]

