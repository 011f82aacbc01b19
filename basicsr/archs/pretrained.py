"""Load official and toolbox checkpoints into a network, strictly, with errors that say what differs.

Official releases store weights in several layouts; :func:`read_state_dict` finds the state dict in all of
them:

* BasicSR-style ``{'params': sd}`` / ``{'params_ema': sd}`` (both: the EMA weights are preferred);
* ``{'state_dict': sd, 'epoch': ..., 'optimizer': ...}`` training checkpoints (MPRNet, DSRIR, Lightning);
* ``{'model': sd}`` / ``{'net': sd}`` / ``{'model_state_dict': sd}``;
* a raw state dict;
* a ``.safetensors`` file (a raw state dict, or the groups above stored by this toolbox);
* any of these with DataParallel / DistributedDataParallel ``module.`` or ``torch.compile``
  ``_orig_mod.`` prefixes on every key, or (in :func:`load_pretrained`) the attribute name of a training
  wrapper on every key, e.g. PromptIR's Lightning ``{'state_dict': {'net.<key>': ...}}``.

:func:`load_pretrained` then loads it with ``strict=True`` by default. On a mismatch it raises
:class:`CheckpointMismatchError` naming the first mismatching key (with both shapes when the shapes differ),
the missing and the unexpected keys -- instead of torch's wall of text. Entries that a submodule declares
it does not use (:class:`IgnoresCheckpointEntries`, e.g. the frozen CLIP inside a DA-CLIP checkpoint) are
dropped first, by both :func:`load_pretrained` and the module's own ``load_state_dict``.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from basicsr.utils.serialization import UnreadableFileError, is_safetensors, load_torch_file, read_weights

__all__ = ['AUTO_KEYS', 'CheckpointMismatchError', 'IgnoresCheckpointEntries', 'read_checkpoint',
           'extract_state_dict', 'read_state_dict', 'compare_state_dicts', 'drop_ignored_entries', 'load_pretrained',
           'strip_owner_prefix']

# key='auto' takes the first of these that holds a state dict (EMA weights are the ones official releases score)
AUTO_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net', 'model_state_dict', 'network', 'generator')
# prefixes that wrappers add to every key: DataParallel / DDP, torch.compile
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
_LIST_LIMIT = 8  # key names listed per category in error messages

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, Path]
logger = logging.getLogger('basicsr')


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes differ from the network's (attributes hold the details)."""

    def __init__(self, message: str, missing: List[str], unexpected: List[str],
                 mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


class IgnoresCheckpointEntries:
    """Mixin (before ``nn.Module`` in the bases) for networks whose official checkpoints hold entries they do not
    need: the entries under ``ignored_checkpoint_prefixes`` (relative to the module) are dropped on load, so
    ``load_state_dict(strict=True)`` still checks every other entry. The class documents why they are unused.
    """

    ignored_checkpoint_prefixes: Tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's hook)
        ignored = tuple(prefix + p for p in self.ignored_checkpoint_prefixes)
        for key in [k for k in state_dict if ignored and k.startswith(ignored)]:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def drop_ignored_entries(net: nn.Module, sd: Mapping[str, torch.Tensor]) -> StateDict:
    """``sd`` without the entries that submodules of ``net`` ignore (:class:`IgnoresCheckpointEntries`)."""
    ignored = tuple(f'{name}.{p}' if name else p for name, module in net.named_modules()
                    for p in getattr(module, 'ignored_checkpoint_prefixes', ()))
    return OrderedDict((k, v) for k, v in sd.items() if not (ignored and k.startswith(ignored)))


def read_checkpoint(path: PathLike, trust_pickle: bool = False) -> Any:
    """The contents of a weight file on the CPU, with a clear error for a missing, unreadable or unsafe file.

    ``.safetensors`` files give their state dict (or groups of them, see
    :func:`basicsr.utils.serialization.read_weights`). Torch files are unpickled with tensors and containers
    only (:func:`basicsr.utils.serialization.load_torch_file`); one that pickles other objects raises
    :class:`~basicsr.utils.serialization.RefusedPickleError` unless ``trust_pickle`` (only for trusted files,
    e.g. official training checkpoints that pickle an ``argparse.Namespace``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    if is_safetensors(path):
        return read_weights(path)[0]
    try:
        return load_torch_file(path, trust_pickle=trust_pickle)
    except UnreadableFileError as exc:
        raise UnreadableFileError(f'checkpoint {exc}') from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_wrapper_prefixes(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Remove a prefix that every key carries (repeatedly: ``module.module.`` from nested wrappers)."""
    out = OrderedDict(sd)
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if out and all(k.startswith(prefix) for k in out):
                out = OrderedDict((k[len(prefix):], v) for k, v in out.items())
                changed = True
    return out


def extract_state_dict(ckpt: Any, key: Optional[str] = 'auto', source: str = 'checkpoint') -> Tuple[StateDict, str]:
    """Find the state dict in a loaded checkpoint object.

    Args:
        ckpt: what ``torch.load`` returned.
        key: ``'auto'`` (first of :data:`AUTO_KEYS` holding a state dict, else the object itself if it is
            one), a top-level key (``'params'``), a dotted path (``'state_dict.model'``), or None / ``''``
            for a raw state dict.
        source: name used in error messages (the file path).
    Returns ``(state_dict without wrapper prefixes, description of where it was found)``.
    """
    if key in (None, ''):
        if not _is_state_dict(ckpt):
            raise ValueError(f'{source} is not a raw state dict (name -> tensor); {_describe(ckpt)}')
        return _strip_wrapper_prefixes(ckpt), 'the raw state dict'
    if key != 'auto':
        node = ckpt
        for part in key.split('.'):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"{source} has no key '{key}' ({_describe(ckpt)}); use key='auto' or one of the "
                               f'keys listed')
            node = node[part]
        if not _is_state_dict(node):
            raise ValueError(f"{source}['{key}'] is not a state dict (name -> tensor)")
        return _strip_wrapper_prefixes(node), f"key '{key}'"
    if isinstance(ckpt, Mapping):
        for name in AUTO_KEYS:
            node = ckpt.get(name)
            if _is_state_dict(node):
                return _strip_wrapper_prefixes(node), f"key '{name}'"
            if isinstance(node, Mapping):  # one level of nesting, e.g. {'state_dict': {'model': sd}}
                for inner in AUTO_KEYS:
                    if _is_state_dict(node.get(inner)):
                        return _strip_wrapper_prefixes(node[inner]), f"key '{name}.{inner}'"
    if _is_state_dict(ckpt):
        return _strip_wrapper_prefixes(ckpt), 'the raw state dict'
    raise ValueError(f'no state dict found in {source}: {_describe(ckpt)}; expected one of the keys '
                     f'{list(AUTO_KEYS)} or a raw name -> tensor mapping (pass key=... to choose)')


