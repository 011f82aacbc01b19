"""DegradationEncoderModel: trains UniRestorer's small degradation encoder on fine-grained degradation labels.

The labels are the ``task`` labels of a :class:`~basicsr.data.multitask_dataset.MultiTaskDataset` whose tasks
are degradation type x severity bins (the paper's fine-grained captions: light / heavy noise, ...). The
network is a :class:`~basicsr.archs.degradation_encoder_arch.DegradationEncoder` with a classification head
(``num_classes``, ``return_logits: true``); the saved weights load unchanged into the encoder UniRestorer
uses (``return_logits: false``). Everything else (optimiser, schedules, checkpoints, validation accuracy)
is :class:`ClassifierModel`'s.

Losses: ``train.ce_weight * CE(logits, task)`` (default weight 1; 0 switches it off) plus, optionally,
``train.supcon_opt`` (a :class:`~basicsr.losses.degradation_loss.SupConLoss` block) on the embeddings.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch
from torch import nn

from basicsr.losses import build_loss
from basicsr.models.classifier_model import ClassifierModel
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class DegradationEncoderModel(ClassifierModel):
    """Cross-entropy and / or supervised contrastive training of a network with ``forward(x, with_embedding)``.

    Option keys: those of :class:`ClassifierModel` plus ``train.ce_weight`` and ``train.supcon_opt``.
    """

    def build_losses(self, train: Dict[str, Any]) -> nn.Module:
        ce = super().build_losses({k: v for k, v in train.items() if k != 'supcon_opt'})
        self.ce_weight = float(train.get('ce_weight', 1.0))
        self.supcon = build_loss(train['supcon_opt']) if train.get('supcon_opt') else None
        if self.ce_weight < 0 or (self.ce_weight == 0 and self.supcon is None):
            raise ValueError(f'DegradationEncoderModel: train.ce_weight must be >= 0 and some loss must train the '
                             f'encoder (ce_weight > 0 or train.supcon_opt); got ce_weight={self.ce_weight}, '
                             f"supcon_opt={train.get('supcon_opt')!r}")
        return ce

    def compute_losses(self) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        logits, emb = self.net_g(self.lq, with_embedding=True)
        if int(self.task.max()) >= logits.shape[1]:
            raise ValueError(f'DegradationEncoderModel: task label {int(self.task.max())} is outside the '
                             f"network's {logits.shape[1]} classes; check the task labels and network_g.num_classes")
        losses: Dict[str, torch.Tensor] = OrderedDict()
        if self.ce_weight > 0:
            losses['l_ce'] = self.ce_weight * self.loss_terms(logits.float(), self.task)
        if self.supcon is not None:
            losses['l_supcon'] = self.supcon(emb, self.task)
        return logits, losses
