"""ClassifierModel: trains a degradation classifier (MiOIR's ``Classifier``) with cross-entropy on task labels.

MiOIR's explicit-prompt networks read the task id from a classifier at test time
(:mod:`basicsr.inference.task_classifier`). This model trains that classifier with the engine's machinery
(optimiser, schedules, EMA, AMP, gradient accumulation, DDP, checkpoints: all inherited from
:class:`ImageRestorationModel`); only the criterion, the batch it reads and the validation differ:

- input: the batch's ``lq`` (B, 3, H, W) in [0, 1]; target: ``task`` (B,) integer labels, which
  ``MultiTaskDataset`` adds from each task's ``label``. The ground truth is not used.
- loss ``l_ce``: cross-entropy on the network's logits (optional ``train.label_smoothing``). MiOIR applies
  ``nn.CrossEntropyLoss`` to softmax probabilities (a double softmax, methods.md section 1.3); here the network
  must return logits (``network_g.return_logits: true`` is required, not forced, so the option file says what
  is trained). The saved weights are the same either way and load into the probability-returning network.
- validation: whole-image argmax (as ``test.task_classifier`` predicts) over labelled ``val`` sets; metrics
  ``accuracy`` and ``accuracy_<task_name>`` per task, logged and written like restoration metrics.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from basicsr.models.image_restoration_model import ImageRestorationModel, unwrap
from basicsr.utils.dist import all_gather_objects, get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class ClassifierModel(ImageRestorationModel):
    """``lq -> net_g -> (B, num_tasks) logits`` trained against ``batch['task']``.

    Option keys: those of :class:`ImageRestorationModel` except the ``*_opt`` losses and ``mixing_augs``
    (refused), plus ``train.label_smoothing`` (default 0).
    """

    default_grad_clip = False
    requires_logits = True  # MiOIR's ClassModel applies cross-entropy to the softmax output instead

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        if self.requires_logits and getattr(unwrap(self.net_g), 'return_logits', True) is not True:
            raise ValueError(f"ClassifierModel: network_g ({opt['network_g'].get('type')}) returns probabilities; "
                             'set network_g.return_logits: true (cross-entropy is computed on logits; the '
                             'weights load unchanged into the probability-returning network for testing)')

    def build_losses(self, train: Dict[str, Any]) -> nn.Module:
        losses = sorted(k for k, v in train.items() if k.endswith('_opt') and v is not None)
        if losses:
            raise ValueError(f'ClassifierModel trains with cross-entropy on the task labels; remove train.{losses} '
                             '(use train.label_smoothing to soften the targets)')
        if (train.get('mixing_augs') or {}).get('mixup'):
            raise ValueError('ClassifierModel: train.mixing_augs.mixup mixes images of different tasks under one '
                             'label; remove it')
        smoothing = float(train.get('label_smoothing', 0) or 0)
        if not 0 <= smoothing < 1:
            raise ValueError(f'train.label_smoothing must be in [0, 1), got {smoothing}')
        return nn.CrossEntropyLoss(label_smoothing=smoothing)

    # ------------------------------------------------------------------ training step
    def feed_data(self, data: Dict[str, Any]) -> None:
        if 'task' not in data:
            raise KeyError("ClassifierModel: the batch has no 'task' labels; train on a MultiTaskDataset "
                           '(each task block gives its label)')
        self.lq = data['lq'].to(self.device, non_blocking=True)
        self.task = torch.as_tensor(data['task']).long().to(self.device, non_blocking=True)

    def compute_losses(self) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        logits = self.net_g(self.lq)
        if logits.dim() != 2 or logits.shape[0] != self.lq.shape[0]:
            raise ValueError(f'ClassifierModel: network_g must return (B, num_tasks) logits for a batch of '
                             f'{self.lq.shape[0]}, got {tuple(logits.shape)}')
        if int(self.task.max()) >= logits.shape[1]:
            raise ValueError(f'ClassifierModel: task label {int(self.task.max())} is outside the network\'s '
                             f'{logits.shape[1]} classes; check the task labels and network_g.num_tasks')
        return logits, OrderedDict(l_ce=self.loss_terms(logits.float(), self.task))

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, dataset: Any, val_opt: Dict[str, Any], desc: str = 'val') -> Dict[str, Any]:
        """Classify every whole image of ``dataset`` (items with ``lq`` and ``task``), sharded over ranks.

        Returns the :func:`~basicsr.engine.evaluator.evaluate` layout: ``mean`` = ``{'accuracy': fraction in
        [0, 1], 'accuracy_<task_name>': ...}``, ``images`` = one record per image (label, prediction, correct).
        """
        from basicsr.inference.task_classifier import TaskClassifier
        classify = TaskClassifier(self.inference_network())
        rank, world = get_dist_info()
        records: List[Dict[str, Any]] = []
        for idx in tqdm(range(rank, len(dataset), world), desc=desc, unit='img',
                        disable=not val_opt.get('pbar', True) or rank != 0):
            item = dataset[idx]
            if 'skipped' in item:  # skip_bad: an unreadable sample, already logged by the dataset
                continue
            if 'task' not in item:
                raise KeyError(f"{desc}: image {idx} has no 'task' label; validate the classifier on a "
                               'MultiTaskDataset')
            pred = int(classify(item['lq'].unsqueeze(0).to(self.device))[0])
            label = int(item['task'])
            name = Path(item.get('lq_path') or f'{idx:05d}').stem
            records.append({'name': name, 'index': idx, 'task_name': str(item.get('task_name', label)),
                            'task': label, 'pred': pred, 'correct': float(pred == label)})
        gathered = sorted((r for part in all_gather_objects(records) for r in part), key=lambda r: r['index'])
        mean = {'accuracy': float(np.mean([r['correct'] for r in gathered]))} if gathered else {}
        for task_name in dict.fromkeys(r['task_name'] for r in gathered):
            mean[f'accuracy_{task_name}'] = float(np.mean([r['correct'] for r in gathered
                                                           if r['task_name'] == task_name]))
        return {'mean': mean, 'images': gathered, 'metric_spec': 'task accuracy (whole-image argmax)',
                'preview': None}