def strip_owner_prefix(expected: Mapping[str, torch.Tensor], sd: StateDict, where: str) -> Tuple[StateDict, str]:
    """Drop a first name component that every key carries when the rest are mostly the network's keys: the
    attribute under which a training wrapper held the network (PromptIR's Lightning module stores ``net.*``).
    Returns ``(state dict, where)``; unchanged unless the stripped names match more of the network's keys than
    the given ones and at least half of them (so a mismatch is then reported on the real names)."""
    heads = {k.split('.', 1)[0] for k in sd}
    if len(heads) != 1 or set(sd) == set(expected) or any('.' not in k for k in sd):
        return sd, where
    head = heads.pop()
    stripped = OrderedDict((k[len(head) + 1:], v) for k, v in sd.items())
    matched = len(set(stripped) & set(expected))
    if matched <= len(set(sd) & set(expected)) or 2 * matched < len(expected):
        return sd, where
    return stripped, f"{where} (prefix '{head}.' removed)"


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        shown = ', '.join(repr(k) for k in keys[:_LIST_LIMIT]) + (', ...' if len(keys) > _LIST_LIMIT else '')
        return f'its top-level keys are [{shown}]'
    return f'it holds a {type(obj).__name__}'


def read_state_dict(path: PathLike, key: Optional[str] = 'auto', trust_pickle: bool = False) -> StateDict:
    """The state dict stored in the checkpoint file ``path`` (see :func:`extract_state_dict` for ``key``)."""
    return extract_state_dict(read_checkpoint(path, trust_pickle), key, str(path))[0]


