"""MiOIR prompt learning blocks, shared by the ``*_EP`` (explicit prompt) and ``*_AP`` (adaptive prompt)
networks (Kong et al., "Towards Effective Multiple-in-One Image Restoration: A Sequential and Prompt
Learning Strategy"; official code Xiangtaokong/MiOIR ``basicsr/archs/*_arch.py``).

* :class:`PromptExtractor` (the official ``F_ext``): three strided convolutions then a global spatial mean,
  a 64-d prompt vector per image. Its input is the task's explicit prompt map (EP, 1 channel) or the
  degraded image itself (AP, 3 channels).
* A modulation site ``k`` owns two ``Linear(64 -> C)`` layers named ``prompt_scale<k>`` / ``prompt_shift<k>``
  (the official checkpoint names) and computes ``feat * scale + shift + feat``.
* :class:`PromptPool` is the global mean as a module of its own, so that TLC can make it local
  (``basicsr.inference.tlc_extra``): the prompt then becomes a channel-last map ``(B, h, w, 64)`` and every
  site resizes its scale/shift maps to its features (:func:`modulate`).
* Explicit prompts: the official ``type7.npy`` (7 maps of i.i.d. uniform noise, 128x128) ships with the
  package, so a task id gives the exact map the official checkpoints were trained with.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['ExplicitPrompt', 'PromptExtractor', 'PromptPool', 'add_prompt_linears', 'modulate', 'explicit_prompt_maps',
           'split_prompt_input', 'MIOIR_TASKS', 'PROMPT_NF']

PROMPT_NF = 64  # width of the prompt vector (fixed in the official code)
# row of type7.npy for each MiOIR task (blur, noise, jpeg, rain, haze, dark/low-light, sr)
MIOIR_TASKS = ('blur', 'noise', 'jpeg', 'rain', 'haze', 'dark', 'sr')
_TYPE7 = Path(__file__).with_name('data') / 'mioir_type7.npy'


class ExplicitPrompt:
    """Mixin of the ``*_EP`` networks: the prompt is the task's fixed map, so the task id is an input the
    network takes from the data (``conditions``, see :mod:`basicsr.archs.conditions`)."""

    explicit_prompt = True
    conditions = ('task', )


class PromptPool(nn.Module):
    """Global spatial mean ``(B, C, h, w) -> (B, C)``; a module so TLC can swap it for local means."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class PromptExtractor(nn.Module):
    """MiOIR ``F_ext``: zero-pad 1, conv 7x7 stride 2, ReLU, then twice (zero-pad 1, conv 3x3 stride 2, ReLU),
    then :class:`PromptPool`.

    Input ``(B, in_channels, H, W)`` of any size (AP: the image in [0, 1]; EP: the 128x128 prompt map);
    output ``(B, num_feat)`` (or ``(B, h, w, num_feat)`` after TLC conversion, ``h, w ~ H/8, W/8``).
    """

    def __init__(self, in_channels: int, num_feat: int = PROMPT_NF) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, num_feat, 7, 2, 0)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 2, 0)
        self.conv3 = nn.Conv2d(num_feat, num_feat, 3, 2, 0)
        self.pool = PromptPool()

    def forward(self, prompt: Tensor) -> Tensor:
        x = prompt
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.relu(conv(F.pad(x, (1, 1, 1, 1))))
        return self.pool(x)


def add_prompt_linears(owner: nn.Module, sites: Sequence[Tuple[str, int]], prompt_nf: int = PROMPT_NF) -> None:
    """Create ``prompt_scale<k>`` for every site ``(k, channels)``, then ``prompt_shift<k>`` (official order)."""
    for kind in ('scale', 'shift'):
        for key, channels in sites:
            setattr(owner, f'prompt_{kind}{key}', nn.Linear(prompt_nf, channels))


