"""ImageRestorationModel: one network, its losses, optimiser, schedulers, EMA, AMP and gradient accumulation.

The training loop, checkpointing, logging and validation live in :mod:`basicsr.engine`; this class only
knows how to take one optimisation step and how to save/restore its own state.
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr.archs import build_network
from basicsr.archs.conditions import condition_kwargs
from basicsr.engine.schedulers import build_scheduler, warmup_lrs
from basicsr.models.loss_terms import build_loss_terms
from basicsr.utils.dist import get_dist_info
from basicsr.utils.logger import get_logger
from basicsr.utils.registry import MODEL_REGISTRY
from basicsr.utils.speed import FastNetwork, apply_speed, parse_speed

# train.optim_*.type -> optimiser class (BasicSR's list)
OPTIMIZERS = {name: getattr(torch.optim, name) for name in ('Adam', 'AdamW', 'Adamax', 'SGD', 'ASGD', 'RMSprop',
                                                            'Rprop')}
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def select_device(opt: Dict[str, Any]) -> torch.device:
    """CUDA (this rank's LOCAL_RANK device) when available and ``num_gpu`` is not 0, else CPU."""
    import os
    if opt.get('num_gpu', 'auto') != 0 and torch.cuda.is_available():
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return torch.device('cpu')


def unwrap(net: nn.Module) -> nn.Module:
    """The bare network inside DDP/DataParallel and the fast-path wrappers (:class:`FastNetwork`,
    torch.compile's ``_orig_mod``), so its ``state_dict`` has the plain names."""
    while True:
        if isinstance(net, (DistributedDataParallel, nn.DataParallel, FastNetwork)):
            net = net.module
        elif isinstance(getattr(net, '_orig_mod', None), nn.Module):
            net = net._orig_mod
        else:
            return net


@MODEL_REGISTRY.register()
class ImageRestorationModel:
    """Restoration model: ``lq -> net_g -> output`` trained against ``gt``.

    Option keys used: ``network_g``, ``path.{pretrain_network_g, param_key_g, strict_load_g, param_key_g_ema}``,
    ``train.{optim_g, scheduler, warmup_iter, ema_decay, ema_warmup, use_grad_clip, grad_clip_norm,
    accumulate_grad, amp, mixing_augs, *_opt}`` and the ``speed`` block (compile, channels_last; its autocast
    is ``train.amp``).

    Without ``train.use_grad_clip`` the gradient norm is clipped at ``grad_clip_norm`` (0.01), as the
    ``ImageRestorationModel`` of NAFNet and HINet does (their option files rely on it); subclasses set
    :attr:`default_grad_clip` to their own code's default.
    """

    default_grad_clip = True

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.opt = opt
        self.device = select_device(opt)
        self.is_train = bool(opt.get('is_train', False))
        self.net_g = build_network(opt['network_g']).to(self.device)
        pretrain = (opt.get('path') or {}).get('pretrain_network_g')
        if pretrain:
            from basicsr.archs.pretrained import load_pretrained
            load_pretrained(self.net_g, pretrain, key=opt['path'].get('param_key_g', 'auto'),
                            strict=opt['path'].get('strict_load_g', True),
                            trust_pickle=opt['path'].get('trust_pickle', False))
            get_logger().info(f'loaded network_g weights from {pretrain}')
        self.net_g_ema: Optional[nn.Module] = None
        self.log_dict: Dict[str, float] = OrderedDict()
        if self.is_train:
            self._init_training()

    # ------------------------------------------------------------------ set-up
    def _init_training(self) -> None:
        train = self.opt['train']
        self.ema_decay = float(train.get('ema_decay', 0) or 0)
        self.ema_warmup = bool(train.get('ema_warmup', False))
        self.ema_steps = 0
        if self.ema_decay > 0:
            self.net_g_ema = copy.deepcopy(self.net_g).eval()
            for p in self.net_g_ema.parameters():
                p.requires_grad_(False)
        self._load_pretrained_ema()
        self.loss_terms = self.build_losses(train)
        self.accumulate = int(train.get('accumulate_grad', 1))
        speed = parse_speed(self.opt.get('speed'))
        amp = train.get('amp') or None
        if amp and speed.autocast and amp != speed.autocast:
            raise ValueError(f"train.amp ({amp}) and speed.autocast ({speed.autocast}) disagree; set one of them")
        amp = amp or speed.autocast  # speed.autocast is the training AMP too (it also covers the losses)
        self.amp_dtype = AMP_DTYPES.get(amp) if amp else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        clip = train.get('use_grad_clip')
        clip = self.default_grad_clip if clip is None else bool(clip)
        self.grad_clip = float(train.get('grad_clip_norm', 0.01)) if clip else 0.0
        mixing = train.get('mixing_augs') or {}
        self.mixup_beta = float(mixing.get('mixup_beta', 1.2)) if mixing.get('mixup') else 0.0
        self.mixup_identity = bool(mixing.get('use_identity', False))
        self.mixup_per_sample = bool(mixing.get('lambda_per_sample', False))
        self.mixup_start_iter = int(mixing.get('start_iter', 0))
        self.current_iter = 0

        # compile and channels-last around the bare network, inside DDP; unwrap() gives the plain module back
        self.net_g = apply_speed(self.net_g, replace(speed, autocast=None), self.device, cast_output=False)
        rank, world = get_dist_info()
        if world > 1:
            self.net_g = DistributedDataParallel(
                self.net_g, device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                find_unused_parameters=self.opt.get('find_unused_parameters', False))
        self.net_g.train()

        optim_opt = dict(train['optim_g'])
        optim_type = optim_opt.pop('type')
        if optim_type not in OPTIMIZERS:
            raise ValueError(f"train.optim_g.type '{optim_type}' is not supported; choose one of {list(OPTIMIZERS)}")
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = OPTIMIZERS[optim_type](params, **optim_opt)
        self.optimizers = [self.optimizer_g]
        self.schedulers = []
        if train.get('scheduler'):
            self.schedulers = [build_scheduler(o, train['scheduler']) for o in self.optimizers]
        self.mix_gen = torch.Generator().manual_seed(int(self.opt.get('manual_seed') or 0) + rank)

    def _load_pretrained_ema(self) -> None:
        """``path.param_key_g_ema``: start the EMA copy from that key of ``pretrain_network_g`` (BasicSR loads
        ``params_ema`` there; MiOIR's sequential stages rely on it) instead of a copy of the loaded network."""
        paths = self.opt.get('path') or {}
        key = paths.get('param_key_g_ema')
        if not key:
            return
        if not paths.get('pretrain_network_g') or self.net_g_ema is None:
            raise ValueError(f"path.param_key_g_ema ('{key}') needs path.pretrain_network_g and train.ema_decay > 0 "
                             f"(got pretrain_network_g={paths.get('pretrain_network_g')!r}, "
                             f'ema_decay={self.ema_decay})')
        from basicsr.archs.pretrained import load_pretrained
        load_pretrained(self.net_g_ema, paths['pretrain_network_g'], key=key, strict=paths.get('strict_load_g', True),
                        trust_pickle=paths.get('trust_pickle', False))
        get_logger().info(f"loaded the EMA network from {paths['pretrain_network_g']} (key '{key}')")

    def build_losses(self, train: Dict[str, Any]) -> nn.Module:
        """The training criteria from the ``train`` block (here: every ``*_opt`` loss term)."""
        return build_loss_terms(train).to(self.device)

    # ------------------------------------------------------------------ training step
    def feed_data(self, data: Dict[str, Any]) -> None:
        self.lq = data['lq'].to(self.device, non_blocking=True)
        self.gt = data['gt'].to(self.device, non_blocking=True) if 'gt' in data else None
        # inputs besides the image that the network declares (MiOIR explicit prompts: the task id)
        self.conditions = condition_kwargs(self.net_g, data, 'training batch', self.device)

    def _mixup(self, gt: torch.Tensor, lq: torch.Tensor) -> tuple:
        """Mix every sample with another of the batch: ``lam * x + (1 - lam) * x[perm]``, lam ~
        Beta(mixup_beta, mixup_beta) drawn with the model's own seeded generator.

        ``train.mixing_augs``: Restormer draws one lam per batch and, with ``use_identity``, skips half the
        batches; MPRNet's ``MixUp_AUG`` (``lambda_per_sample: true``, beta 0.6) draws one lam per sample and
        starts after epoch 5 (``start_iter``: mixing from iteration ``start_iter + 1``).
        """
        n_aug = 2 if self.mixup_identity else 1   # 'identity' is the second choice
        if int(torch.randint(n_aug, (1, ), generator=self.mix_gen)) == 1:
            return gt, lq
        if self.mixup_per_sample:
            lam = torch.tensor([_beta_sample(self.mix_gen, self.mixup_beta) for _ in range(gt.size(0))],
                               dtype=gt.dtype).view(-1, 1, 1, 1).to(gt.device)
        else:
            lam = _beta_sample(self.mix_gen, self.mixup_beta)
        perm = torch.randperm(gt.size(0), generator=self.mix_gen).to(gt.device)
        return lam * gt + (1 - lam) * gt[perm], lam * lq + (1 - lam) * lq[perm]

    def optimize_parameters(self, batches: Sequence[Dict[str, Any]], current_iter: int) -> Dict[str, float]:
        """One optimiser step over ``batches`` (``accumulate_grad`` micro-batches); returns the losses."""
        self.optimizer_g.zero_grad(set_to_none=True)
        self.current_iter = current_iter
        totals: Dict[str, torch.Tensor] = OrderedDict()
        n = len(batches)
        for i, batch in enumerate(batches):
            self.feed_data(batch)
            sync = nullcontext() if (i == n - 1 or not isinstance(self.net_g, DistributedDataParallel)) \
                else self.net_g.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    out, losses = self.compute_losses()
                loss = sum(losses.values()) / n
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f'iteration {current_iter}: loss is {float(loss.detach())} '
                        f'({ {k: float(v.detach()) for k, v in losses.items()} }); training stopped, the last '
                        'checkpoint is kept: lower train.optim_g.lr or set train.use_grad_clip: true, then rerun '
                        'the same command to resume')
                self.scaler.scale(loss).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.detach() / n
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer_g)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer_g)
        self.scaler.update()
        if len(totals) > 1:
            totals['l_total'] = sum(totals.values())
        self.output = out
        return totals

    def compute_losses(self) -> Tuple[Any, Dict[str, torch.Tensor]]:
        """Forward the fed batch; ``(network output, {'l_<name>': loss})`` (called under autocast)."""
        gt, lq = self.gt, self.lq
        if self.mixup_beta > 0 and self.current_iter > self.mixup_start_iter:
            gt, lq = self._mixup(gt, lq)
        out = self.net_g(lq, **self.conditions)
        return out, OrderedDict((f'l_{k[:-4]}', term(out, gt, lq=lq)) for k, term in self.loss_terms.items())

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """EMA of parameters; buffers (e.g. norm statistics) are copied, which BasicSR forgets.

        With ``train.ema_warmup`` the decay of step n is ``min(decay, (1 + n) / (10 + n))``, so the average
        does not drag the random initialisation along for thousands of iterations (BasicSR has no warm-up:
        with decay 0.999 the initial weights still count 5 % after 3000 steps).
        """
        self.ema_steps += 1
        if self.ema_warmup:
            decay = min(decay, (1 + self.ema_steps) / (10 + self.ema_steps))
        ema_step(self.net_g_ema, unwrap(self.net_g), decay)

    # ------------------------------------------------------------------ schedule
    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Set the lr for iteration ``current_iter`` (1-based): the schedules' value at ``current_iter - 1``
        (so iteration 1 uses the initial lr); BasicSR's warm-up replaces it by ``initial_lr * current_iter /
        warmup_iter`` while ``current_iter < warmup_iter`` (iteration ``warmup_iter`` already runs at the schedule's
        value, as BasicSR's ``update_learning_rate``)."""
        if current_iter > 1:
            for s in self.schedulers:
                s.step()
        if current_iter < warmup_iter:
            for o in self.optimizers:
                base = [g['initial_lr'] for g in o.param_groups]
                for g, lr in zip(o.param_groups, warmup_lrs(base, current_iter, warmup_iter)):
                    g['lr'] = lr

    def get_current_learning_rate(self) -> List[float]:
        return [g['lr'] for g in self.optimizer_g.param_groups]

    # ------------------------------------------------------------------ inference
    def inference_network(self) -> nn.Module:
        """The network used for validation/testing: the EMA copy when EMA is on, in eval mode."""
        net = self.net_g_ema if self.net_g_ema is not None else unwrap(self.net_g)
        return net.eval()

    def train_mode(self) -> None:
        self.net_g.train()

    # ------------------------------------------------------------------ state
    def network_state(self) -> Dict[str, Any]:
        """``{'params': ..., 'params_ema': ...}`` on CPU, the BasicSR release-weights layout."""
        out = {'params': {k: v.detach().cpu() for k, v in unwrap(self.net_g).state_dict().items()}}
        if self.net_g_ema is not None:
            out['params_ema'] = {k: v.detach().cpu() for k, v in self.net_g_ema.state_dict().items()}
        return out

    def state_dict(self) -> Dict[str, Any]:
        state = {'networks': self.network_state(),
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers],
                 'scaler': self.scaler.state_dict(),
                 'mix_gen': self.mix_gen.get_state(), 'ema_steps': self.ema_steps}
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        unwrap(self.net_g).load_state_dict(state['networks']['params'], strict=True)
        if self.net_g_ema is not None:
            ema = state['networks'].get('params_ema', state['networks']['params'])
            self.net_g_ema.load_state_dict(ema, strict=True)
        for o, s in zip(self.optimizers, state['optimizers']):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state['schedulers']):
            sch.load_state_dict(s)
        self.scaler.load_state_dict(state['scaler'])
        self.mix_gen.set_state(state['mix_gen'])
        self.ema_steps = int(state.get('ema_steps', 0))


