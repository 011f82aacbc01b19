"""MiOIR's degradation classifier: which of the seven MiOIR tasks degraded an image.

MiOIR's explicit-prompt networks need the task id at test time; the official ``*_EP_class`` models get it from
this classifier's argmax on the whole LQ image (see :mod:`basicsr.inference.task_classifier`). The network is
small (188,551 parameters): two 3x3 convolutions of stride 3 (3 -> 128 -> 128), three 1x1 convolutions
(128 -> 128 -> 128 -> 32), LeakyReLU(0.1) after every convolution but the last, a global average, and a linear
layer to the seven task scores. Class and state_dict names are the official ones (``type: Classifier``), so the
released ``Classifier.pth`` loads with ``strict=True``.

Training note: the official model applies ``nn.CrossEntropyLoss`` to the softmax probabilities this network
returns, i.e. a softmax twice, which squeezes the loss into a narrow range and weakens its gradients. A
re-implementation should train on logits (``return_logits=True``) with cross-entropy; keep the default
(probabilities) to reproduce the official outputs and training exactly. The argmax, hence the predicted task,
is the same either way.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['Classifier']


@ARCH_REGISTRY.register()
class Classifier(nn.Module):
    """``(B, 3, H, W)`` image in [0, 1], H, W >= 9 -> ``(B, num_tasks)`` task probabilities (or logits).

    Args:
        num_tasks: number of degradation classes (MiOIR: 7, ordered as ``basicsr.archs.prompt_blocks.MIOIR_TASKS``).
        return_logits: return the linear layer's scores instead of their softmax (for training with
            cross-entropy; the official network always returns probabilities).
    """

    def __init__(self, num_tasks: int = 7, return_logits: bool = False) -> None:
        super().__init__()
        self.return_logits = return_logits
        # official names: 'lastOut' (the linear head) and 'CondNet' (the convolutions, LeakyReLUs between them)
        self.lastOut = nn.Linear(32, num_tasks)
        widths = [(3, 128, 3), (128, 128, 3), (128, 128, 1), (128, 128, 1), (128, 32, 1)]
        layers = []
        for i, (cin, cout, k) in enumerate(widths):
            if i:
                layers.append(nn.LeakyReLU(0.1, inplace=True))
            layers.append(nn.Conv2d(cin, cout, k, stride=k))
        self.CondNet = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < 9:
            raise ValueError(f'Classifier: expected a (B, 3, H, W) image with H, W >= 9 (two stride-3 '
                             f'convolutions), got shape {tuple(x.shape)}')
        feat = self.CondNet(x).mean(dim=(2, 3))
        logits = self.lastOut(feat)
        return logits if self.return_logits else torch.softmax(logits, dim=1)
