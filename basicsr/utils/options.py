"""Option files: YAML loading with ``_base_`` inheritance, ``--set`` overrides and validation.

The schema follows BasicSR's (so the official Restormer/NAFNet option files run unchanged apart from
their dataset paths). Every problem is reported before any work starts, naming the option file, the
dotted key, what was expected and, for a typo, the closest valid key.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml


class OptionError(ValueError):
    """A problem in an option file; the message names the file and the dotted key."""


# ---------------------------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``5e3`` as floats (YAML 1.1 wants ``1.0e-3``) and refuses a key
    given twice in one mapping (plain PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        first: Dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == 'tag:yaml.org,2002:merge':
                continue
            if key_node.value in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key_node.value}' (first given at line {first[key_node.value]})",
                    key_node.start_mark)
            first[key_node.value] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$''', re.X),
    list('-+0123456789.'))


def load_yaml(path: str | Path) -> Dict[str, Any]:
    """Read one YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'option file not found: {path}')
    try:
        data = yaml.load(path.read_text(encoding='utf-8'), Loader=_Loader)
    except UnicodeDecodeError as exc:
        raise OptionError(f'{path}: not an option file: not UTF-8 text (byte {exc.start}); pass a .yml file') from exc
    except yaml.YAMLError as exc:
        raise OptionError(f'{path}: not valid YAML: {yaml_problem(exc)}') from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OptionError(f'{path}: the top level must be a mapping, got {type(data).__name__}')
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: the problem and where (line, column)."""
    problem = getattr(exc, 'problem', None)
    mark = getattr(exc, 'problem_mark', None)
    if problem is None:
        return ' '.join(str(exc).split())
    where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
    context = getattr(exc, 'context', None)
    return f"{problem}{where}" + (f' ({context})' if context else '')


def deep_merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``; a ``_delete_: true`` key replaces instead."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get('_delete_', False):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy({k: v for k, v in value.items() if k != '_delete_'}
                                     if isinstance(value, dict) else value)
    return out


def load_with_bases(path: str | Path, _seen: Optional[Tuple[str, ...]] = None) -> Dict[str, Any]:
    """Load ``path`` and merge the files in its ``_base_`` (a path or a list, relative to the file)."""
    path = Path(path).resolve()
    seen = _seen or ()
    if str(path) in seen:
        raise OptionError(f'{path}: _base_ inheritance cycle: {" -> ".join(seen + (str(path), ))}')
    data = load_yaml(path)
    bases = data.pop('_base_', None)
    if bases is None:
        return data
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        base_path = (path.parent / base) if not os.path.isabs(base) else Path(base)
        if not base_path.is_file():
            raise OptionError(f"{path}: key '_base_': file '{base}' not found (looked at {base_path})")
        merged = deep_merge(merged, load_with_bases(base_path, seen + (str(path), )))
    return deep_merge(merged, data)


def apply_overrides(opt: Dict[str, Any], overrides: Iterable[str], source: str = '--set') -> Dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a copy of ``opt``."""
    out = copy.deepcopy(opt)
    for item in overrides:
        key, sep, raw = item.partition('=')
        if not sep or not key.strip():
            raise OptionError(f"{source}: '{item}' is not of the form dotted.key=value")
        try:
            value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise OptionError(f"{source} {item}: the value is not valid YAML ({yaml_problem(exc)}); quote a "
                              f"string that contains ':' '[' '{{' or '#', e.g. {key}='\"...\"'") from exc
        node = out
        parts = key.strip().split('.')
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise OptionError(f"{source}: cannot set '{key}': '{'.'.join(parts[:i + 1])}' is a "
                                  f'{type(nxt).__name__}, not a mapping')
            node = nxt
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------------------------------------- schema
ANY = object()          # any value
REGISTRY_BLOCK = 'registry'  # {'type': ..., kwargs checked against the registered class}


class Key:
    """One schema entry: allowed python types, whether required, a default, child schema."""

    def __init__(self, types: Any = ANY, required: bool = False, default: Any = None,
                 children: Optional[Dict[str, 'Key']] = None, open_children: bool = False,
                 registry: Optional[str] = None, path: bool = False, choices: Optional[Sequence] = None,
                 doc: str = '') -> None:
        self.types, self.required, self.default = types, required, default
        self.children, self.open_children = children, open_children
        self.registry, self.path, self.choices, self.doc = registry, path, choices, doc