def compare_state_dicts(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]
                        ) -> Tuple[List[str], List[str], List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]]:
    """``(missing, unexpected, shape_mismatched)`` of ``given`` against ``expected`` (the network's), in the
    network's key order; mismatches are ``(key, given_shape, expected_shape)``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [(k, tuple(given[k].shape), tuple(v.shape)) for k, v in expected.items()
                  if k in given and tuple(given[k].shape) != tuple(v.shape)]
    return missing, unexpected, mismatched


def _names(keys: List[str]) -> str:
    more = f', ... ({len(keys) - _LIST_LIMIT} more)' if len(keys) > _LIST_LIMIT else ''
    return ', '.join(keys[:_LIST_LIMIT]) + more


def _mismatch_message(net: nn.Module, source: str, where: str, expected: Mapping[str, torch.Tensor],
                      missing: List[str], unexpected: List[str], mismatched: list) -> str:
    first = next((k for k in expected if k in missing or any(k == m[0] for m in mismatched)), None)
    lines = [f'checkpoint {source} ({where}) does not match {type(net).__name__}:']
    shapes = {m[0]: m for m in mismatched}
    if first in shapes:
        _, got, want = shapes[first]
        lines.append(f"  first mismatching key '{first}': checkpoint shape {got}, network shape {want} "
                     f'(a checkpoint of another configuration? check the network kwargs)')
    elif first is not None:
        lines.append(f"  first mismatching key '{first}': missing from the checkpoint")
    if mismatched:
        lines.append(f'  shape mismatches ({len(mismatched)}): '
                     + _names([f'{k} {got} vs {want}' for k, got, want in mismatched]))
    if missing:
        lines.append(f'  missing keys ({len(missing)}): {_names(missing)}')
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): {_names(unexpected)}')
    return '\n'.join(lines)


def load_pretrained(net: nn.Module, path: PathLike, key: Optional[str] = 'auto', strict: bool = True,
                    trust_pickle: bool = False) -> nn.Module:
    """Load the weights in ``path`` into ``net`` (in place) and return ``net``.

    Args:
        net: the network, built with the configuration the checkpoint was trained with.
        path: checkpoint file in any layout listed in the module docstring, or a ``.safetensors`` file.
        key: where the state dict is (``'auto'``: ``params_ema`` > ``params`` > ``state_dict`` > ``model`` >
            ``net`` > ...; a key / dotted path; None for a raw state dict).
        strict: require exactly the network's keys and shapes (default). With False, matching entries are
            loaded and the rest is logged as a warning.
        trust_pickle: unpickle objects other than tensors and containers (see :func:`read_checkpoint`).
    Raises FileNotFoundError (no file), RefusedPickleError (pickled objects, without ``trust_pickle``),
    KeyError / ValueError (no state dict at ``key``),
    :class:`CheckpointMismatchError` (keys or shapes differ, with ``strict``).
    """
    source = str(path)
    sd, where = extract_state_dict(read_checkpoint(path, trust_pickle), key, source)
    sd = drop_ignored_entries(net, sd)
    expected = net.state_dict()
    sd, where = strip_owner_prefix(expected, sd, where)
    missing, unexpected, mismatched = compare_state_dicts(expected, sd)
    if missing or unexpected or mismatched:
        message = _mismatch_message(net, source, where, expected, missing, unexpected, mismatched)
        if strict:
            raise CheckpointMismatchError(message, missing, unexpected, mismatched)
        logger.warning('%s\n  loading the %d matching entries (strict=False)', message,
                       len(expected) - len(missing) - len(mismatched))
        bad = {m[0] for m in mismatched}
        sd = OrderedDict((k, v) for k, v in sd.items() if k in expected and k not in bad)
    net.load_state_dict(sd, strict=strict)
    return net
