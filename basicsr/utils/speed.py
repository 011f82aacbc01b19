"""PyTorch's fast paths, switched on by one ``speed:`` block and applied in one place.

Option files (top level; ``test.py``/``train.py`` flags ``--compile [MODE] --channels-last --autocast DTYPE
--cudnn-benchmark`` set the same keys, ``demo.py`` has the same flags)::

    speed:
      compile: false          # true (mode 'default') or {mode: default|reduce-overhead|max-autotune|...}
      channels_last: false    # 4-D parameters and inputs in NHWC memory format
      autocast: false         # bf16 (CPU and CUDA) or fp16 (CUDA): the network runs in that precision
      cudnn_benchmark: false  # CUDA: let cuDNN time its algorithms for each new input shape

Every path is off by default and changes only how the same arithmetic is scheduled, except ``autocast``
(bf16 keeps 8 mantissa bits: outputs differ from fp32 by ~1e-3, see the README's table). Inference
(:func:`~basicsr.inference.pipeline.build_inference`) runs the network through :class:`FastNetwork`, which
converts the input's memory format, enters autocast and returns float32 outputs; training wraps ``net_g`` in
the same class (autocast there is ``train.amp``, which also covers the losses).

Fallbacks, each with a :class:`SpeedFallbackWarning` naming the reason: ``fp16`` autocast on CPU (slow
there: off), bf16 on a CUDA device without bf16, ``cudnn_benchmark`` without CUDA (ignored), and a compiled
call that raises where the eager network does not (no C++ compiler, an unsupported operator): the network
then runs eagerly from that call on. ``state_dict()`` of a :class:`FastNetwork` has the plain network's names,
so checkpoints load into the plain network (and ``load_pretrained`` also strips torch.compile's ``_orig_mod.``).
"""
from __future__ import annotations

import argparse
import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch
from torch import nn

from basicsr.archs.outputs import NamedOutputs

__all__ = ['SpeedOptions', 'SpeedFallbackWarning', 'FastNetwork', 'parse_speed', 'apply_speed', 'set_memory_format',
           'autocast_dtype', 'add_speed_arguments', 'speed_overrides', 'speed_block', 'SPEED_KEYS']

SPEED_KEYS = ('compile', 'channels_last', 'autocast', 'cudnn_benchmark')
AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


class SpeedFallbackWarning(UserWarning):
    """A requested fast path is not used; the message says why and what runs instead."""


class SpeedOptionError(ValueError):
    """A wrong ``speed`` option; the message names the dotted key."""


@dataclass(frozen=True)
class SpeedOptions:
    """Parsed ``speed`` block. ``compile``: the torch.compile mode or None (off); ``autocast``: 'bf16',
    'fp16' or None."""
    compile: Optional[str] = None
    channels_last: bool = False
    autocast: Optional[str] = None
    cudnn_benchmark: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.compile or self.channels_last or self.autocast or self.cudnn_benchmark)

    def describe(self) -> str:
        parts = [f'compile({self.compile})' if self.compile else '', 'channels_last' if self.channels_last else '',
                 f'autocast {self.autocast}' if self.autocast else '',
                 'cudnn_benchmark' if self.cudnn_benchmark else '']
        return ' + '.join(p for p in parts if p) or 'plain'


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SpeedOptionError(f'{key} must be true or false, got {value!r}')
    return value


def parse_speed(block: Any, where: str = 'speed') -> SpeedOptions:
    """Check a ``speed`` block (None/{} = all off) and return its :class:`SpeedOptions`."""
    if block is None or isinstance(block, SpeedOptions):
        return block or SpeedOptions()
    if not isinstance(block, Mapping):
        raise SpeedOptionError(f'{where} must be a mapping like {{compile: true, channels_last: true}}, got {block!r}')
    unknown = [k for k in block if k not in SPEED_KEYS]
    if unknown:
        raise SpeedOptionError(f"unknown option '{where}.{unknown[0]}'; accepted: {', '.join(SPEED_KEYS)}")
    mode = block.get('compile', False)
    if isinstance(mode, Mapping):
        extra = [k for k in mode if k != 'mode']
        if extra:
            raise SpeedOptionError(f"unknown option '{where}.compile.{extra[0]}'; accepted: mode")
        mode = mode.get('mode', 'default')
    elif mode is True:
        mode = 'default'
    elif mode in (False, None):
        mode = None
    if mode is not None and mode not in COMPILE_MODES:
        raise SpeedOptionError(f'{where}.compile must be true, false or {{mode: M}} with M one of '
                               f'{", ".join(COMPILE_MODES)}; got {block.get("compile")!r}')
    dtype = block.get('autocast', False)
    if dtype in (False, None):
        dtype = None
    elif dtype not in AUTOCAST_DTYPES:
        raise SpeedOptionError(f"{where}.autocast must be false, 'bf16' or 'fp16', got {dtype!r}")
    return SpeedOptions(compile=mode, channels_last=_bool(block.get('channels_last', False), f'{where}.channels_last'),
                        autocast=dtype,
                        cudnn_benchmark=_bool(block.get('cudnn_benchmark', False), f'{where}.cudnn_benchmark'))


def _warn(message: str) -> None:
    warnings.warn(message, SpeedFallbackWarning, stacklevel=3)