NUM = (int, float)
OPT_STR = (str, type(None))
OPT_NUM = (int, float, type(None))

INFERENCE_KEYS = {
    'pad_multiple': Key((int, str, type(None)), doc="pad input to a multiple (int) or 'auto'"),
    'window_size': Key((int, type(None)), doc='Restormer alias of pad_multiple'),
    'center_crop_multiple': Key((int, type(None)), doc='PromptIR/DSRIR evaluation crop'),
    'tile': Key((dict, type(None)), open_children=True, children={}, doc='{size, overlap, batch}'),
    'grids': Key((bool, dict, type(None)), doc='HINet/NAFNet grids test'),
    'crop_size': Key((int, type(None)), doc='grids crop size (HINet option files)'),
    'self_ensemble': Key((bool, type(None))),
    'tlc': Key((dict, type(None)), open_children=True, children={}, doc='{train_size, base_size, fast_imp}'),
    'task_classifier': Key((dict, type(None)), open_children=True, children={},
                           doc='{network, weights, param_key}: predicts the task of explicit-prompt networks'),
    'instruction': Key((str, type(None)), doc='instruction mode of routed networks (UniRestorer): a tree node name'),
}

# Real-ESRGAN's second-order degradation (RealESRGANModel), top-level as in its option files
_REALESRGAN_KEYS = {
    **{k: Key(bool) for k in ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'high_order_degradation')},
    **{k + s: Key(list) for k in ('resize_prob', 'resize_range', 'noise_range', 'poisson_scale_range', 'jpeg_range')
       for s in ('', '2')},
    **{k + s: Key(NUM) for k in ('gaussian_noise_prob', 'gray_noise_prob') for s in ('', '2')},
    'second_blur_prob': Key(NUM), 'gt_size': Key(int), 'queue_size': Key(int),
}
# RealESRGANDataset's kernel options
_REALESRGAN_DATASET_KEYS = {
    'meta_info': Key(OPT_STR, path=True), 'crop_pad_size': Key(int), 'final_sinc_prob': Key(NUM),
    **{k + s: Key(t) for k, t in (('blur_kernel_size', int), ('kernel_list', list), ('kernel_prob', list),
                                  ('blur_sigma', list), ('betag_range', list), ('betap_range', list),
                                  ('sinc_prob', NUM)) for s in ('', '2')},
}

DATASET_KEYS = {
    # identity and loader
    'name': Key(str), 'type': Key(str, required=True), 'phase': Key(str),
    'use_shuffle': Key(bool), 'num_worker_per_gpu': Key(int), 'batch_size_per_gpu': Key(int),
    'dataset_enlarge_ratio': Key(NUM), 'prefetch_mode': Key(OPT_STR, choices=[None, 'cpu', 'cuda']),
    'pin_memory': Key(bool), 'persistent_workers': Key(bool), 'prefetch_factor': Key(int), 'drop_last': Key(bool),
    # paths and io
    'dataroot_gt': Key((str, list, type(None)), path=True), 'dataroot_lq': Key((str, list, type(None)), path=True),
    'meta_info_file': Key(OPT_STR, path=True), 'filename_tmpl': Key(str), 'io_backend': Key(dict, open_children=True),
    # crops and augmentation
    'gt_size': Key((int, type(None))), 'use_flip': Key(bool), 'use_hflip': Key(bool), 'use_rot': Key(bool),
    'geometric_augs': Key(bool), 'aug_identity_weight': Key(int),
    'saturation_jitter': Key((dict, type(None)), open_children=True, children={}),
    'trim_to_multiple': Key((int, type(None))), 'pad_mode': Key(str, choices=['symmetric', 'reflect']),
    'scale': Key(int), 'color': Key(OPT_STR), 'in_ch': Key(int),
    'skip_bad': Key(bool), 'cache_images': Key(bool), 'pad_to_gt_size': Key(bool),
    # Restormer progressive training
    'mini_batch_sizes': Key(list), 'iters': Key(list), 'gt_sizes': Key(list),
    'progressive_crop': Key(str, choices=['batch', 'per_sample', 'loader']),
    # synthetic degradations
    'degradation': Key((dict, list)), 'noise_seed': Key(int),
    'sigma_type': Key(str), 'sigma_range': Key((list, NUM)), 'sigma_test': Key(NUM),
    # multi-task data (all-in-one)
    'tasks': Key((list, dict)), 'balance_tasks': Key(bool), 'num_task_prompts': Key(int),
    # list-file pairs (DSRIR CSV, PromptIR id lists, SOTS name rule) and per-set evaluation protocol
    # one node of a UniRestorer degradation tree (TreeNodeDataset)
    'tree_file': Key(str, path=True), 'node': Key((int, str)), 'dataset_type': Key(str),
    'list_file': Key(OPT_STR, path=True), 'list_format': Key(str, choices=['csv', 'lines']),
    **_REALESRGAN_DATASET_KEYS,
    'gt_from_lq': Key(list), 'metric_profile': Key(str),
}

