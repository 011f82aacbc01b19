"""Parse-time checks of every ``type:`` block of an option file.

For the model, the networks, losses, optimiser, scheduler, metrics, metric profiles, datasets and their
degradations (also inside multi-task ``tasks``): the name is registered (else the closest valid names are
suggested), every keyword argument is one the constructor takes, and every value has the type the
constructor expects (from its annotations, else from its default's type). So ``network_g.width: sixteen`` or
``train.optim_g.lr: fast`` stop the run before any work, naming the key, instead of failing inside torch.
"""
from __future__ import annotations

import collections.abc
import difflib
import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from basicsr.utils.registry import RegistryError, check_kwargs

NoneType = type(None)
_NUMBER = (int, float)
_SEQUENCE_ORIGINS = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping)
# values a YAML file can give for an array-like parameter (a tensor or an array built from a number or list)
_ARRAY_LIKE = (int, float, list, tuple)


# data folders that a script of the repository creates: (folder below datasets/, the command to run)
PREPARE_SCRIPTS = (
    ('datasets/denoise', 'python scripts/prepare_denoise_data.py'),
    ('datasets/samples', 'python scripts/prepare_denoise_data.py'),
    ('datasets/allinone_small', 'python scripts/prepare_allinone_data.py'),
    ('datasets/MiOIR/DF2K', 'python scripts/prepare_mioir_data.py --gt <DF2K HR folder> --out datasets/MiOIR/DF2K '
                            '(--depth-dir <depth maps> for haze)'),
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def prepare_hint(path: str) -> str:
    """'; run <script> to create it' when ``path`` is a data folder made by one of scripts/prepare_*.py."""
    p = Path(os.path.expanduser(path))
    candidates = [p.resolve()] if p.is_absolute() else [(Path.cwd() / p).resolve(), (REPO_ROOT / p).resolve()]
    for folder, command in PREPARE_SCRIPTS:
        top = (REPO_ROOT / folder).resolve()
        if any(c == top or top in c.parents for c in candidates):
            return f'; {command} creates it (run it from {REPO_ROOT})'
    return ''


def registry_problems(opt: Dict[str, Any], check_paths: bool = True) -> List[str]:
    """Every problem of the ``type:`` blocks of ``opt`` (one message per problem, naming the dotted key);
    ``check_paths`` also checks the data paths of multi-task ``tasks`` (the schema checks the others)."""
    from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, DEGRADATION_REGISTRY, LOSS_REGISTRY,
                                        MODEL_REGISTRY, SCHEDULER_REGISTRY)
    problems: List[str] = []
    if isinstance(opt.get('model_type'), str):
        _lookup(MODEL_REGISTRY.get, opt['model_type'], 'model_type', problems)
    for net_key in ('network_g', 'network_d'):
        if isinstance(opt.get(net_key), dict):
            check_block(net_key, opt[net_key], ARCH_REGISTRY.get, problems, ignore=('outputs', 'stage_weights'))
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    for key, value in train.items():
        if key.endswith('_opt') and isinstance(value, dict):
            check_block(f'train.{key}', value, LOSS_REGISTRY.get, problems,
                        ignore=('outputs', 'stage_weights', 'clamp'))
    if isinstance(train.get('optim_g'), dict):
        check_block('train.optim_g', train['optim_g'], _optimizer, problems, ignore=('params', ))
    if isinstance(train.get('scheduler'), dict):
        check_block('train.scheduler', train['scheduler'], SCHEDULER_REGISTRY.get, problems,
                    ignore=('optimizer', ))
    val = opt.get('val') if isinstance(opt.get('val'), dict) else {}
    _check_metrics(val, problems)
    for where in ('val', 'test'):
        if isinstance(opt.get(where), dict):
            _check_inference(opt[where], where, problems, check_paths)
    for name, block in (opt.get('datasets') or {}).items():
        if isinstance(block, dict):
            _check_dataset(f'datasets.{name}', block, DATASET_REGISTRY.get, DEGRADATION_REGISTRY.get, problems,
                           check_paths)
    return problems


def check_block(dotted: str, block: Dict[str, Any], get: Callable[[str], Any], problems: List[str],
                ignore: Sequence[str] = ()) -> Optional[Any]:
    """Check one ``{type: ..., **kwargs}`` block: registered type, known kwargs, value types."""
    if 'type' not in block:
        problems.append(f"'{dotted}.type' is required")
        return None
    target = _lookup(get, block['type'], f'{dotted}.type', problems)
    if target is None:
        return None
    kwargs = {k: v for k, v in block.items() if k != 'type' and k not in ignore}
    try:
        check_kwargs(target, kwargs, f"'{dotted}' ({block['type']})")
    except TypeError as exc:
        problems.append(str(exc))
        return target
    problems += [f"'{dotted}.{key}' ({block['type']}) must be {expected}, got {type(value).__name__} {value!r}"
                 for key, expected, value in kwarg_type_problems(target, kwargs)]
    return target


