"""BasicSR's ``VGGFeatureExtractor`` (``basicsr.archs.vgg_arch``) over the toolbox's VGG19 trunk.

Weights come from a local torchvision-format file (``vgg_weights_path``, default
``experiments/pretrained_models/vgg19-dcbb9e9d.pth``; a missing file is an error naming it, nothing is
downloaded). Only BasicSR's defaults for the architecture are available: ``vgg_type='vgg19'``, pooling kept,
stride 2; other values are refused by name.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from basicsr.losses.vgg import DEFAULT_VGG19_PATH, VGG19Features
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class VGGFeatureExtractor(nn.Module):
    """Features of the named VGG19 layers (``'relu1_1'``, ``'conv5_4'``, ...) of (B, 3, H, W) RGB images.

    Args:
        layer_name_list: layers to return, in BasicSR's names.
        vgg_type: 'vgg19' only.
        use_input_norm: normalise [0, 1] inputs with the ImageNet mean/std.
        range_norm: inputs are in [-1, 1]; map them to [0, 1] first.
        requires_grad: let the VGG parameters train (BasicSR's default keeps them frozen).
        remove_pooling, pooling_stride: only BasicSR's defaults (False, 2).
        vgg_weights_path: the local weight file.
    """

    def __init__(self, layer_name_list: Sequence[str], vgg_type: str = 'vgg19', use_input_norm: bool = True,
                 range_norm: bool = False, requires_grad: bool = False, remove_pooling: bool = False,
                 pooling_stride: int = 2, vgg_weights_path: Optional[str] = None) -> None:
        super().__init__()
        if vgg_type != 'vgg19' or remove_pooling or pooling_stride != 2:
            raise ValueError(f'VGGFeatureExtractor: only vgg_type=vgg19 with pooling (stride 2) is available, got '
                             f'vgg_type={vgg_type!r}, remove_pooling={remove_pooling}, pooling_stride={pooling_stride}')
        self.layer_name_list = list(layer_name_list)
        self.range_norm = range_norm
        self.vgg_net = VGG19Features(vgg_weights_path or DEFAULT_VGG19_PATH, use_input_norm=use_input_norm)
        for p in self.vgg_net.parameters():
            p.requires_grad_(requires_grad)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        feats = self.vgg_net(x, self.layer_name_list)
        return OrderedDict((name, feats[name]) for name in self.layer_name_list)