SCHEMA: Dict[str, Key] = {
    'name': Key(str, required=True),
    'imports': Key((list, str, type(None)), doc='plug-in modules to import first (their registrations count)'),
    'model_type': Key(str, default='ImageRestorationModel'),
    'scale': Key(int, default=1),
    'num_gpu': Key((int, str), default='auto'),
    'manual_seed': Key((int, type(None)), default=0),
    'is_train': Key(bool),
    'find_unused_parameters': Key(bool, default=False),
    'datasets': Key(dict, open_children=True, children=DATASET_KEYS, doc='train / val* / test* blocks'),
    'network_g': Key(dict, registry='arch'),
    'network_d': Key(dict, registry='arch', doc='discriminator of GAN models (SRGANModel, ESRGANModel)'),
    'path': Key(dict, default={}, children={
        'pretrain_network_d': Key(OPT_STR, path=True), 'param_key_d': Key(str),
        'strict_load_d': Key(bool),
        'pretrain_network_g': Key(OPT_STR, path=True), 'param_key_g': Key(str, default='auto'),
        'strict_load_g': Key(bool, default=True), 'resume_state': Key(OPT_STR, path=True),
        'trust_pickle': Key(bool, default=False, doc='unpickle any object in the weight and state files this run '
                            'loads (torch weights-only mode off): only for files you trust (--trust-pickle)'),
        'experiments_root': Key(OPT_STR), 'results_root': Key(OPT_STR), 'root': Key(OPT_STR),
        'ignore_resume_networks': Key((list, type(None))), 'auto_resume': Key(bool, default=True),
        'param_key_g_ema': Key(OPT_STR, doc='initialise the EMA copy from this key of pretrain_network_g'),
    }),
    'train': Key(dict, children={
        'optim_d': Key(dict), 'net_d_iters': Key(int), 'net_d_init_iters': Key(int),
        'optim_g': Key(dict), 'scheduler': Key(dict, open_children=True),
        'total_iter': Key(NUM, required=True), 'warmup_iter': Key(NUM, default=-1),
        'ema_decay': Key(NUM, default=0), 'ema_warmup': Key(bool, default=False),
        'use_grad_clip': Key((bool, type(None)), doc='default: the model type decides (ImageRestorationModel: '
                             'clip at grad_clip_norm, as NAFNet/HINet)'),
        'grad_clip_norm': Key(NUM, default=0.01), 'accumulate_grad': Key(int, default=1),
        'amp': Key((str, bool, type(None)), choices=[None, False, 'bf16', 'fp16']),
        'mixing_augs': Key(dict, open_children=True), 'progressive': Key(dict, open_children=True),
        'loss_inputs': Key(dict, open_children=True),
        'label_smoothing': Key(NUM, doc='ClassifierModel: cross-entropy label smoothing in [0, 1)'),
        'ce_weight': Key(NUM, doc='DegradationEncoderModel: weight of the cross-entropy (0: off)'),
    }),
    'val': Key(dict, children={
        'val_freq': Key(NUM), 'save_img': Key(bool, default=False), 'suffix': Key(OPT_STR),
        'pbar': Key(bool, default=True), 'metrics': Key((dict, type(None)), open_children=True),
        'profile': Key(OPT_STR), 'rgb2bgr': Key(bool), 'use_image': Key(bool), 'max_minibatch': Key(int),
        'save_comparison': Key(bool, default=False), 'save_extra_outputs': Key(bool, default=False),
        **INFERENCE_KEYS,
    }),
    'test': Key(dict, children=dict(INFERENCE_KEYS)),
    'logger': Key(dict, default={}, children={
        'print_freq': Key(NUM, default=100), 'save_checkpoint_freq': Key(NUM, default=5000),
        'use_tb_logger': Key(bool, default=True), 'wandb': Key((dict, type(None)), open_children=True),
        'keep_last': Key(int, default=3), 'tb_image_freq': Key(NUM),
        'save_format': Key(str, default='pth', choices=['pth', 'safetensors'],
                           doc='file format of models/net_g_latest.*'),
    }),
    'dist_params': Key(dict, default={}, children={
        'backend': Key(str), 'port': Key(int), 'timeout_minutes': Key(int),
        'save_timeout_minutes': Key(NUM, doc='how long the other ranks wait for rank 0 to write a checkpoint')}),
    'ensemble': Key(dict, open_children=True),
    'speed': Key((dict, type(None)), doc='fast paths, basicsr/utils/speed.py', children={
        'compile': Key((bool, dict, type(None)), doc='true or {mode: default|reduce-overhead|max-autotune}'),
        'channels_last': Key(bool), 'autocast': Key((str, bool, type(None)), choices=[None, False, 'bf16', 'fp16']),
        'cudnn_benchmark': Key(bool)}),
    **_REALESRGAN_KEYS,
    'sequential': Key(dict, doc='MiOIR sequential learning, basicsr/engine/sequential.py', children={
        'order': Key(list, required=True), 'stage_iters': Key(list, required=True),
        'stage_periods': Key((int, float, list, type(None)))}),
    'expert_tree': Key(dict, doc='UniRestorer experts, one run per tree node, basicsr/engine/expert_tree.py',
                       children={'tree_file': Key(str, required=True, path=True),
                                 'level_iters': Key(list, required=True),
                                 'lora': Key((dict, type(None)), doc='{r, alpha}: LoRA experts on the root')}),
    'unirestorer': Key(dict, doc='UniRestorerModel router training, basicsr/models/unirestorer_model.py', children={
        'tree_file': Key(str, required=True, path=True), 'experts_root': Key(OPT_STR, path=True),
        'encoder_weights': Key(OPT_STR, path=True), 'dg_weight': Key(NUM, default=0.1),
        'leaf_ce_weight': Key(NUM, default=0.0)}),
}