def autocast_dtype(opts: SpeedOptions, device: torch.device, where: str = 'speed') -> Optional[torch.dtype]:
    """The autocast dtype that ``opts`` asks for and ``device`` supports; None (with a warning) otherwise."""
    if opts.autocast is None:
        return None
    if device.type == 'cpu' and opts.autocast == 'fp16':
        _warn(f'{where}.autocast: fp16 is not used on CPU (no fp16 matrix units; use bf16): running in float32')
        return None
    if device.type == 'cuda' and opts.autocast == 'bf16' and not torch.cuda.is_bf16_supported():
        _warn(f'{where}.autocast: this CUDA device has no bf16 support (use fp16): running in float32')
        return None
    return AUTOCAST_DTYPES[opts.autocast]


def set_memory_format(net: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Put the 4-D parameters and buffers of ``net`` in ``memory_format`` in place (``Module.to`` refuses
    networks that also hold 5-D parameters, e.g. PromptIR's prompts). Values and names are unchanged."""
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return net


def _to_float32(out: Any) -> Any:
    """Floating tensors of a network output (tensor, sequence or mapping) as float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, NamedOutputs):
        return NamedOutputs({k: _to_float32(v) for k, v in out.items()}, pred=out._pred)
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


class FastNetwork(nn.Module):
    """``module`` run with the fast paths of ``opts``: NHWC inputs, autocast (float32 outputs) and a
    torch.compile'd call that falls back to the eager module when compiling fails.

    ``state_dict``/``load_state_dict`` are the module's own (plain names). ``cast_output``: return float32
    under autocast (inference); training keeps the autocast dtype so that the losses decide.
    """

    def __init__(self, module: nn.Module, opts: SpeedOptions, device: Optional[torch.device] = None,
                 cast_output: bool = True, where: str = 'speed') -> None:
        super().__init__()
        self.module = module
        self.opts, self.where, self.cast_output = opts, where, cast_output
        if device is None:
            device = next(iter(module.parameters()), torch.empty(0)).device
        self.dtype = autocast_dtype(opts, device, where)
        self.device_type = device.type
        if opts.channels_last:
            set_memory_format(module, torch.channels_last)
        compiled = torch.compile(module, mode=None if opts.compile == 'default' else opts.compile) \
            if opts.compile else None
        object.__setattr__(self, '_compiled', compiled)  # not a submodule: parameters and names stay the module's
        self.compile_error: Optional[str] = None

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.module(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager call below decides
            out = self.module(*args, **kwargs)  # raises the network's own error if the call itself is wrong
            reason = f'{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""}'
            self.compile_error = reason
            object.__setattr__(self, '_compiled', None)
            _warn(f'{self.where}.compile: torch.compile failed on {type(self.module).__name__} ({reason}); '
                  'running the network eagerly')
            return out

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if self.opts.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self._call(x, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self._call(x, *args, **kwargs)
        return _to_float32(out) if self.cast_output else out

    def state_dict(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return self.opts.describe()


def apply_speed(net: nn.Module, opts: Any, device: Optional[torch.device] = None, cast_output: bool = True,
                where: str = 'speed') -> nn.Module:
    """``net`` wrapped in a :class:`FastNetwork` for the options ``opts`` (a ``speed`` block or
    :class:`SpeedOptions`), or ``net`` itself when every path is off. Sets cuDNN's benchmark flag."""
    opts = parse_speed(opts, where)
    if device is None:
        device = next(iter(net.parameters()), torch.empty(0)).device
    if opts.cudnn_benchmark:
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        else:
            _warn(f'{where}.cudnn_benchmark: the network runs on {device.type}, not CUDA: ignored')
    if not (opts.compile or opts.channels_last or opts.autocast):
        return net
    return FastNetwork(net, opts, device, cast_output, where)


@contextlib.contextmanager
def no_speed_warnings() -> Iterator[None]:
    """Silence :class:`SpeedFallbackWarning` (benchmarks that report the fallback themselves)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SpeedFallbackWarning)
        yield


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line flags of the ``speed`` block (shared by test.py, train.py and demo.py)."""
    group = parser.add_argument_group('speed (the speed: option block)')
    group.add_argument('--compile', nargs='?', const='default', default=None, choices=COMPILE_MODES, metavar='MODE',
                       help='torch.compile the network (MODE default|reduce-overhead|max-autotune; default: '
                       'speed.compile of the option file, else off)')
    group.add_argument('--channels-last', action='store_true', help='NHWC memory format (default: speed.channels_last of the option file, else off)')
    group.add_argument('--autocast', choices=sorted(AUTOCAST_DTYPES), default=None,
                       help='run the network in bf16 (CPU/CUDA) or fp16 (CUDA) (default: speed.autocast of the option '
                       'file, else off: fp32)')
    group.add_argument('--cudnn-benchmark', action='store_true', help='cuDNN autotuner (default: speed.cudnn_benchmark of the option '
                       'file, else off)')


def _flag_values(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``speed`` keys the flags in ``args`` set (flags not given are left out)."""
    out: Dict[str, Any] = {}
    if getattr(args, 'compile', None):
        out['compile'] = {'mode': args.compile}
    for key in ('channels_last', 'cudnn_benchmark'):
        if getattr(args, key, False):
            out[key] = True
    if getattr(args, 'autocast', None):
        out['autocast'] = args.autocast
    return out


def speed_overrides(args: argparse.Namespace) -> List[str]:
    """``--set`` overrides for the speed flags given in ``args`` (test.py, train.py)."""
    return [f'speed.{k}={{mode: {v["mode"]}}}' if k == 'compile' else f'speed.{k}={str(v).lower()}'
            for k, v in _flag_values(args).items()]


def speed_block(base: Optional[Mapping[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    """An option file's ``speed`` block with the flags in ``args`` laid over it (demo.py)."""
    return {**dict(base or {}), **_flag_values(args)}
