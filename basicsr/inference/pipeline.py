"""One inference entry point used by validation, test.py and demo.py.

``pipeline = build_inference(net, opt['test'])`` then ``output = pipeline(lq)``:
(B, C, H, W) float -> (B, C', H * s, W * s), the network's scored output (:func:`main_output`) for the
whole image. The wrappers compose in this order::

    centre-crop (protocol) -> pad -> tile | grids -> self-ensemble -> TLC-converted network -> speed paths

Options (the ``val:`` / ``test:`` sections; other keys of those sections are ignored here)::

    pad_multiple: auto         # int, 'auto' (the network's size_multiple) or null; alias window_size
    center_crop_multiple: 16   # PromptIR/DSRIR protocol: crop input (and, via crop_target, GT) centrally
    tile: {size: 256, overlap: 32, batch: 4, blend: 2}
    grids: {crop_size: 256, batch: 1}   # or grids: true with crop_size: 256 beside it (HINet files)
    self_ensemble: true
    tlc: {train_size: [1, 3, 256, 256], base_size: null, fast_imp: false, extra: false}
    instruction: Derain        # instruction mode of routed networks (UniRestorer): a tree node name

``tile`` and ``grids`` exclude each other. The TLC copy shares the network's parameter tensors, so a
pipeline built once follows further training (validation during training needs no rebuild).

Inputs a network derives from the image itself (UniRestorer's encoder input, which decides its routing) are
made once per call from the whole (centre-cropped, unpadded) image and passed with the other conditions to
every tile, crop and flip, repeated per piece, so the pieces are restored as the whole image would be.

The ``speed`` argument (the option file's top-level ``speed:`` block, :mod:`basicsr.utils.speed`) runs the
network compiled, channels-last and/or under autocast; outputs stay float32.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from basicsr.archs.conditions import network_conditions, repeat_for_pieces, whole_image_inputs
from basicsr.archs.outputs import main_output
from basicsr.inference.grids import grids_forward
from basicsr.inference.padding import (center_crop_to_multiple, crop_back, infer_size_multiple,
                                       pad_to_multiple, unwrap)
from basicsr.inference.self_ensemble import self_ensemble
from basicsr.inference.task_classifier import TaskClassifier, build_task_classifier, fill_task
from basicsr.inference.tiling import check_tile_options, tile_forward
from basicsr.inference.tlc import make_settings, to_local
from basicsr.utils.speed import SpeedOptionError, apply_speed

__all__ = ['InferencePipeline', 'build_inference', 'tlc_options', 'INFERENCE_OPTION_KEYS']

INFERENCE_OPTION_KEYS = ('pad_multiple', 'window_size', 'center_crop_multiple', 'tile', 'grids', 'crop_size',
                         'self_ensemble', 'tlc', 'task_classifier', 'instruction')
_TILE_KEYS = ('size', 'overlap', 'batch', 'blend')
_GRID_KEYS = ('crop_size', 'batch')
_TLC_KEYS = ('train_size', 'base_size', 'fast_imp', 'extra')


class InferenceOptionError(ValueError):
    """A wrong inference option; the message names the dotted key."""


def _check_keys(block: Dict[str, Any], allowed: tuple, where: str) -> None:
    for key in block:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise InferenceOptionError(f"unknown option '{where}.{key}'{hint}; accepted: {', '.join(allowed)}")


def _positive_int(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InferenceOptionError(f'{key} must be a positive int, got {value!r}')
    return value


def tlc_options(tlc: Any, where: str) -> Dict[str, Any]:
    """The checked ``tlc`` block (``true`` or a mapping of ``train_size``, ``base_size``, ``fast_imp``, ``extra``)
    as keyword arguments of :func:`~basicsr.inference.tlc.to_local`; ``where`` is its dotted name (``test.tlc``).
    Also used at parse time (:mod:`basicsr.utils.option_checks`). Raises :class:`InferenceOptionError`."""
    if tlc is True:
        tlc = {}
    if not isinstance(tlc, dict):
        raise InferenceOptionError(f'{where} must be true or a mapping like {{train_size: [1, 3, 256, 256]}}, '
                                   f'got {tlc!r}')
    _check_keys(tlc, _TLC_KEYS, where)
    opts = {'train_size': tlc.get('train_size', (1, 3, 256, 256)), 'base_size': tlc.get('base_size'),
            'fast_imp': tlc.get('fast_imp', False), 'extra': tlc.get('extra', False)}
    for key in ('fast_imp', 'extra'):
        if not isinstance(opts[key], bool):
            raise InferenceOptionError(f'{where}.{key} must be true or false, got {opts[key]!r}')
    try:
        make_settings(**opts, where=where)
    except ValueError as exc:
        raise InferenceOptionError(str(exc)) from None
    opts['train_size'] = tuple(opts['train_size'])
    return opts


class InferencePipeline:
    """Callable wrapper around a network; see the module docstring for the options.

    Args:
        net: the network (in eval mode; the pipeline does not change its mode).
        pad_multiple: int, ``'auto'`` or None (no padding; sizes must then suit the network).
        tile: ``{size, overlap=32, batch=1, blend=2}`` or None (see :mod:`basicsr.inference.tiling`).
        grids: ``{crop_size, batch=1}`` or None.
        self_ensemble: average over the 8 flips/rotations.
        tlc: ``{train_size, base_size, fast_imp, extra}`` (``{}`` or True: the defaults) or None/False.
        center_crop_multiple: crop the input centrally to this multiple first (evaluation protocol).
        task_classifier: predicts ``task`` from the whole input when a call does not give it (MiOIR
            explicit prompts on unlabelled data, see :mod:`basicsr.inference.task_classifier`).
        instruction: restrict a routed network to one task (its ``instruction_masks(name)``: UniRestorer
            keeps the leaves under the tree node of that name); a call's own masks win.
        where: option-section name used in error messages (``'test'``, ``'val'``).
        speed: the ``speed:`` block (compile, channels_last, autocast, cudnn_benchmark) or None.
    """

    def __init__(self, net: nn.Module, pad_multiple: Any = 'auto', tile: Optional[Dict[str, Any]] = None,
                 grids: Optional[Dict[str, Any]] = None, self_ensemble: bool = False,
                 tlc: Optional[Dict[str, Any]] = None, center_crop_multiple: Optional[int] = None,
                 task_classifier: Optional[TaskClassifier] = None, instruction: Optional[str] = None,
                 where: str = 'test', speed: Optional[Dict[str, Any]] = None) -> None:
        self.where = where
        self.task_classifier = task_classifier
        base = unwrap(net)
        self.instruction = self._instruction_masks(base, instruction) if instruction is not None else {}
        net_multiple = infer_size_multiple(base)
        if pad_multiple == 'auto':
            pad_multiple = net_multiple
        elif pad_multiple is not None:
            _positive_int(pad_multiple, f'{where}.pad_multiple')
            if pad_multiple % net_multiple:
                raise InferenceOptionError(f'{where}.pad_multiple ({pad_multiple}) must be a multiple of the '
                                           f'{type(base).__name__} size multiple {net_multiple} (or use auto)')
        self.pad_multiple = pad_multiple
        self.multiple = multiple = pad_multiple or net_multiple  # tiles and crops stay on this grid
        self.center_crop_multiple = (None if center_crop_multiple is None
                                     else _positive_int(center_crop_multiple, f'{where}.center_crop_multiple'))
        if tile is not None and grids is not None:
            raise InferenceOptionError(f'{where}.tile and {where}.grids are alternatives; set only one')
        self.tile = self._tile_options(tile, multiple) if tile is not None else None
        self.grids = self._grid_options(grids, multiple) if grids is not None else None
        self.self_ensemble = bool(self_ensemble)
        self.tlc = tlc_options(tlc, f'{where}.tlc') if tlc not in (None, False) else None
        self.net = to_local(base, share_weights=True, **self.tlc) if self.tlc else base
        try:  # the network call of every piece goes through the fast paths; self.net stays the plain module
            self.runner = apply_speed(self.net, speed)
        except SpeedOptionError as exc:
            raise InferenceOptionError(str(exc)) from None
        self._conditions: Dict[str, Any] = {}  # extra network inputs of the current call
        self._images = 1  # images in the current call (pieces of them are batched tile-major)

    # ------------------------------------------------------------------ option checks
    def _instruction_masks(self, net: nn.Module, task: Any) -> Dict[str, Tensor]:
        where = f'{self.where}.instruction'
        if not hasattr(net, 'instruction_masks'):
            raise InferenceOptionError(f'{where}: {type(net).__name__} has no instruction mode (routed networks '
                                       f'such as UniRestorer have one)')
        if not isinstance(task, str):
            raise InferenceOptionError(f'{where} must be a task name (a tree node name), got {task!r}')
        try:
            return net.instruction_masks(task)
        except ValueError as exc:
            raise InferenceOptionError(f'{where}: {exc}') from None

    def _tile_options(self, tile: Dict[str, Any], multiple: int) -> Dict[str, Any]:
        where = f'{self.where}.tile'
        if not isinstance(tile, dict) or 'size' not in tile:
            raise InferenceOptionError(f'{where} must be a mapping with at least size, e.g. {{size: 256, '
                                       f'overlap: 32}}, got {tile!r}')
        _check_keys(tile, _TILE_KEYS, where)
        opts = {'size': tile['size'], 'overlap': tile.get('overlap', 32), 'batch': tile.get('batch', 1)}
        try:
            opts['blend'] = check_tile_options(opts['size'], opts['overlap'], multiple, tile.get('blend'),
                                               opts['batch'], where)
        except ValueError as exc:
            raise InferenceOptionError(str(exc)) from None
        return opts

    def _grid_options(self, grids: Any, multiple: int) -> Dict[str, Any]:
        where = f'{self.where}.grids'
        if not isinstance(grids, dict):
            raise InferenceOptionError(f'{where} must be {{crop_size: N}} (or true with {self.where}.crop_size '
                                       f'beside it), got {grids!r}')
        _check_keys(grids, _GRID_KEYS, where)
        if 'crop_size' not in grids:
            raise InferenceOptionError(f'{where}.crop_size is required (the training patch size, e.g. 256)')
        crop = _positive_int(grids['crop_size'], f'{where}.crop_size')
        if crop % multiple:
            raise InferenceOptionError(f'{where}.crop_size ({crop}) must be a multiple of the network size '
                                       f'multiple {multiple}')
        return {'crop_size': crop, 'batch': _positive_int(grids.get('batch', 1), f'{where}.batch')}

    # ------------------------------------------------------------------ running
    def crop_target(self, gt: Tensor, scale: int = 1) -> Tensor:
        """The ground truth cropped as the input is (centre-crop protocol); unchanged otherwise.
        ``scale``: GT/LQ size ratio (the crop multiple is scaled)."""
        if self.center_crop_multiple is None:
            return gt
        return center_crop_to_multiple(gt, self.center_crop_multiple * scale)

    @property
    def conditions(self) -> Tuple[str, ...]:
        """Data keys the network takes besides the image (pass them to ``__call__`` as keywords)."""
        return network_conditions(self.net)

    @property
    def provided_conditions(self) -> Tuple[str, ...]:
        """Conditions the pipeline can supply itself when a call omits them (``task`` from the classifier)."""
        return ('task', ) if self.task_classifier is not None and 'task' in self.conditions else ()

    def _network(self, x: Tensor) -> Tensor:
        kwargs = {k: repeat_for_pieces(v, self._images, x.shape[0]) for k, v in self._conditions.items()}
        return main_output(self.runner(x, **kwargs))

    def routing_records(self) -> List[Dict[str, Any]]:
        """Per image of the last call, what a routed network chose (UniRestorer: leaf, level, expert); [] for
        other networks. Every piece of an image is routed alike, so the last piece batch tells."""
        describe = getattr(self.net, 'describe_routing', None)
        return describe()[:self._images] if describe is not None else []

    def _ensembled(self, x: Tensor) -> Tensor:
        return self_ensemble(self._network, x) if self.self_ensemble else self._network(x)

    def __call__(self, lq: Tensor, **conditions: Any) -> Tensor:
        """Restore ``lq`` (B, C, H, W) float; returns (B, C', H * s, W * s) (H, W after the centre crop).
        ``conditions``: the network's extra inputs (e.g. ``task`` for MiOIR explicit prompts), the same for
        every tile, crop and transform of the image."""
        if lq.dim() != 4:
            raise ValueError(f'the inference pipeline expects a (B, C, H, W) tensor, got shape {tuple(lq.shape)}')
        if self.provided_conditions:
            conditions = fill_task(conditions, self.task_classifier, lq)  # on the whole, uncropped input
        missing = [k for k in self.conditions if k not in conditions]
        if missing:
            raise ValueError(f'{type(unwrap(self.net)).__name__} needs {missing} besides the image '
                             f'(e.g. pipeline(lq, task=torch.tensor([3])), or {self.where}.task_classifier)')
        if self.center_crop_multiple is not None:
            lq = center_crop_to_multiple(lq, self.center_crop_multiple)
        size = tuple(lq.shape[-2:])
        self._images = lq.shape[0]
        with torch.no_grad():
            conditions = {**self.instruction, **conditions}
            self._conditions = {**whole_image_inputs(self.net, lq, conditions), **conditions}
            x = pad_to_multiple(lq, self.pad_multiple, 'inference padding')[0] if self.pad_multiple else lq
            if self.tile is not None:
                device = next(iter(self.net.parameters()), lq).device
                out = tile_forward(self._ensembled, x, multiple=self.multiple, device=device,
                                   **self.tile)
            elif self.grids is not None:
                out = grids_forward(self._ensembled, x, self.grids['crop_size'], batch=self.grids['batch'])
            else:
                out = self._ensembled(x)
        scale = out.shape[-2] // x.shape[-2]
        return crop_back(out, size, scale)

    def __repr__(self) -> str:
        parts = [f'pad_multiple={self.pad_multiple}']
        for name in ('center_crop_multiple', 'tile', 'grids', 'tlc'):
            if getattr(self, name):
                parts.append(f'{name}={getattr(self, name)}')
        if self.self_ensemble:
            parts.append('self_ensemble=x8')
        if self.instruction:
            parts.append('instruction')
        if self.runner is not self.net:
            parts.append(f'speed={self.runner.opts.describe()}')
        return f'InferencePipeline({type(unwrap(self.net)).__name__}; {", ".join(parts)})'


def build_inference(net: nn.Module, opt: Optional[Dict[str, Any]] = None, where: str = 'test',
                    speed: Optional[Dict[str, Any]] = None) -> InferencePipeline:
    """Build the pipeline from a ``val:``/``test:`` option section (its non-inference keys are ignored) and
    the top-level ``speed:`` block.

    ``window_size`` (Restormer files) is read as ``pad_multiple``; HINet-style ``grids: true`` takes
    ``crop_size`` from the same section; ``grids: false`` / ``tile: null`` / ``tlc: null`` disable them.
    """
    opt = dict(opt or {})
    pad = opt.get('pad_multiple', 'auto')
    if 'window_size' in opt and opt['window_size'] is not None:
        if 'pad_multiple' in opt and opt['pad_multiple'] not in (None, 'auto', opt['window_size']):
            raise InferenceOptionError(f'{where}.window_size and {where}.pad_multiple disagree; set one')
        pad = opt['window_size']
    if isinstance(pad, str) and pad != 'auto':
        raise InferenceOptionError(f"{where}.pad_multiple must be an int, 'auto' or null, got {pad!r}")
    grids = opt.get('grids')
    if grids is True:
        grids = {'crop_size': opt.get('crop_size')} if opt.get('crop_size') is not None else {}
    elif grids is False:
        grids = None
    classifier = None
    if opt.get('task_classifier') is not None:
        device = next(iter(net.parameters()), torch.empty(0)).device
        try:
            classifier = build_task_classifier(opt['task_classifier'], f'{where}.task_classifier', device)
        except ValueError as exc:
            raise InferenceOptionError(str(exc)) from None
    return InferencePipeline(net, pad_multiple=pad, tile=opt.get('tile'), grids=grids,
                             self_ensemble=bool(opt.get('self_ensemble', False)), tlc=opt.get('tlc'),
                             center_crop_multiple=opt.get('center_crop_multiple'), task_classifier=classifier,
                             instruction=opt.get('instruction'), where=where, speed=speed)