# training-only loss keys follow the BasicSR ``*_opt`` convention (pixel_opt, edge_opt, ...)
_LOSS_KEY = re.compile(r'^\w+_opt$')


def _type_name(types: Any) -> str:
    if isinstance(types, tuple):
        return ' or '.join(t.__name__ if t is not type(None) else 'null' for t in types)
    return types.__name__


def validate_options(opt: Dict[str, Any], source: str, check_paths: bool = True,
                     overrides: Sequence[str] = ()) -> List[str]:
    """Check ``opt`` against the schema and every ``type:`` block against its registry (names, arguments,
    value types); raise :class:`OptionError` listing every problem. A problem with a key set by one of the
    ``overrides`` (``--set key=value``) names that override."""
    from basicsr.utils.option_checks import registry_problems
    errors: List[str] = []
    _check_mapping(opt, SCHEMA, '', source, errors, check_paths)
    errors = _tolerate_plugin_keys(opt, source, errors)
    errors += registry_problems(opt, check_paths)
    if isinstance(opt.get('sequential'), dict):
        from basicsr.engine.sequential import sequential_problems
        errors += sequential_problems(opt)
    if isinstance(opt.get('expert_tree'), dict):
        from basicsr.engine.expert_tree import expert_tree_problems
        errors += expert_tree_problems(opt, check_paths)
    if (opt.get('network_g') or {}).get('type') == 'UniRestorer':
        from basicsr.models.unirestorer_model import unirestorer_problems
        errors += unirestorer_problems(opt)
    errors = [_name_override(err, overrides) for err in errors]
    if len(errors) == 1:
        raise OptionError(f'option file {source}: {errors[0]}')
    if errors:
        raise OptionError(f'{len(errors)} problem(s) in option file {source}:\n  - ' + '\n  - '.join(errors))
    return errors


