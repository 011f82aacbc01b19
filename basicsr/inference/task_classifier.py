"""Task prediction for networks that take a task id (MiOIR explicit prompts) on data without task labels.

MiOIR evaluates its ``*_EP`` networks with a degradation classifier: the classifier reads the whole degraded
image, its argmax is the task id, and that id selects the explicit prompt (the official ``*_EP_class``
models; also on out-of-distribution and real-world sets, where no label exists). Configured as::

    test:
      task_classifier:
        network: {type: <classifier type>}       # any network mapping (B, 3, H, W) to (B, num_tasks) scores
        weights: path/to/classifier.pth
        param_key: params                        # optional, default 'auto'

A dataset that does provide ``task`` keeps its label (the oracle prompt); the classifier only fills it in
when it is missing. On such labelled sets test.py still runs the classifier to report its accuracy
(:func:`task_record`, :func:`task_accuracy`: overall and per task, in the log and ``metrics.json``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch
from torch import Tensor, nn

__all__ = ['TaskClassifier', 'build_task_classifier', 'fill_task', 'task_accuracy', 'task_classifier_problems',
           'task_record']

_KEYS = ('network', 'weights', 'param_key')


class TaskClassifier:
    """``lq (B, C, H, W) in [0, 1] -> task ids (B,)``: the argmax of a classifier network's scores."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, lq: Tensor) -> Tensor:
        scores = self.net(lq)
        if not isinstance(scores, Tensor) or scores.dim() != 2 or scores.shape[0] != lq.shape[0]:
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f'task_classifier: {type(self.net).__name__} must return (B, num_tasks) scores for a '
                             f'batch of {lq.shape[0]}, got {shape}')
        return scores.argmax(dim=1)


def task_classifier_problems(opt: Any, where: str) -> List[str]:
    """What is wrong with the layout of a ``task_classifier`` block (``where`` its dotted name): a mapping with
    ``network: {type: ...}``, a ``weights`` file name and an optional ``param_key``. The network's type and
    arguments and the file's existence are checked at parse time by :mod:`basicsr.utils.option_checks`."""
    expected = f'{where} must be {{network: {{type: ...}}, weights: FILE, param_key: NAME (optional)}}'
    if not isinstance(opt, Mapping):
        return [f'{expected}, got {opt!r}']
    unknown = sorted(set(opt) - set(_KEYS))
    if unknown:
        return [f'{where}: unknown keys {unknown}; accepted: {list(_KEYS)}']
    if not isinstance(opt.get('network'), Mapping) or 'type' not in opt['network']:
        return [f"{expected}; {where}.network must be a mapping with a 'type', got {opt.get('network')!r}"]
    if not isinstance(opt.get('weights'), str) or not opt['weights']:
        return [f'{expected}; {where}.weights must be a file path, got {opt.get("weights")!r}']
    if not isinstance(opt.get('param_key', 'auto'), str):
        return [f"{where}.param_key must be a key name such as 'params' (or 'auto'), got {opt['param_key']!r}"]
    return []


def build_task_classifier(opt: Mapping[str, Any], where: str, device: Any = None) -> TaskClassifier:
    """Build and load the classifier of a ``task_classifier`` block (keys ``network``, ``weights``,
    ``param_key``); ``where`` is the dotted option name used in errors."""
    from basicsr.archs import build_network
    from basicsr.archs.pretrained import load_pretrained
    problems = task_classifier_problems(opt, where)
    if problems:
        raise ValueError(problems[0])
    net: nn.Module = build_network(dict(opt['network']))
    try:
        load_pretrained(net, str(opt['weights']), key=opt.get('param_key', 'auto'))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'{where}.weights: {exc}') from exc
    if device is not None:
        net = net.to(device)
    return TaskClassifier(net)


def fill_task(conditions: Dict[str, Any], classifier: TaskClassifier, lq: Tensor) -> Dict[str, Any]:
    """``conditions`` with ``task`` predicted from ``lq`` when it is missing."""
    if 'task' in conditions:
        return conditions
    return {**conditions, 'task': classifier(lq)}


def task_record(classifier: TaskClassifier, lq: Tensor, item: Mapping[str, Any]) -> Dict[str, Any]:
    """Per-image fields for the classifier's accuracy on a labelled sample: ``task`` (the label), ``task_name``
    (the dataset's name for it, else the label) and ``task_pred`` (the classifier's id for ``lq`` (1, C, H, W));
    {} when ``item`` has no ``task``."""
    if item.get('task') is None:
        return {}
    label = int(torch.as_tensor(item['task']).reshape(-1)[0])
    return {'task': label, 'task_name': str(item.get('task_name', label)), 'task_pred': int(classifier(lq)[0])}


def task_accuracy(records: List[Mapping[str, Any]]) -> Dict[str, Any]:
    """``{'overall': fraction, 'per_task': {task name: fraction}, 'num_images': n}`` over the records that
    carry ``task_pred`` (see :func:`task_record`); {} when none does."""
    rows = [r for r in records if 'task_pred' in r]
    if not rows:
        return {}
    hits: Dict[str, List[bool]] = {}
    for r in rows:
        hits.setdefault(r['task_name'], []).append(r['task_pred'] == r['task'])
    return {'overall': sum(sum(h) for h in hits.values()) / len(rows),
            'per_task': {name: sum(h) / len(h) for name, h in sorted(hits.items())}, 'num_images': len(rows)}
