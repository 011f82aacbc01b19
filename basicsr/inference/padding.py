"""Size handling at test time: reflect-pad to the network's size multiple (cropped back exactly), the
centre-crop-to-multiple protocol of PromptIR/DSRIR evaluation, and finding a network's multiple.

A network that needs H and W divisible by some factor (downsampling depth, window size) says so with a
``size_multiple`` attribute (HINet, MPRNet, Restormer, PromptIR, DSRIR, SwinIR in this toolbox);
:func:`infer_size_multiple` reads it. Networks without it take any size (NAFNet pads inside).
"""
from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from basicsr.archs.input_size import pad_to_multiple

__all__ = ['infer_size_multiple', 'pad_to_multiple', 'crop_back', 'center_crop_to_multiple', 'unwrap']


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside DataParallel / DistributedDataParallel / FastNetwork (``.module``) and
    torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(net, 'module', None)
        inner = inner if isinstance(inner, nn.Module) else getattr(net, '_orig_mod', None)
        if not isinstance(inner, nn.Module):
            return net
        net = inner


def infer_size_multiple(net: nn.Module) -> int:
    """The factor H and W must be multiples of for ``net`` (its ``size_multiple``), 1 if it has none."""
    multiple = getattr(unwrap(net), 'size_multiple', 1)
    if isinstance(multiple, (tuple, list)):
        multiple = max(multiple)
    if not isinstance(multiple, int) or multiple < 1:
        raise TypeError(f'{type(unwrap(net)).__name__}.size_multiple must be a positive int, got {multiple!r}')
    return multiple


def crop_back(out: Tensor, size: Tuple[int, int], scale: int = 1) -> Tensor:
    """Crop an output of a bottom/right-padded input back to ``size`` (input H, W) times ``scale``."""
    return out[..., :size[0] * scale, :size[1] * scale]


def center_crop_to_multiple(img: Tensor, multiple: int) -> Tensor:
    """Centre crop (..., H, W) to the largest multiple of ``multiple`` in each dimension.

    The PromptIR (16) and DSRIR (8) evaluation protocol applies this to input and ground truth alike;
    the offset is ``floor((H - H') / 2)`` on each axis.
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'center_crop_multiple must be a positive int, got {multiple!r}')
    h, w = img.shape[-2:]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ValueError(f'a {h}x{w} image is smaller than center_crop_multiple={multiple}')
    top, left = (h - nh) // 2, (w - nw) // 2
    return img[..., top:top + nh, left:left + nw]