def _name_override(error: str, overrides: Sequence[str]) -> str:
    """Append ``(set by --set key=value)`` to a problem about a key that an override set (or a key below it)."""
    for item in reversed(list(overrides)):
        key = item.partition('=')[0].strip()
        if key and re.search(rf"(^|[\s'])({re.escape(key)})([.\['\s]|$)", error):
            return f'{error} (set by --set {item})'
    return error


def _tolerate_plugin_keys(opt: Dict[str, Any], source: str, errors: List[str]) -> List[str]:
    """Unknown keys that a plug-in may read become warnings: anywhere when ``model_type`` is a plug-in model
    (it reads its own keys from the whole option dict), and inside a dataset block whose type is a plug-in."""
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY, RegistryError

    def plugin(registry: Any, name: Any) -> bool:
        try:
            return isinstance(name, str) and registry.is_plugin(name)
        except RegistryError:
            return False

    open_prefixes = [''] if plugin(MODEL_REGISTRY, opt.get('model_type')) else []
    for key, block in (opt.get('datasets') or {}).items():
        if isinstance(block, dict) and plugin(DATASET_REGISTRY, block.get('type')):
            open_prefixes.append(f'datasets.{key}.')
    kept, tolerated = [], []
    for err in errors:
        unknown = err.startswith("unknown key '")
        (tolerated if unknown and any(err.startswith(f"unknown key '{p}") for p in open_prefixes) else kept).append(err)
    if tolerated:
        from basicsr.utils.logger import get_logger
        get_logger().warning(f'{source}: keys unknown to the toolbox, left to the plug-in that reads them:\n  - '
                             + '\n  - '.join(tolerated))
    return kept


def dataset_option_keys(name: Any) -> Dict[str, Key]:
    """Keys that only the dataset type ``name`` reads (its class attribute ``option_keys``: ``{key: Key}``),
    e.g. Restormer's dual-pixel ``dataroot_lqL``; {} for an unknown type (reported elsewhere)."""
    from basicsr.utils.registry import DATASET_REGISTRY, RegistryError
    try:
        cls = DATASET_REGISTRY.get(name) if isinstance(name, str) else None
    except RegistryError:
        return {}
    return dict(getattr(cls, 'option_keys', None) or {})


def _check_mapping(node: Dict[str, Any], schema: Dict[str, Key], prefix: str, source: str,
                   errors: List[str], check_paths: bool) -> None:
    for key, spec in schema.items():
        if spec.required and key not in node:
            errors.append(f"'{prefix}{key}' is required ({_type_name(spec.types) if spec.types is not ANY else 'any'})")
    for key, value in node.items():
        dotted = f'{prefix}{key}'
        if prefix == 'train.' and _LOSS_KEY.match(key):
            if value is not None and not (isinstance(value, dict) and 'type' in value):
                errors.append(f"'{dotted}' must be a mapping with a 'type' key (a loss), got {value!r}")
            continue
        if prefix == 'datasets.':
            if not isinstance(value, dict):
                errors.append(f"'{dotted}' must be a dataset mapping, got {type(value).__name__}")
                continue
            _check_mapping(value, {**DATASET_KEYS, **dataset_option_keys(value.get('type'))}, f'{dotted}.', source,
                           errors, check_paths)
            continue
        spec = schema.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(schema)}"
            errors.append(f"unknown key '{dotted}'{hint}")
            continue
        if spec.types is not ANY and not isinstance(value, spec.types) and not (
                value is None and not spec.required):
            if not (spec.types == NUM or (isinstance(spec.types, tuple) and float in spec.types)) \
                    or not isinstance(value, (int, float)) or isinstance(value, bool):
                errors.append(f"'{dotted}' must be {_type_name(spec.types)}, got {type(value).__name__} {value!r}")
                continue
        if spec.choices is not None and value not in spec.choices:
            errors.append(f"'{dotted}' must be one of {spec.choices}, got {value!r}")
        if spec.path and check_paths and value not in (None, 'none', '~'):
            for p in value if isinstance(value, list) else [value]:
                if isinstance(p, str) and not os.path.exists(os.path.expanduser(p)):
                    from basicsr.utils.option_checks import prepare_hint
                    errors.append(f"'{dotted}': path '{p}' does not exist{prepare_hint(p)}")
        if spec.children is not None and isinstance(value, dict) and not spec.open_children:
            _check_mapping(value, spec.children, f'{dotted}.', source, errors, check_paths)
        elif spec.children and isinstance(value, dict) and key == 'datasets':
            _check_mapping(value, {}, f'{dotted}.', source, errors, check_paths)


