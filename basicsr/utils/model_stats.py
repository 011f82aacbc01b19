"""Parameter count, FLOPs and peak forward memory of a network, shared by ``scripts/model_summary.py``,
``scripts/benchmark_archs.py`` and the tests.

FLOPs convention: :func:`count_flops` returns **FLOPs = 2 x multiply-accumulates (MACs)** of the
convolutions (incl. transposed and depth-wise), linear layers, matrix products and attention
(``torch.utils.flop_counter.FlopCounterMode``, which dispatches on the ATen ops ``convolution``, ``mm``,
``addmm``, ``bmm``, ``baddbmm``, scaled-dot-product attention...). Element-wise work (norms, activations,
softmax, additions, bias) is not counted. Papers in this field usually quote MACs and call them FLOPs:
divide by 2 (:attr:`ModelStats.macs`) to compare with them.

FLOPs are counted on the ``meta`` device (shapes only, no arithmetic), so even large networks at large
sizes are counted in seconds; networks whose forward cannot run on ``meta`` fall back to a real CPU pass.

Peak forward memory is the peak of tensor memory allocated during one forward pass under ``no_grad``
above what was allocated before it (weights and the input are not included): on CUDA from
``torch.cuda.max_memory_allocated``, on CPU from the allocation events of ``torch.profiler`` (exact
allocator bytes; the process RSS would include allocator caching and other threads).
"""
from __future__ import annotations

import contextlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from basicsr.archs.conditions import example_conditions

__all__ = ['ModelStats', 'count_parameters', 'count_flops', 'peak_memory', 'peak_forward_memory', 'input_channels',
           'example_input', 'model_stats', 'format_count']

# keyword arguments that name a network's input channels, most specific first (Uformer: dd_in over in_chans)
_INPUT_CHANNEL_KWARGS = ('dd_in', 'in_chans', 'inp_channels', 'num_in_ch', 'img_channel', 'in_chn', 'in_c',
                         'in_nc', 'in_channels')


@dataclass
class ModelStats:
    """What :func:`model_stats` measured; ``flops`` = 2 x ``macs``; memory in bytes (None: not measured)."""
    type: str
    params: int
    flops: Optional[int]
    input_shape: Tuple[int, ...]
    output_shape: Optional[Tuple[int, ...]]
    peak_memory: Optional[int] = None
    flops_device: str = 'meta'

    @property
    def macs(self) -> Optional[int]:
        return None if self.flops is None else self.flops // 2


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def count_flops(net: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """FLOPs (= 2 x MACs, see the module docstring) of ``net(*inputs, **kwargs)`` in eval mode, no grad."""
    was_training = net.training
    net.eval()
    try:
        counter = FlopCounterMode(display=False)
        # the math attention path is counted as its matmuls; the fused CPU kernel would not be counted at all
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            net(*inputs, **kwargs)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop lines on file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_memory(fn: Callable[[], Any], device: Any = 'cpu') -> int:
    """Peak bytes of tensor memory allocated while ``fn()`` runs, beyond what was allocated before it
    (CUDA: the caching allocator's statistics; CPU: the profiler's allocation events)."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    current = peak = 0
    # start_ns() exists from torch 2.4; torch 2.3's events only have start_us()
    start = (lambda e: e.start_ns()) if events and hasattr(events[0], 'start_ns') else (lambda e: e.start_us())
    for event in sorted(events, key=start):
        current += event.nbytes()
        peak = max(peak, current)
    return int(peak)


def peak_forward_memory(net: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """Peak bytes allocated by one eval forward pass under ``no_grad`` beyond what existed before it."""
    net.eval()
    device = next(iter(net.parameters()), torch.empty(0)).device

    def forward() -> None:
        with torch.no_grad():
            net(*inputs, **kwargs)
    return peak_memory(forward, device)


def input_channels(net: nn.Module, opt: Dict[str, Any]) -> int:
    """Channels of the network's input: from its kwargs or their defaults (``in_chans``, ``inp_channels``,
    ... ; NAFSSR's ``train_size``), else the first convolution's input channels."""
    defaults = {name: p.default for name, p in inspect.signature(type(net).__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for key in _INPUT_CHANNEL_KWARGS:
        value = opt.get(key, defaults.get(key))
        if isinstance(value, int):
            return value
    train_size = opt.get('train_size', defaults.get('train_size'))
    if isinstance(train_size, (list, tuple)) and len(train_size) == 4:
        return int(train_size[1])
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            return module.in_channels if isinstance(module, nn.Conv2d) else module.in_features
    raise ValueError(f"cannot tell the input channels of {opt.get('type')}; pass them explicitly")


def example_input(net: nn.Module, opt: Dict[str, Any], size: Sequence[int], batch: int = 1,
                  channels: Optional[int] = None, device: Any = 'cpu') -> torch.Tensor:
    """Random ``(batch, C, H, W)`` input in [0, 1]; H, W are rounded up to the network's ``size_multiple``
    (if it declares one) so that every registered network accepts it."""
    h, w = int(size[0]), int(size[1])
    multiple = int(getattr(net, 'size_multiple', 1) or 1)
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    c = channels or input_channels(net, opt)
    if torch.device(device).type == 'meta':
        return torch.empty(batch, c, h, w, device='meta')
    return torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0)).to(device)


def _output_shape(out: Any) -> Optional[Tuple[int, ...]]:
    while isinstance(out, (list, tuple)) and out:
        out = out[0]
    return tuple(out.shape) if isinstance(out, torch.Tensor) else None


def model_stats(opt: Dict[str, Any], size: Sequence[int] = (256, 256), memory: bool = True,
                channels: Optional[int] = None, batch: int = 1) -> ModelStats:
    """Parameters, FLOPs and (if ``memory``) peak forward memory of ``build_network(opt)`` on a
    ``(batch, C, *size)`` input. FLOPs on the meta device when possible, else on CPU."""
    from basicsr.archs import build_network
    flops: Optional[int] = None
    out_shape = None
    flops_device = 'meta'
    try:
        with torch.device('meta'):
            meta_net = build_network(dict(opt))
        x = example_input(meta_net, opt, size, batch, channels, 'meta')
        params = count_parameters(meta_net)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = meta_net.eval()(x, **example_conditions(meta_net, batch))  # ids stay on the CPU
        flops, out_shape, in_shape = int(counter.get_total_flops()), _output_shape(out), tuple(x.shape)
    except (NotImplementedError, RuntimeError, ValueError):
        flops_device = 'cpu'  # a forward that needs real values (data-dependent shapes, .item())
    net = None
    if flops is None or memory:
        net = build_network(dict(opt)).eval()
        x = example_input(net, opt, size, batch, channels)
        params = count_parameters(net)
        in_shape = tuple(x.shape)
        if flops is None:
            flops = count_flops(net, x, **example_conditions(net, batch))
            with torch.no_grad():
                out_shape = _output_shape(net(x, **example_conditions(net, batch)))
    peak = peak_forward_memory(net, x, **example_conditions(net, batch)) if memory else None
    return ModelStats(opt['type'], params, flops, in_shape, out_shape, peak, flops_device)


def format_count(n: Optional[float], unit: str = '') -> str:
    """``12_345_678`` -> ``'12.35M'``; None -> ``'-'``."""
    if n is None:
        return '-'
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= scale:
            return f'{n / scale:.2f}{suffix}{unit}'
    return f'{n:.0f}{unit}'
