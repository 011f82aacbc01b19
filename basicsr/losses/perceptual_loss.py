"""Losses on VGG19 features: the perceptual loss and DSRIR's positive contrastive loss (PoCL).

Both need ImageNet VGG19 weights from a local file (``vgg_weights_path``); see :mod:`basicsr.losses.vgg`.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch

from basicsr.losses.loss_util import WeightedLoss, check_same_shape
from basicsr.losses.vgg import DEFAULT_VGG19_PATH, VGG19_LAYERS, VGG19Features
from basicsr.utils.registry import LOSS_REGISTRY

# DSRIR PoCL: relu1_1 .. relu5_1 with weights 1/32 .. 1
_POCL_LAYERS = {'relu1_1': 1.0 / 32, 'relu2_1': 1.0 / 16, 'relu3_1': 1.0 / 8, 'relu4_1': 1.0 / 4, 'relu5_1': 1.0}
# weights of the positives: ground truth, stage-2 output, stage-1 output
_POCL_POSITIVE_WEIGHTS = (1.0, 0.25, 0.125)


def _feature_distance(a: torch.Tensor, b: torch.Tensor, criterion: str, per_image: bool) -> torch.Tensor:
    """Mean L1 or squared distance between feature maps: a scalar, or (B,) when ``per_image``."""
    diff = a - b
    err = diff.abs() if criterion == 'l1' else diff * diff
    return err.flatten(1).mean(dim=1) if per_image else err.mean()


def _check_layer_weights(layer_weights: Dict[str, float], owner: str) -> Dict[str, float]:
    """Validate a ``{VGG19 layer name: weight}`` option before any weights are read."""
    if not isinstance(layer_weights, dict) or not layer_weights:
        raise ValueError(f"{owner}: layer_weights must be a non-empty mapping like {{'conv5_4': 1.0}}, "
                         f'got {layer_weights!r}')
    unknown = [k for k in layer_weights if k not in VGG19_LAYERS]
    if unknown:
        raise ValueError(f'{owner}: unknown VGG19 layer(s) {unknown} in layer_weights; '
                         f'valid: {", ".join(VGG19_LAYERS)}')
    return {str(k): float(v) for k, v in layer_weights.items()}


@LOSS_REGISTRY.register()
class PerceptualLoss(WeightedLoss):
    """Distance between VGG19 features of pred and target, weighted per layer (BasicSR's perceptual term).

    Args (BasicSR's signature plus the toolbox's ``vgg_weights_path``, ``loss_weight``, ``reduction``):
        layer_weights: ``{layer name: weight}``, names as in ``VGG19_LAYERS`` ('conv5_4', 'relu2_1', ...).
        vgg_type: 'vgg19' (the only VGG here; BasicSR's other types are refused by name).
        use_input_norm: normalise [0, 1] RGB inputs with the ImageNet mean/std (BasicSR default).
        range_norm: inputs are in [-1, 1]; map them to [0, 1] first (BasicSR's ``range_norm``).
        perceptual_weight: weight of the feature distance (0 leaves it out).
        style_weight: weight of BasicSR's style term, the distance between Gram matrices
            (``F F^T / (C H W)`` per layer); 0 (default) leaves it out.
        criterion: 'l1' (mean absolute), 'l2' (mean squared) or 'fro' (Frobenius norm of the whole difference).
        vgg_weights_path: local torchvision VGG19 file; default BasicSR's
            ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``. A missing file raises FileNotFoundError
            naming the path (nothing is downloaded).
        loss_weight, reduction: 'mean' -> the weighted sum; 'none' -> the same per image, a (B,) tensor
            ('fro' is per image then too); 'sum' -> the sum of those per-image values.

    Returns BasicSR's pair ``(loss_weight * perceptual_weight * perceptual, loss_weight * style_weight * style)``,
    an entry None when its weight is 0 (models written for BasicSR unpack it; the toolbox's loss terms add the
    two up). The target's features are detached; gradients reach ``pred`` through the frozen VGG.
    """

    def __init__(self, layer_weights: Optional[Dict[str, float]] = None, vgg_type: str = 'vgg19',
                 use_input_norm: bool = True, range_norm: bool = False, perceptual_weight: float = 1.0,
                 style_weight: float = 0.0, criterion: str = 'l1', vgg_weights_path: Optional[str] = None,
                 loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__(loss_weight, reduction)
        if criterion not in ('l1', 'l2', 'fro'):
            raise ValueError(f"PerceptualLoss: criterion must be 'l1', 'l2' or 'fro', got {criterion!r}")
        if vgg_type != 'vgg19':
            raise ValueError(f"PerceptualLoss: vgg_type {vgg_type!r} is not supported; only 'vgg19' (torchvision's "
                             'VGG19 layout and weights)')
        if perceptual_weight <= 0 and style_weight <= 0:
            raise ValueError('PerceptualLoss: perceptual_weight and style_weight are both 0; nothing to compute')
        self.layer_weights = _check_layer_weights(layer_weights or {'conv5_4': 1.0}, 'PerceptualLoss')
        self.criterion = criterion
        self.range_norm = bool(range_norm)
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.vgg = VGG19Features(vgg_weights_path or DEFAULT_VGG19_PATH, use_input_norm=use_input_norm)

    def _distance(self, a: torch.Tensor, b: torch.Tensor, per_image: bool) -> torch.Tensor:
        if self.criterion == 'fro':
            diff = (a - b).flatten(1)
            return diff.norm(dim=1) if per_image else diff.norm()
        return _feature_distance(a, b, self.criterion, per_image)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                **kwargs) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        check_same_shape(pred, target, 'PerceptualLoss')
        if weight is not None:
            raise ValueError('PerceptualLoss does not take element weights (weight=...)')
        if self.range_norm:
            pred, target = (pred + 1) / 2, (target + 1) / 2
        layers = list(self.layer_weights)
        pred_f = self.vgg(pred, layers)
        with torch.no_grad():
            target_f = self.vgg(target.detach(), layers)
        per_image = self.reduction != 'mean'
        percep = style = None
        if self.perceptual_weight > 0:
            percep = sum(w * self._distance(pred_f[n], target_f[n], per_image) for n, w in self.layer_weights.items())
            percep = self.loss_weight * self.perceptual_weight * (percep.sum() if self.reduction == 'sum' else percep)
        if self.style_weight > 0:
            style = sum(w * self._distance(_gram(pred_f[n]), _gram(target_f[n]), per_image)
                        for n, w in self.layer_weights.items())
            style = self.loss_weight * self.style_weight * (style.sum() if self.reduction == 'sum' else style)
        return percep, style


def _gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F F^T / (C H W)`` of (B, C, H, W) features -> (B, C, C)."""
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


@LOSS_REGISTRY.register()
class PositiveContrastLoss(WeightedLoss):
    """DSRIR's positive contrastive regulariser (PoCL) on VGG19 features of raw [0, 1] RGB inputs.

    For each layer l (relu1_1..relu5_1, weights 1/32, 1/16, 1/8, 1/4, 1):
        (p_0 * d(pred, target) + p_1 * d(pred, positives[0]) + ...) / (d(pred, negative) + 1e-7)
    summed with the layer weights; d is the mean L1 distance between feature maps. In DSRIR, ``pred`` is
    the final (stage-3) output, ``positives`` the stage-2 and stage-1 outputs (weights 1, 0.25, 0.125 for
    target, stage 2, stage 1) and ``negative`` the degraded input; DSRIR trains with ``loss_weight: 0.2``.
    Target and negative features are detached; the positives' are not, so gradients reach earlier stages.

    Reduction: 'mean' is the official loss (batch-mean distances inside the ratio); 'none' computes
    the ratio per image and returns (B,); 'sum' is the sum of those per-image values.
    """

    def __init__(self, vgg_weights_path: Optional[str] = None, layer_weights: Optional[Dict[str, float]] = None,
                 positive_weights: Sequence[float] = _POCL_POSITIVE_WEIGHTS, use_input_norm: bool = False,
                 loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__(loss_weight, reduction)
        self.layer_weights = _check_layer_weights(layer_weights or dict(_POCL_LAYERS), 'PositiveContrastLoss')
        self.positive_weights = [float(w) for w in positive_weights]
        if not self.positive_weights:
            raise ValueError('PositiveContrastLoss: positive_weights needs at least the weight of the target')
        self.vgg = VGG19Features(vgg_weights_path, use_input_norm=use_input_norm)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                positives: Sequence[torch.Tensor] = (), negative: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        check_same_shape(pred, target, 'PositiveContrastLoss')
        if weight is not None:
            raise ValueError('PositiveContrastLoss does not take element weights (weight=...)')
        if negative is None:
            raise ValueError('PositiveContrastLoss needs negative= (the degraded input image)')
        positives = list(positives)
        if len(positives) + 1 != len(self.positive_weights):
            raise ValueError(f'PositiveContrastLoss: positive_weights has {len(self.positive_weights)} entries '
                             f'(target + {len(self.positive_weights) - 1} extra positives) but '
                             f'{len(positives)} extra positives were given')
        layers = list(self.layer_weights)
        anchor = self.vgg(pred, layers)
        with torch.no_grad():
            target_f = self.vgg(target.detach(), layers)
            negative_f = self.vgg(negative.detach(), layers)
        positive_fs = [target_f] + [self.vgg(p, layers) for p in positives]
        per_image = self.reduction != 'mean'
        total = 0
        for name, layer_w in self.layer_weights.items():
            pulled = sum(w * _feature_distance(anchor[name], feats[name], 'l1', per_image)
                         for w, feats in zip(self.positive_weights, positive_fs))
            pushed = _feature_distance(anchor[name], negative_f[name], 'l1', per_image)
            total = total + layer_w * pulled / (pushed + 1e-7)
        if self.reduction == 'sum':
            total = total.sum()
        return self.loss_weight * total