# ---------------------------------------------------------------------------------------------- entry
def parse_options(opt_path: str | Path, overrides: Sequence[str] = (), is_train: bool = True,
                  root: Optional[str | Path] = None, check_paths: bool = True, imports: Sequence[str] = (),
                  debug: bool = False) -> Any:
    """Load, override, validate and complete an option file.

    Returns the resolved option dict with ``is_train``, ``opt_path`` and ``path.*`` folders filled in
    (``experiments/<name>/{models,training_states,log,visualization}`` or ``results/<name>``).
    The modules of the file's ``imports:`` and of ``imports`` are imported before validation, so plug-in
    types count. ``debug`` is BasicSR's ``--debug``: name ``debug_<name>``, log every iteration, validate
    and save every 8.

    Called BasicSR's way, ``parse_options(root_path, is_train)`` with a folder, it reads the command line
    (:func:`basicsr.utils.cli_options.parse_command_line`) and returns ``(opt, args)`` as BasicSR does.
    """
    if Path(opt_path).is_dir():
        from basicsr.utils.cli_options import parse_command_line
        return parse_command_line(opt_path, is_train=overrides if isinstance(overrides, bool) else is_train)
    source = str(opt_path)
    opt = load_with_bases(opt_path)
    opt = apply_overrides(opt, overrides)
    opt = _import_plugins(opt, imports, source)
    from basicsr.utils.official_options import OfficialKeyError, adapt_official_keys
    try:
        opt = adapt_official_keys(opt, source)
    except OfficialKeyError as exc:
        raise OptionError(str(exc)) from None
    if debug:
        opt = apply_overrides(opt, debug_overrides(opt), source='--debug')
    validate_options(opt, source, check_paths=check_paths, overrides=overrides)
    opt = _fill_defaults(opt, SCHEMA)
    opt['is_train'] = is_train
    opt['opt_path'] = str(Path(opt_path).resolve())
    root = Path(root or os.getcwd()).resolve()
    paths = opt['path']
    paths['root'] = str(root)
    for phase, dataset in (opt.get('datasets') or {}).items():
        dataset['phase'] = phase.split('_')[0]
        dataset.setdefault('scale', opt['scale'])
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            if isinstance(dataset.get(key), str) and dataset[key] not in ('none', '~'):
                dataset[key] = os.path.expanduser(dataset[key])
    name = str(opt['name'])
    if name in ('', '.', '..') or '/' in name or '\\' in name:
        raise OptionError(f"option file {source}: 'name': {name!r} must be a plain folder name (no '/' and not "
                          f"'..'): it names experiments/<name>/ and results/<name>/")
    if is_train:
        exp_root = run_folder('experiments_root', paths.get('experiments_root'), root / 'experiments' / name, name,
                              source)
        paths.update(train_folders(exp_root))
    else:
        res_root = run_folder('results_root', paths.get('results_root'), root / 'results' / name, name, source)
        paths.update(results_root=str(res_root), log=str(res_root), visualization=str(res_root / 'visualization'))
    return opt


def run_folder(key: str, given: Optional[str], default: Path, name: str, source: str) -> Path:
    """The folder run ``name`` writes to (``path.<key>``, else ``default``) with symlinks and '..' resolved.

    A folder that resolves elsewhere than it reads is reported (a warning naming both); the folder of another
    run, or a folder inside it (the run's folder holds an ``options_resolved.yml`` with another ``name``), is
    refused, so a run never writes into another experiment's checkpoints and logs.
    """
    import logging
    literal = Path(os.path.expanduser(given)).absolute() if given else default.absolute()
    folder = literal.resolve()
    where = f"'path.{key}'" if given else "'name'"
    if folder != literal:
        logging.getLogger('basicsr').warning(f'option file {source}: {where} leads to {literal}, which resolves to '
                                             f'{folder} (a symlink or ..); the run writes there')
    for owner in (folder, *folder.parents):
        record = owner / 'options_resolved.yml'
        if not record.is_file():
            continue
        try:
            other = (yaml.safe_load(record.read_text(encoding='utf-8')) or {}).get('name')
        except (yaml.YAMLError, OSError, AttributeError):
            other = None
        if other != name:
            raise OptionError(f'option file {source}: {where} leads to {folder}, inside the folder {owner} of run '
                              f"{other!r} (its options_resolved.yml); choose a folder of run {name!r} of its own")
    return folder