@torch.no_grad()
def ema_step(ema_net: nn.Module, net: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` for every parameter (one fused pass); buffers (e.g. norm
    statistics) are copied, which BasicSR forgets."""
    ema_params = dict(ema_net.named_parameters())
    pairs = [(ema_params[name], p.detach()) for name, p in net.named_parameters()]
    ema, cur = [e for e, _ in pairs], [c for _, c in pairs]
    torch._foreach_mul_(ema, decay)
    torch._foreach_add_(ema, cur, alpha=1 - decay)
    ema_bufs = dict(ema_net.named_buffers())
    for name, b in net.named_buffers():
        ema_bufs[name].copy_(b)


def _beta_sample(gen: torch.Generator, beta: float) -> float:
    """Beta(beta, beta) sample as a ratio of two seeded Gamma draws (reproducible on resume)."""
    g1 = _gamma(gen, beta)
    g2 = _gamma(gen, beta)
    return g1 / (g1 + g2)


def _gamma(gen: torch.Generator, shape: float) -> float:
    """Marsaglia-Tsang Gamma(shape, 1) sampler driven by ``gen`` (torch's samplers take no generator)."""
    boost = 1.0
    if shape < 1:
        boost = float(torch.rand(1, generator=gen)) ** (1.0 / shape)
        shape += 1
    d = shape - 1.0 / 3
    c = 1.0 / math.sqrt(9 * d)
    while True:
        x = float(torch.randn(1, generator=gen))
        v = (1 + c * x) ** 3
        if v <= 0:
            continue
        u = float(torch.rand(1, generator=gen))
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost


@MODEL_REGISTRY.register()
class ImageCleanModel(ImageRestorationModel):
    """Restormer's name for the same model (its option files say ``model_type: ImageCleanModel``); Restormer
    clips only when ``train.use_grad_clip`` says so."""

    default_grad_clip = False
