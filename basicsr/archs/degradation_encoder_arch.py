"""DegradationEncoder: a small trainable CNN that embeds an image's degradation (UniRestorer's encoder here).

UniRestorer routes with a frozen degradation encoder; the official one is a retrained DA-CLIP (its weights are
the user's, see :class:`~basicsr.archs.daclip_arch.DACLIPImageEncoder`). The toolbox's default is this small
encoder, trained on fine-grained labels (degradation type x severity bin) by :class:`DegradationEncoderModel`
(cross-entropy and / or a supervised contrastive loss) on random crops -- never resized, which would wash out
noise -- and frozen afterwards. Its embedding space is its own: clusters, centres and router weights made with
it do not transfer to or from the official DA-CLIP ones.

Trunk (on the image minus 0.5, He-initialised): a 3x3 conv, then ``len(widths)`` stride-2 3x3 convs with
LeakyReLU(0.2), each followed by a 3x3 conv; global mean and standard deviation pooling of the last features (the standard deviation keeps
texture-like cues such as noise and JPEG blocking); a linear projection to ``output_dim``. An optional linear
head (``num_classes``) gives the class logits used in training.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

Tensor = torch.Tensor


@ARCH_REGISTRY.register()
class DegradationEncoder(nn.Module):
    """``(B, 3, H, W)`` image in [0, 1] -> ``(B, output_dim)`` degradation embedding (not normalised).

    Args:
        in_channels: image channels.
        widths: channels of the stride-2 stages (the spatial size shrinks by ``2 ** len(widths)``).
        output_dim: embedding size (512 to stand in for DA-CLIP's feature).
        num_classes: size of the classification head used in training (0: no head).
        return_logits: forward returns the head's ``(B, num_classes)`` logits instead of the embedding
            (training with ClassifierModel / DegradationEncoderModel; the weights are the same).
        crop_size: :meth:`preprocess` centre-crops images larger than this (no resizing); None keeps the image.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128, 128), output_dim: int = 512,
                 num_classes: int = 0, return_logits: bool = False, crop_size: Optional[int] = None) -> None:
        super().__init__()
        if not widths or min(widths) < 1 or output_dim < 1 or num_classes < 0:
            raise ValueError(f'DegradationEncoder: widths must be positive channel counts, output_dim >= 1 and '
                             f'num_classes >= 0; got widths={list(widths)}, output_dim={output_dim}, '
                             f'num_classes={num_classes}')
        if return_logits and num_classes == 0:
            raise ValueError('DegradationEncoder: return_logits needs a classification head; set num_classes')
        self.output_dim = output_dim
        self.return_logits = return_logits
        self.crop_size = crop_size
        layers: List[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.LeakyReLU(0.2, True)]
        prev = widths[0]
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, True),
                       nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.2, True)]
            prev = w
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # variance-preserving init: the default one shrinks the signal per layer
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity='leaky_relu')
                nn.init.zeros_(m.bias)
        self.proj = nn.Linear(2 * prev, output_dim)
        self.head = nn.Linear(output_dim, num_classes) if num_classes else None

    def preprocess(self, lq: Tensor) -> Tensor:
        """The encoder input of images ``lq``: a centre crop of ``crop_size`` (if set and smaller), no resize."""
        if self.crop_size is None:
            return lq
        h, w = lq.shape[-2:]
        ch, cw = min(h, self.crop_size), min(w, self.crop_size)
        top, left = (h - ch) // 2, (w - cw) // 2
        return lq[..., top:top + ch, left:left + cw]

    def embed(self, x: Tensor) -> Tensor:
        """``(B, output_dim)`` embedding: projection of the global mean and std of the trunk's features."""
        f = self.body(x - 0.5).flatten(2)
        return self.proj(torch.cat([f.mean(-1), f.std(-1, unbiased=False)], dim=1))

    def forward(self, x: Tensor, with_embedding: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Embedding, or logits when ``return_logits``; ``with_embedding`` returns ``(logits, embedding)``."""
        emb = self.embed(x)
        if not (self.return_logits or with_embedding):
            return emb
        if self.head is None:
            raise ValueError('DegradationEncoder: logits need a classification head; set num_classes')
        logits = self.head(emb)
        return (logits, emb) if with_embedding else logits