def _to_feature(v: Tensor, feat: Tensor, hw: Optional[Tuple[int, int]]) -> Tensor:
    """Broadcastable form of a site's scale or shift ``v`` for ``feat``.

    ``v`` is ``(B, C)`` (one value per image) or ``(B, h, w, C)`` (local prompts, resized bilinearly to the
    features). ``feat`` is ``(B, C, H, W)``, or tokens ``(B, H*W, C)`` when ``hw = (H, W)`` is given.
    """
    if v.dim() == 2:
        return v[:, None, :] if hw is not None else v[:, :, None, None]
    size = hw if hw is not None else tuple(feat.shape[-2:])
    v = v.permute(0, 3, 1, 2)
    if tuple(v.shape[-2:]) != tuple(size):
        v = F.interpolate(v, size=size, mode='bilinear', align_corners=False)
    return v.flatten(2).transpose(1, 2) if hw is not None else v


def modulate(owner: nn.Module, key: str, feat: Tensor, prompt: Tensor,
             hw: Optional[Tuple[int, int]] = None) -> Tensor:
    """Site ``key`` of ``owner``: ``feat * scale + shift + feat`` with ``scale/shift = prompt_scale<key>(prompt),
    prompt_shift<key>(prompt)`` (the official expression, kept term by term for identical rounding)."""
    scale = _to_feature(getattr(owner, f'prompt_scale{key}')(prompt), feat, hw)
    shift = _to_feature(getattr(owner, f'prompt_shift{key}')(prompt), feat, hw)
    return feat * scale + shift + feat


@lru_cache(maxsize=1)
def _type7() -> Tensor:
    if not _TYPE7.is_file():
        raise FileNotFoundError(f'MiOIR explicit prompt maps not found at {_TYPE7}; reinstall basicsr '
                                f'(the file ships with the package)')
    return torch.from_numpy(np.load(_TYPE7).astype(np.float32))


def explicit_prompt_maps(task: Union[Tensor, Sequence[int], int]) -> Tensor:
    """The official explicit prompt maps ``(B, 128, 128)`` float32 for task ids (0..6, see ``MIOIR_TASKS``)."""
    ids = torch.as_tensor(task, dtype=torch.long).reshape(-1).cpu()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(MIOIR_TASKS)):
        raise ValueError(f'MiOIR task ids must be in 0..{len(MIOIR_TASKS) - 1} '
                         f'({", ".join(f"{i}={t}" for i, t in enumerate(MIOIR_TASKS))}), got {ids.tolist()}')
    return _type7()[ids]


def split_prompt_input(x: Any, task: Optional[Any], explicit: bool, name: str) -> Tuple[Tensor, Tensor]:
    """``(image, prompt source)`` from a network's input.

    Accepts the official call ``[lq, prompt]`` (EP: prompt map ``(B, 128, 128)`` or ``(B, 1, 128, 128)``;
    AP: usually ``lq`` again) or an image tensor alone: AP then prompts with the image itself, EP needs
    ``task`` (ids, see :func:`explicit_prompt_maps`). EP prompt maps are returned as ``(B, 1, h, w)``.
    """
    if isinstance(x, (list, tuple)):
        if len(x) != 2:
            raise ValueError(f'{name} takes [image, prompt]; got a sequence of {len(x)} items')
        image, prompt = x
    else:
        image, prompt = x, None
    if explicit:
        if prompt is None:
            if task is None:
                raise ValueError(f'{name} needs its explicit prompt: call it with [lq, prompt_map] or with '
                                 f'task=<ids 0..{len(MIOIR_TASKS) - 1}> ({", ".join(MIOIR_TASKS)})')
            prompt = explicit_prompt_maps(task).to(image.device, image.dtype)
            if prompt.shape[0] == 1 and image.shape[0] > 1:
                prompt = prompt.expand(image.shape[0], -1, -1)
        if prompt.dim() == 3:
            prompt = prompt.unsqueeze(1)
    elif prompt is None:
        prompt = image
    if prompt.shape[0] != image.shape[0]:
        raise ValueError(f'{name}: prompt batch {prompt.shape[0]} does not match the image batch {image.shape[0]}')
    return image, prompt
