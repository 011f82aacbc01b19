"""TinyPadModel: SRModel with its own padded test() and its own nondist_validation (as HAT/SwinIR-style methods)."""
import os
import signal
from os import path as osp

import torch
from torch.nn import functional as F

from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class TinyPadModel(SRModel):
    """Pads the input to a multiple of ``network_g.window_size`` (mode from the plug-in's own top-level
    ``pad_mode`` key) before inference and crops the result back."""

    def optimize_parameters(self, current_iter):
        # test hook: die by SIGKILL in the middle of this iteration, as a crashed or preempted job would
        if os.environ.get('PLUGIN_METHOD_KILL_AT') == str(current_iter):
            os.kill(os.getpid(), signal.SIGKILL)
        super().optimize_parameters(current_iter)

    def pre_process(self):
        window = self.opt['network_g']['window_size']
        _, _, h, w = self.lq.size()
        self.mod_pad_h, self.mod_pad_w = (window - h % window) % window, (window - w % window) % window
        self.img = F.pad(self.lq, (0, self.mod_pad_w, 0, self.mod_pad_h), self.opt.get('pad_mode', 'reflect'))

    def process(self):
        if hasattr(self, 'net_g_ema'):
            self.net_g_ema.eval()
            with torch.no_grad():
                self.output = self.net_g_ema(self.img)
        else:
            self.net_g.eval()
            with torch.no_grad():
                self.output = self.net_g(self.img)
            self.net_g.train()

    def post_process(self):
        scale = self.opt.get('scale', 1)
        _, _, h, w = self.output.size()
        self.output = self.output[:, :, 0:h - self.mod_pad_h * scale, 0:w - self.mod_pad_w * scale]

    def test(self):
        self.pre_process()
        self.process()
        self.post_process()

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        dataset_name = dataloader.dataset.opt['name']
        with_metrics = self.opt['val'].get('metrics') is not None
        if with_metrics:
            if not hasattr(self, 'metric_results'):
                self.metric_results = {metric: 0 for metric in self.opt['val']['metrics'].keys()}
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {metric: 0 for metric in self.metric_results}
        metric_data = dict()
        for idx, val_data in enumerate(dataloader):
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            sr_img = tensor2img([visuals['result']])
            metric_data['img'] = sr_img
            if 'gt' in visuals:
                metric_data['img2'] = tensor2img([visuals['gt']])
                del self.gt
            del self.lq
            del self.output
            if save_img:
                if self.opt['is_train']:
                    save_img_path = osp.join(self.opt['path']['visualization'], img_name,
                                             f'{img_name}_{current_iter}.png')
                else:
                    save_img_path = osp.join(self.opt['path']['visualization'], dataset_name,
                                             f'{img_name}_{self.opt["name"]}.png')
                imwrite(sr_img, save_img_path)
            if with_metrics:
                for name, opt_ in self.opt['val']['metrics'].items():
                    self.metric_results[name] += calculate_metric(metric_data, opt_)
        if with_metrics:
            for metric in self.metric_results.keys():
                self.metric_results[metric] /= (idx + 1)
                self._update_best_metric_result(dataset_name, metric, self.metric_results[metric], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        get_root_logger().info(f'TinyPadModel: validated {idx + 1} images of {dataset_name} at {current_iter}')
