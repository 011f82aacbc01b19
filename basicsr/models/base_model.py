"""BasicSR's model contract (``basicsr.models.base_model.BaseModel``) on top of the toolbox's engine.

Methods written for BasicSR subclass :class:`BaseModel` or :class:`~basicsr.models.sr_model.SRModel` and
override ``feed_data``, ``optimize_parameters(current_iter)``, ``test``, ``nondist_validation``... The engine
(:class:`basicsr.engine.trainer.Trainer`) drives them through :meth:`BaseModel.train_step` and
:meth:`BaseModel.validation` and checkpoints them through :meth:`BaseModel.state_dict`, which holds every
``net_*`` network, the optimisers, the schedulers and the best-metric record; the trainer adds iteration,
sampler position and RNG states, so a resumed run continues bit for bit. Differences from BasicSR, on purpose:

- ``net_g_ema`` (and ``metric_results``, ``best_metric_results``, ``gt``) exist only once set, as in
  BasicSR, because subclasses test them with ``hasattr``;
- ``reduce_loss_dict`` only averages over the batch: the engine averages logged losses over ranks;
- ``save_training_state`` writes nothing: the engine's atomic checkpoint holds the training state;
- networks are loaded with ``weights_only`` (no unpickling) and saved atomically;
- ``model_to_device`` wraps in DDP under torchrun and never in DataParallel.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from basicsr.engine.schedulers import build_scheduler, warmup_lrs
from basicsr.models.image_restoration_model import OPTIMIZERS, ema_step, select_device, unwrap
from basicsr.utils.dist import barrier, get_dist_info
from basicsr.utils.dist_util import master_only
from basicsr.utils.logger import get_logger


class BaseModel:
    """Base of BasicSR-style models: devices, optimisers, schedulers, saving/loading, validation dispatch.

    Attributes (BasicSR's): ``opt``, ``device``, ``is_train``, ``optimizers``, ``schedulers``, ``log_dict``;
    subclasses add ``net_g`` (and ``net_g_ema``), ``lq``, ``gt``, ``output``, ``metric_results``.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.opt = opt
        opt.setdefault('dist', get_dist_info()[1] > 1)
        opt.setdefault('rank', get_dist_info()[0])
        opt.setdefault('world_size', get_dist_info()[1])
        self.device = select_device(opt)
        self.is_train = bool(opt.get('is_train', False))
        self.schedulers: List[Any] = []
        self.optimizers: List[torch.optim.Optimizer] = []
        self.log_dict: Dict[str, float] = OrderedDict()

    # ------------------------------------------------------------------ the contract (overridden)
    def feed_data(self, data: Dict[str, Any]) -> None:
        pass

    def optimize_parameters(self, current_iter: int) -> None:
        pass

    def get_current_visuals(self) -> Dict[str, torch.Tensor]:
        return OrderedDict()

    def save(self, epoch: int, current_iter: int) -> None:
        """Save the networks (``models/net_*_<iter>.pth``); called at every checkpoint."""

    def validation(self, dataloader: Any, current_iter: Union[int, str], tb_logger: Any,
                   save_img: bool = False) -> None:
        """``dist_validation`` under torchrun (then all ranks meet at a barrier), else ``nondist_validation``."""
        if self.opt.get('dist'):
            self.dist_validation(dataloader, current_iter, tb_logger, save_img)
            barrier()
        else:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def dist_validation(self, dataloader: Any, current_iter: Union[int, str], tb_logger: Any, save_img: bool) -> None:
        raise NotImplementedError(f'{type(self).__name__} does not implement dist_validation')

    def nondist_validation(self, dataloader: Any, current_iter: Union[int, str], tb_logger: Any,
                           save_img: bool) -> None:
        raise NotImplementedError(f'{type(self).__name__} does not implement nondist_validation')

    # ------------------------------------------------------------------ engine side
    def train_step(self, batches: Sequence[Dict[str, Any]], current_iter: int) -> Dict[str, torch.Tensor]:
        """One engine iteration through the contract: ``feed_data`` + ``optimize_parameters``; the logged losses."""
        if len(batches) != 1:
            raise ValueError(f'{type(self).__name__} follows the BasicSR contract (one batch per optimize_parameters); '
                             f'train.accumulate_grad must be 1, got {len(batches)}')
        self.feed_data(batches[0])
        self.optimize_parameters(current_iter)
        return OrderedDict((k, torch.as_tensor(v, dtype=torch.float32)) for k, v in self.get_current_log().items())

    def networks(self) -> Dict[str, nn.Module]:
        """Every network attribute ``net_*`` (DDP unwrapped), in a stable order."""
        return OrderedDict((k, unwrap(v)) for k, v in sorted(vars(self).items())
                           if k.startswith('net_') and isinstance(v, nn.Module))

    def state_dict(self) -> Dict[str, Any]:
        """Networks, optimisers, schedulers and the best-metric record (the engine adds iteration and RNG)."""
        return {'networks': {k: {n: t.detach().cpu() for n, t in v.state_dict().items()}
                             for k, v in self.networks().items()},
                'optimizers': [o.state_dict() for o in self.optimizers],
                'schedulers': [s.state_dict() for s in self.schedulers],
                'best_metric_results': getattr(self, 'best_metric_results', None),
                'extra': self.extra_state()}

    def extra_state(self) -> Dict[str, Any]:
        """State of a subclass beyond networks and optimisers that an exact resume needs (tensors, numbers)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        nets = self.networks()
        if set(nets) != set(state['networks']):
            raise ValueError(f"checkpoint holds networks {sorted(state['networks'])} but {type(self).__name__} has "
                             f'{sorted(nets)}')
        for name, net in nets.items():
            net.load_state_dict(state['networks'][name], strict=True)
        self.resume_training(state)
        if state.get('best_metric_results') is not None:
            self.best_metric_results = state['best_metric_results']
        self.load_extra_state(state.get('extra') or {})

    def network_state(self) -> Dict[str, Any]:
        """``{'params': net_g, 'params_ema': net_g_ema}`` on CPU (release-weights layout of ``net_g_latest.pth``)."""
        nets = self.networks()
        out = {'params': {k: v.cpu() for k, v in nets['net_g'].state_dict().items()}}
        if 'net_g_ema' in nets:
            out['params_ema'] = {k: v.cpu() for k, v in nets['net_g_ema'].state_dict().items()}
        return out

    def inference_network(self) -> nn.Module:
        """The network used to restore images: ``net_g_ema`` when present, else ``net_g`` (eval mode)."""
        net = getattr(self, 'net_g_ema', None)
        return (unwrap(self.net_g) if net is None else net).eval()

    def train_mode(self) -> None:
        self.net_g.train()

    # ------------------------------------------------------------------ helpers of the contract
    def model_to_device(self, net: nn.Module) -> nn.Module:
        """Move ``net`` to the device; wrap it in DDP when the process group has more than one rank."""
        net = net.to(self.device)
        if get_dist_info()[1] > 1:
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                                          find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return net

    def get_bare_model(self, net: nn.Module) -> nn.Module:
        return unwrap(net)

    def get_optimizer(self, optim_type: str, params: Any, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
        """``torch.optim.<optim_type>(params, lr, **kwargs)`` for BasicSR's optimiser names."""
        if optim_type not in OPTIMIZERS:
            raise ValueError(f"optimizer type '{optim_type}' is not supported; choose one of {sorted(OPTIMIZERS)}")
        return OPTIMIZERS[optim_type](params, lr, **kwargs)

    def setup_schedulers(self) -> None:
        """One ``train.scheduler`` (registered type, e.g. MultiStepLR, CosineAnnealingRestartLR) per optimiser."""
        sched = self.opt['train'].get('scheduler')
        if sched:
            self.schedulers = [build_scheduler(o, sched) for o in self.optimizers]

    def model_ema(self, decay: float = 0.999) -> None:
        """``net_g_ema = decay * net_g_ema + (1 - decay) * net_g`` (parameters; buffers are copied)."""
        ema_step(self.net_g_ema, unwrap(self.net_g), decay)

    @master_only
    def print_network(self, net: nn.Module) -> None:
        bare = unwrap(net)
        n = sum(p.numel() for p in bare.parameters())
        get_logger().info(f'Network: {type(bare).__name__}, with parameters: {n:,d}')

    def _get_init_lr(self) -> List[List[float]]:
        return [[g['initial_lr'] for g in o.param_groups] for o in self.optimizers]

    def _set_lr(self, lr_groups_l: List[List[float]]) -> None:
        for optimizer, lrs in zip(self.optimizers, lr_groups_l):
            for group, lr in zip(optimizer.param_groups, lrs):
                group['lr'] = lr

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Step the schedulers (from iteration 2 on); linear warm-up during the first ``warmup_iter`` iterations."""
        if current_iter > 1:
            for s in self.schedulers:
                s.step()
        if current_iter < warmup_iter:
            self._set_lr([warmup_lrs(lrs, current_iter, warmup_iter) for lrs in self._get_init_lr()])

    def get_current_learning_rate(self) -> List[float]:
        return [g['lr'] for g in self.optimizers[0].param_groups]

    def get_current_log(self) -> Dict[str, float]:
        return self.log_dict

    def reduce_loss_dict(self, loss_dict: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Loss tensors -> floats (their mean); the engine averages over ranks when it logs."""
        with torch.no_grad():
            return OrderedDict((k, float(v.mean())) for k, v in loss_dict.items())

    # ------------------------------------------------------------------ saving and loading
    @master_only
    def save_network(self, net: Union[nn.Module, List[nn.Module]], net_label: str, current_iter: int,
                     param_key: Union[str, List[str]] = 'params') -> None:
        """Write ``path.models/<net_label>_<iter>.pth`` (``latest`` for -1) as ``{param_key: state_dict}``."""
        from basicsr.engine.checkpoint import atomic_torch_save
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys {keys}')
        label = 'latest' if current_iter == -1 else current_iter
        state = {k: {n: t.detach().cpu() for n, t in unwrap(m).state_dict().items()} for m, k in zip(nets, keys)}
        atomic_torch_save(state, Path(self.opt['path']['models']) / f'{net_label}_{label}.pth')

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """Nothing to write: the engine's checkpoint (``training_states/ckpt_<iter>.pth``) holds the state."""

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True,
                     param_key: Optional[str] = 'params') -> None:
        """Load ``load_path`` (``param_key``, falling back to ``params``) into ``net`` without unpickling."""
        from basicsr.archs.pretrained import load_pretrained
        trust = bool((self.opt.get('path') or {}).get('trust_pickle', False))  # --trust-pickle
        try:
            load_pretrained(unwrap(net), load_path, key=param_key, strict=strict, trust_pickle=trust)
        except KeyError:
            if param_key in (None, 'params'):
                raise
            get_logger().info(f"{load_path}: no '{param_key}', loading 'params'")
            load_pretrained(unwrap(net), load_path, key='params', strict=strict, trust_pickle=trust)
        get_logger().info(f'Loading {type(unwrap(net)).__name__} model from {load_path}, with param key: [{param_key}].')

    def resume_training(self, resume_state: Dict[str, Any]) -> None:
        """Load optimiser and scheduler states (BasicSR's ``.state`` layout, also part of the engine checkpoint)."""
        opts, scheds = resume_state['optimizers'], resume_state['schedulers']
        if len(opts) != len(self.optimizers) or len(scheds) != len(self.schedulers):
            raise ValueError(f'resume state has {len(opts)} optimizers / {len(scheds)} schedulers, the model '
                             f'{len(self.optimizers)} / {len(self.schedulers)}')
        for o, s in zip(self.optimizers, opts):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, scheds):
            sch.load_state_dict(s)

    # ------------------------------------------------------------------ best-metric bookkeeping
    def _initialize_best_metric_results(self, dataset_name: str) -> None:
        """Start ``best_metric_results[dataset_name][metric] = {better, val, iter}`` once per dataset."""
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = {}
        if dataset_name in self.best_metric_results:
            return
        record = {}
        for metric, content in self.opt['val']['metrics'].items():
            better = content.get('better', 'higher')
            record[metric] = {'better': better, 'val': float('-inf') if better == 'higher' else float('inf'),
                              'iter': -1}
        self.best_metric_results[dataset_name] = record

    def _update_best_metric_result(self, dataset_name: str, metric: str, val: float,
                                   current_iter: Union[int, str]) -> None:
        """Record ``val`` if it is at least as good as the best so far (ties move to the later iteration)."""
        best = self.best_metric_results[dataset_name][metric]
        if (val >= best['val']) if best['better'] == 'higher' else (val <= best['val']):
            best['val'], best['iter'] = val, current_iter
