"""VGG19 feature extractor for perceptual losses, with torchvision's parameter names.

The network is defined here (torchvision is optional in this toolbox) with the same ``features.<i>``
layout as ``torchvision.models.vgg19``, so torchvision's ImageNet file ``vgg19-dcbb9e9d.pth`` loads as is.
Weights come only from a local file: nothing is downloaded.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
DEFAULT_VGG19_PATH = 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'

# Output channels per block of VGG19 (configuration 'E'); every block ends with a 2x2 max-pool.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def _layer_names() -> List[str]:
    """Names of the ``features`` modules in order: conv1_1, relu1_1, conv1_2, ..., pool5 (37 names)."""
    names = []
    for b, block in enumerate(_BLOCKS, start=1):
        for i in range(1, len(block) + 1):
            names += [f'conv{b}_{i}', f'relu{b}_{i}']
        names.append(f'pool{b}')
    return names


VGG19_LAYERS = _layer_names()

# ImageNet statistics torchvision's weights were trained with (RGB, [0, 1] inputs)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 convolutional trunk returning the activations of named layers.

    Args:
        weights_path: local torchvision-format VGG19 state_dict (``features.*`` keys; ``classifier.*``
            keys are ignored). Required unless ``load_weights`` is False (tests only).
        use_input_norm: subtract the ImageNet mean and divide by its std first (BasicSR's default);
            DSRIR's contrastive loss feeds raw [0, 1] RGB (False).
        load_weights: False leaves random weights (for tests and shape checks).

    ``forward(x, layers)`` takes (B, 3, H, W) RGB in [0, 1] and returns ``{name: activation}`` for the
    requested names from :data:`VGG19_LAYERS` (e.g. 'relu1_1', 'conv5_4'); it stops after the deepest one.
    """

    def __init__(self, weights_path: Optional[Union[str, Path]] = None, use_input_norm: bool = True,
                 load_weights: bool = True) -> None:
        super().__init__()
        # read (and check) the file first; then build on the meta device, so no random init is wasted
        state = read_vgg19_state_dict(weights_path) if load_weights else None
        layers: List[nn.Module] = []
        in_ch = 3
        with torch.device('meta' if load_weights else 'cpu'):
            for block in _BLOCKS:
                for out_ch in block:
                    layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
                    in_ch = out_ch
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.use_input_norm = use_input_norm
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if state is not None:
            self.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> 'VGG19Features':
        # a frozen feature extractor stays in eval mode whatever its parent does
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f'unknown VGG19 layer(s) {unknown}; valid names: {", ".join(VGG19_LAYERS)}')
        if self.use_input_norm:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = set(layers)
        last = max(VGG19_LAYERS.index(name) for name in layers)
        out = {}
        for idx in range(last + 1):
            x = self.features[idx](x)
            if VGG19_LAYERS[idx] in wanted:
                out[VGG19_LAYERS[idx]] = x
        return out


def _expected_shapes() -> Dict[str, tuple]:
    """``features.<i>.weight/bias`` -> shape for every convolution of VGG19, in torchvision's numbering."""
    shapes, idx, in_ch = {}, 0, 3
    for block in _BLOCKS:
        for out_ch in block:
            shapes[f'features.{idx}.weight'] = (out_ch, in_ch, 3, 3)
            shapes[f'features.{idx}.bias'] = (out_ch,)
            idx, in_ch = idx + 2, out_ch  # conv then ReLU
        idx += 1  # max-pool
    return shapes


def _missing_weights_message(path: Optional[Union[str, Path]]) -> str:
    where = f'the file {path!s} does not exist' if path else 'no vgg_weights_path was given'
    return (f'VGG19 ImageNet weights are needed for this loss, but {where}. Download torchvision\'s '
            f'{VGG19_URL} on a machine with internet access (or copy it from ~/.cache/torch/hub/checkpoints/), '
            f'put it at {DEFAULT_VGG19_PATH} and set the loss option vgg_weights_path: {DEFAULT_VGG19_PATH}')


def read_vgg19_state_dict(path: Optional[Union[str, Path]]) -> Dict[str, torch.Tensor]:
    """Read the ``features.*`` tensors of a torchvision VGG19 file and check names and shapes.

    Raises:
        FileNotFoundError: ``path`` is None or missing (the message says where to get the file).
        RefusedPickleError: the file pickles objects other than tensors (it is not unpickled).
        ValueError: a key is missing, or a tensor's shape differs from VGG19's (naming key and both shapes).
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(_missing_weights_message(path))
    from basicsr.archs.pretrained import read_checkpoint
    state = read_checkpoint(path)  # tensors only: a file that pickles other objects is refused, naming it
    if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected a state_dict (a mapping of tensor names), got {type(state).__name__}')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    out = {}
    for full, shape in _expected_shapes().items():
        if full not in state:
            raise ValueError(f'{path}: key {full!r} is missing; this is not a torchvision VGG19 state_dict '
                             f'(expected features.0.weight ... features.34.bias)')
        if tuple(state[full].shape) != shape:
            raise ValueError(f'{path}: {full!r} has shape {tuple(state[full].shape)}, VGG19 expects '
                             f'{shape}; is this a VGG19 (not VGG16/VGG19-BN) file?')
        out[full] = state[full]
    return out