def _import_plugins(opt: Dict[str, Any], extra: Sequence[str], source: str) -> Dict[str, Any]:
    """Import the ``imports:`` modules of the file plus ``extra`` (``--import``); record them all in ``imports``."""
    from basicsr.utils.registry import RegistryError, import_modules
    listed = opt.get('imports') or []
    modules = ([listed] if isinstance(listed, str) else list(listed)) + [m for m in extra if m not in listed]
    try:
        import_modules(modules, f"option file {source}: 'imports'")
    except RegistryError as exc:
        raise OptionError(str(exc)) from exc
    if modules:
        opt = dict(opt, imports=modules)
    return opt


def debug_overrides(opt: Dict[str, Any]) -> List[str]:
    """BasicSR's ``--debug``: name ``debug_<name>``, print every iteration, save (and validate) every 8."""
    name = str(opt.get('name', ''))
    out = [f"name={name if name.startswith('debug') else 'debug_' + name}", 'logger.print_freq=1',
           'logger.save_checkpoint_freq=8']
    if isinstance(opt.get('val'), dict):
        out.append('val.val_freq=8')
    return out


def train_folders(exp_root: Path) -> Dict[str, str]:
    """The ``path.*`` folders of a training run rooted at ``exp_root``."""
    return {'experiments_root': str(exp_root), 'models': str(exp_root / 'models'),
            'training_states': str(exp_root / 'training_states'), 'log': str(exp_root / 'log'),
            'visualization': str(exp_root / 'visualization')}


def _fill_defaults(node: Dict[str, Any], schema: Dict[str, Key]) -> Dict[str, Any]:
    for key, spec in schema.items():
        if key not in node and spec.default is not None:
            node[key] = copy.deepcopy(spec.default)
        if spec.children and isinstance(node.get(key), dict) and not spec.open_children:
            _fill_defaults(node[key], spec.children)
    return node


def yaml_load(f: str | Path) -> Dict[str, Any]:
    """BasicSR's ``yaml_load``: a YAML file path or a YAML string -> dict (safe loader, ``1e-3`` is a float)."""
    text = Path(f).read_text(encoding='utf-8') if os.path.isfile(str(f)) else str(f)
    return yaml.load(text, Loader=_Loader)


def dict2str(opt: Dict[str, Any], indent_level: int = 1) -> str:
    """Options as indented ``key: value`` lines, nested mappings in brackets (BasicSR's log format)."""
    msg = '\n'
    for k, v in opt.items():
        if isinstance(v, dict):
            msg += ' ' * (indent_level * 2) + k + ':[' + dict2str(v, indent_level + 1) + ' ' * (indent_level * 2) + ']\n'
        else:
            msg += ' ' * (indent_level * 2) + k + ': ' + str(v) + '\n'
    return msg


def options_hash(opt: Dict[str, Any]) -> str:
    """Hash of the options that define the run (paths and run bookkeeping excluded)."""
    core = {k: v for k, v in opt.items() if k not in ('path', 'opt_path', 'is_train', 'dist', 'rank',
                                                       'world_size', 'logger')}
    blob = json.dumps(core, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dump_options(opt: Dict[str, Any], path: str | Path) -> None:
    """Write the fully resolved options as YAML (what actually ran)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_plain(opt), sort_keys=False), encoding='utf-8')


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def parse_options_or_exit(opt_path: str | Path, overrides: Sequence[str] = (), is_train: bool = True) -> Dict[str, Any]:
    """:func:`parse_options` for command-line entry points: a bad option file is a
    :class:`~basicsr.utils.cli.UsageError` (exit status 2, one line under :func:`~basicsr.utils.cli.run_cli`)."""
    from basicsr.utils.cli import UsageError
    try:
        return parse_options(opt_path, overrides, is_train=is_train)
    except (OptionError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