def _lookup(get: Callable[[str], Any], name: Any, dotted: str, problems: List[str]) -> Optional[Any]:
    if not isinstance(name, str):
        problems.append(f"'{dotted}' must be a type name (str), got {type(name).__name__} {name!r}")
        return None
    try:
        return get(name)
    except RegistryError as exc:
        problems.append(f"'{dotted}': {exc}")
        return None


def _optimizer(name: str) -> Any:
    from basicsr.models.image_restoration_model import OPTIMIZERS
    if name not in OPTIMIZERS:
        close = difflib.get_close_matches(name, list(OPTIMIZERS), n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        raise RegistryError(f"no optimiser type '{name}'{hint} (choose one of {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name]


def _check_metrics(val: Dict[str, Any], problems: List[str]) -> None:
    from basicsr.metrics.profiles import NON_METRIC_KEYS, PROFILES
    from basicsr.utils.registry import METRIC_REGISTRY
    if isinstance(val.get('profile'), str):
        _check_profile('val.profile', val['profile'], PROFILES, problems)
    for key, block in (val.get('metrics') or {}).items() if isinstance(val.get('metrics'), dict) else ():
        dotted = f'val.metrics.{key}'
        if not isinstance(block, dict):
            problems.append(f"'{dotted}' must be a mapping with a 'type' key (a metric), got {block!r}")
            continue
        if block.get('better', 'higher') not in ('higher', 'lower'):
            problems.append(f"'{dotted}.better' must be one of ['higher', 'lower'], got {block['better']!r}")
        check_block(dotted, block, METRIC_REGISTRY.get, problems, ignore=NON_METRIC_KEYS)


def _check_inference(block: Dict[str, Any], where: str, problems: List[str], check_paths: bool = True) -> None:
    """The inference options of ``val``/``test``: padding, tiles and grids by building their pipeline around an
    identity network; TLC and the task classifier (network type and arguments, weights file) on their own;
    instructions need the network."""
    from torch import nn

    from basicsr.inference.pipeline import InferenceOptionError, build_inference, tlc_options
    from basicsr.inference.task_classifier import task_classifier_problems
    from basicsr.utils.registry import ARCH_REGISTRY
    probe = {k: v for k, v in block.items() if k not in ('tlc', 'task_classifier', 'instruction')}
    try:
        build_inference(nn.Identity(), probe, where=where)
    except InferenceOptionError as exc:
        problems.append(str(exc))
    if block.get('tlc') not in (None, False):
        try:
            tlc_options(block['tlc'], f'{where}.tlc')
        except InferenceOptionError as exc:
            problems.append(str(exc))
    classifier = block.get('task_classifier')
    if classifier is None:
        return
    dotted = f'{where}.task_classifier'
    found = task_classifier_problems(classifier, dotted)
    if found:
        problems += found
        return
    check_block(f'{dotted}.network', dict(classifier['network']), ARCH_REGISTRY.get, problems)
    weights = Path(os.path.expanduser(classifier['weights']))
    if check_paths and not weights.is_file():
        problems.append(f"'{dotted}.weights': path '{classifier['weights']}' does not exist; expected the "
                        "classifier's weight file (.pth or .safetensors)")


def _check_profile(dotted: str, name: str, profiles: Mapping[str, Any], problems: List[str]) -> None:
    if name not in profiles:
        close = difflib.get_close_matches(name, list(profiles), n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        problems.append(f"'{dotted}': unknown metric profile '{name}'{hint} (known: {', '.join(profiles)})")


def _check_dataset(dotted: str, block: Dict[str, Any], get_dataset: Callable[[str], Any],
                   get_degradation: Callable[[str], Any], problems: List[str], check_paths: bool,
                   nested: bool = False) -> None:
    from basicsr.metrics.profiles import PROFILES
    from basicsr.utils.options import DATASET_KEYS
    for key in (k for k, spec in DATASET_KEYS.items() if spec.path and nested and check_paths):
        for path in block.get(key) if isinstance(block.get(key), list) else [block.get(key)]:
            if isinstance(path, str) and path not in ('none', '~') and not os.path.exists(os.path.expanduser(path)):
                problems.append(f"'{dotted}.{key}': path '{path}' does not exist{prepare_hint(path)}")
    if 'type' in block:
        cls = _lookup(get_dataset, block['type'], f'{dotted}.type', problems)
        for key, what in (getattr(cls, 'required_option_keys', None) or {}).items():
            if block.get(key) in (None, '', 'none', '~'):
                problems.append(f"'{dotted}.{key}' is required by {block['type']} ({what}), got "
                                f"{'null' if block.get(key) is None else repr(block.get(key))}")
    if isinstance(block.get('metric_profile'), str):
        _check_profile(f'{dotted}.metric_profile', block['metric_profile'], PROFILES, problems)
    degradation = block.get('degradation')
    if isinstance(degradation, dict):
        check_block(f'{dotted}.degradation', degradation, get_degradation, problems)
    elif isinstance(degradation, list):
        for i, step in enumerate(degradation):
            if isinstance(step, dict):
                check_block(f'{dotted}.degradation[{i}]', step, get_degradation, problems)
            else:
                problems.append(f"'{dotted}.degradation[{i}]' must be a mapping with a 'type' key, got {step!r}")
    tasks = block.get('tasks')
    items = tasks.items() if isinstance(tasks, dict) else enumerate(tasks) if isinstance(tasks, list) else ()
    for i, task in items:
        if isinstance(task, dict):
            _check_dataset(f'{dotted}.tasks[{i}]', task, get_dataset, get_degradation, problems, check_paths,
                           nested=True)


# ---------------------------------------------------------------------------------------------- value types
def kwarg_type_problems(fn: Callable, kwargs: Dict[str, Any]) -> List[Tuple[str, str, Any]]:
    """``(key, expected, value)`` for each keyword argument whose value ``fn`` cannot take.

    The expected type comes from the parameter's annotation (``int``, ``float``, ``bool``, ``str``, sequences,
    mappings, ``Optional``/unions of them; other annotations are not checked) or, without one, from the type
    of its default. Only what a YAML file can hold is judged: an ``int`` for a ``float`` is fine, a float with
    an integral value for an ``int`` too.
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return []
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations (forward refs, missing imports): skip them
        hints = {}
    out = []
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None:
            continue
        ann = hints.get(key, param.annotation if not isinstance(param.annotation, str) else inspect.Parameter.empty)
        if ann is not inspect.Parameter.empty:
            accepted = _accepted(ann)
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            accepted = _accepted(_NUMBER if type(param.default) in _NUMBER else type(param.default))
        else:
            accepted = None
        if value is None and (param.default is None or ann is inspect.Parameter.empty):
            continue
        if accepted is not None and not _fits(value, accepted):
            out.append((key, _describe(accepted), value))
    return out


def _accepted(ann: Any) -> Optional[Tuple[type, ...]]:
    """Python types (as YAML gives them) that satisfy ``ann``; None when ``ann`` is not judged."""
    if isinstance(ann, tuple):
        return ann
    if ann is Any:
        return None
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(ann) if not _is_array(a)]
        members = [_accepted(a) for a in args]
        if None in members:
            return None
        return tuple({t for m in members for t in m}) if members else _ARRAY_LIKE
    if origin is typing.Literal:
        return tuple({type(v) for v in typing.get_args(ann)})
    base = origin or ann
    if base is NoneType or ann is None:
        return (NoneType, )
    if base is bool:
        return (bool, )
    if base is int:
        return (int, )
    if base is float:
        return _NUMBER
    if base is str:
        return (str, )
    if isinstance(base, type) and issubclass(base, _MAPPING_ORIGINS):
        return (dict, )
    if base in _SEQUENCE_ORIGINS or (isinstance(base, type) and issubclass(base, (list, tuple))):
        return (list, tuple)
    if _is_array(ann):
        return _ARRAY_LIKE
    return None


def _is_array(ann: Any) -> bool:
    return getattr(ann, '__name__', '') in ('Tensor', 'ndarray')


def _fits(value: Any, accepted: Tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in accepted
    if isinstance(value, float) and int in accepted and float not in accepted:
        return value.is_integer()
    if isinstance(value, int) and bool in accepted and int not in accepted:
        return value in (0, 1)
    return isinstance(value, accepted)


def _describe(accepted: Tuple[type, ...]) -> str:
    names = {int: 'int', float: 'float', bool: 'bool', str: 'str', list: 'list', tuple: 'list', dict: 'mapping',
             NoneType: 'null'}
    words = []
    for t in (bool, int, float, str, list, tuple, dict, NoneType):
        if t in accepted and names[t] not in words and not (t is int and float in accepted):
            words.append(names[t])
    if float in accepted and int in accepted:
        words[words.index('float')] = 'a number (float)'
    return ' or '.join(words) or '/'.join(t.__name__ for t in accepted)


def require_network(opt: Dict[str, Any], source: str, key: str = 'network_g') -> Dict[str, Any]:
    """The ``key`` block of ``opt`` for entry points that read only the network (demo, scripts); raises
    :class:`~basicsr.utils.options.OptionError` when it is missing or its type/arguments are wrong."""
    from basicsr.utils.options import OptionError
    from basicsr.utils.registry import ARCH_REGISTRY
    block = opt.get(key)
    if not isinstance(block, dict):
        raise OptionError(f"option file {source}: '{key}' is required (a mapping with the network's 'type' and "
                          f'its arguments), got {block!r}')
    problems: List[str] = []
    check_block(key, block, ARCH_REGISTRY.get, problems, ignore=('outputs', 'stage_weights'))
    if problems:
        raise OptionError(f'option file {source}: ' + '; '.join(problems))
    return block
