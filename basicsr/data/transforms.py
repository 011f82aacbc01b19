"""Paired geometric transforms on HWC numpy images: crop with scale, flips and 90-degree rotations.

Randomness always comes from a ``numpy.random.Generator`` passed in by the caller, so a sample is a pure
function of its seed (needed for exact resume and worker-count-independent loading). Without one
(``rng=None``), ``paired_random_crop`` and ``augment`` behave as BasicSR's: same signatures, same draws from
Python's global ``random`` (so datasets written against BasicSR produce the same samples for the same seed),
tensors (``..., H, W``) accepted by the crop, and ``augment(imgs, hflip, rotation, flows, return_status)``.
"""
from __future__ import annotations

import random
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch

Images = Union[np.ndarray, List[np.ndarray]]


def _as_list(imgs: Images) -> Tuple[List[np.ndarray], bool]:
    if isinstance(imgs, np.ndarray) or torch.is_tensor(imgs):
        return [imgs], True
    return list(imgs), False


def gt_fits_lq(gt_hw: Tuple[int, int], lq_hw: Tuple[int, int], scale: int) -> bool:
    """True when GT (H, W) is ``scale`` x LQ (H, W), allowing the ``floor(HR / s)`` remainder of SR benchmarks."""
    return all(l_ * scale <= g < (l_ + 1) * scale for g, l_ in zip(gt_hw, lq_hw))


def align_gt_to_lq(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str, lq_path: str) -> np.ndarray:
    """Crop GT to exactly ``scale`` x the LQ size (bottom/right), as SR benchmarks with ``floor(HR / s)`` LR need.

    Raises ValueError naming both files and sizes when :func:`gt_fits_lq` is false.
    """
    h_lq, w_lq = lq.shape[:2]
    h_gt, w_gt = gt.shape[:2]
    h_want, w_want = h_lq * scale, w_lq * scale
    if not gt_fits_lq((h_gt, w_gt), (h_lq, w_lq), scale):
        raise ValueError(f"size mismatch: GT '{gt_path}' is {h_gt}x{w_gt} (HxW) but LQ '{lq_path}' is "
                         f'{h_lq}x{w_lq}; with scale {scale} the GT must be {h_want}x{w_want}')
    return gt[:h_want, :w_want]


def pad_to_patch(gt: np.ndarray, lq: np.ndarray, gt_patch_size: int, scale: int,
                 mode: str = 'symmetric') -> Tuple[np.ndarray, np.ndarray]:
    """Mirror-pad (bottom/right) images smaller than the patch.

    ``mode`` 'symmetric' repeats the edge pixel (cv2.BORDER_REFLECT: Restormer's datasets, so images smaller
    than a late-stage patch of 384 px still train); 'reflect' does not (torchvision's ``pad(padding_mode=
    'reflect')`` in MPRNet's and DSRIR's loaders).
    """
    lq_patch = gt_patch_size // scale
    pad_h, pad_w = max(0, lq_patch - lq.shape[0]), max(0, lq_patch - lq.shape[1])
    if not (pad_h or pad_w):
        return gt, lq

    def pad(img: np.ndarray, ph: int, pw: int) -> np.ndarray:
        return np.pad(img, ((0, ph), (0, pw)) + ((0, 0),) * (img.ndim - 2), mode=mode)

    return pad(gt, pad_h * scale, pad_w * scale), pad(lq, pad_h, pad_w)


def paired_random_crop(gts: Images, lqs: Images, gt_patch_size: int, scale: int, gt_path: Optional[str] = None,
                       rng: Optional[np.random.Generator] = None, lq_path: str = '') -> Tuple[Images, Images]:
    """Crop aligned patches: ``gt_patch_size`` from every GT and ``gt_patch_size // scale`` from every LQ.

    Args:
        gts, lqs: one HWC image or a list of them (all GTs share a size, all LQs share a size); tensors
            are cropped on their last two axes.
        gt_patch_size: GT patch side; must be a multiple of ``scale``.
        scale: GT size / LQ size.
        gt_path, lq_path: named in error messages.
        rng: source of the crop position; None draws ``random.randint`` (top, then left) as BasicSR.

    Returns:
        The cropped images, in the same form (single image or list) as given.
    """
    gt_list, gt_single = _as_list(gts)
    lq_list, lq_single = _as_list(lqs)
    h_lq, w_lq = _hw(lq_list[0])
    h_gt, w_gt = _hw(gt_list[0])
    if gt_patch_size % scale:
        raise ValueError(f'gt_size {gt_patch_size} is not a multiple of scale {scale}')
    lq_patch = gt_patch_size // scale
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise ValueError(f"scale mismatch: GT '{gt_path}' is {h_gt}x{w_gt} (HxW), LQ '{lq_path or gt_path}' is "
                         f'{h_lq}x{w_lq}; with scale {scale} the GT must be {h_lq * scale}x{w_lq * scale}')
    if h_lq < lq_patch or w_lq < lq_patch:
        raise ValueError(f"image '{gt_path}' is {h_gt}x{w_gt} (HxW), smaller than the patch size gt_size="
                         f'{gt_patch_size}; lower gt_size or remove the image')
    if rng is None:
        top, left = random.randint(0, h_lq - lq_patch), random.randint(0, w_lq - lq_patch)
    else:
        top = int(rng.integers(0, h_lq - lq_patch + 1))
        left = int(rng.integers(0, w_lq - lq_patch + 1))
    lq_out = [_crop(im, top, left, lq_patch) for im in lq_list]
    gt_out = [_crop(im, top * scale, left * scale, gt_patch_size) for im in gt_list]
    return (gt_out[0] if gt_single else gt_out), (lq_out[0] if lq_single else lq_out)


def _hw(img: Any) -> Tuple[int, int]:
    """(H, W) of an HWC array or of a (..., H, W) tensor."""
    return tuple(img.shape[-2:]) if torch.is_tensor(img) else tuple(img.shape[:2])


def _crop(img: Any, top: int, left: int, size: int) -> Any:
    if torch.is_tensor(img):
        return img[..., top:top + size, left:left + size]
    return img[top:top + size, left:left + size]


def dihedral(img: np.ndarray, hflip: bool, rot90: int) -> np.ndarray:
    """Apply a horizontal flip (first) and then ``rot90`` counter-clockwise quarter turns to an HWC image."""
    if hflip:
        img = img[:, ::-1]
    if rot90 % 4:
        img = np.rot90(img, rot90 % 4, axes=(0, 1))
    return np.ascontiguousarray(img)


def inverse_dihedral(img: np.ndarray, hflip: bool, rot90: int) -> np.ndarray:
    """Undo :func:`dihedral` with the same arguments (used by test-time self-ensembles too)."""
    if rot90 % 4:
        img = np.rot90(img, -(rot90 % 4), axes=(0, 1))
    if hflip:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


# the 7 non-identity elements as (hflip, quarter turns), in a fixed order for identity-weighted draws
_NON_IDENTITY = [(False, 1), (False, 2), (False, 3), (True, 0), (True, 1), (True, 2), (True, 3)]


def augment(imgs: Images, hflip: bool = True, rotation: bool = True, rng: Optional[np.random.Generator] = None,
            return_params: bool = False,
            identity_weight: int = 1) -> Union[Images, Tuple[Images, Tuple[bool, int]]]:
    """Apply one random element of the dihedral group (8 flips/rotations) to all images alike.

    ``hflip`` enables the horizontal flip, ``rotation`` the quarter turns (both -> all 8 elements).
    ``identity_weight`` (both enabled) draws one of ``identity_weight + 7`` equally likely outcomes of which
    ``identity_weight`` leave the images unchanged: 1 is the uniform group, 2 the index ``randint(0, 8)`` of
    MPRNet/DSRIR (identity 2/9, every other element 1/9), 0 PromptIR's ``randint(1, 7)`` (never identity).
    With ``return_params`` also returns ``(flipped, quarter_turns)`` so the transform can be inverted.
    ``rng=None`` (or flows in its place) is BasicSR's ``augment(imgs, hflip, rotation, flows, return_status)``:
    see :func:`augment_like_basicsr`.
    """
    if rng is None or isinstance(rng, (list, np.ndarray)):
        return augment_like_basicsr(imgs, hflip, rotation, rng, return_params)
    img_list, single = _as_list(imgs)
    if identity_weight != 1:
        if not (hflip and rotation) or identity_weight < 0:
            raise ValueError(f'identity_weight {identity_weight!r} needs use_hflip and use_rot and must be >= 0')
        k = int(rng.integers(0, identity_weight + 7))
        flip, rot = _NON_IDENTITY[k - identity_weight] if k >= identity_weight else (False, 0)
    else:
        # draw both numbers unconditionally so enabling one option does not shift the other's stream
        flip_draw, rot_draw = rng.random(), int(rng.integers(0, 4))
        flip = hflip and flip_draw < 0.5
        rot = rot_draw if rotation else 0
    out = [dihedral(im, flip, rot) for im in img_list]
    result: Images = out[0] if single else out
    if return_params:
        return result, (flip, rot)
    return result


def augment_like_basicsr(imgs: Images, hflip: bool = True, rotation: bool = True, flows: Optional[Images] = None,
                         return_status: bool = False) -> Any:
    """BasicSR's augmentation: with probability 1/2 each (three ``random.random()`` draws, in this order) a
    horizontal flip (if ``hflip``), a vertical flip and a transpose (both if ``rotation``), applied to every
    HWC image and to optical ``flows`` (H, W, 2), whose components change sign / swap accordingly.

    Returns the images (a single one if one was given), then the flows if given, then
    ``(hflip, vflip, rot90)`` with ``return_status``.
    """
    do_h = hflip and random.random() < 0.5
    do_v = rotation and random.random() < 0.5
    do_t = rotation and random.random() < 0.5

    def image(img: np.ndarray) -> np.ndarray:
        img = img[:, ::-1] if do_h else img
        img = img[::-1] if do_v else img
        return np.ascontiguousarray(np.swapaxes(img, 0, 1) if do_t else img)

    def flow(f: np.ndarray) -> np.ndarray:
        f = image(f).copy()
        if do_h:
            f[:, :, 0] *= -1
        if do_v:
            f[:, :, 1] *= -1
        return f[:, :, [1, 0]] if do_t else f

    def each(items: Images, fn: Any) -> Images:
        out = [fn(x) for x in (items if isinstance(items, list) else [items])]
        return out[0] if len(out) == 1 else out

    result = [each(imgs, image)]
    if flows is not None:
        result.append(each(flows, flow))
    if return_status:
        result.append((do_h, do_v, do_t))
    return result[0] if len(result) == 1 else tuple(result)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """PIL's ``ImageEnhance.Color(img).enhance(factor)`` (torchvision's ``adjust_saturation`` on PIL images) on a
    uint8 RGB HWC array, bit for bit: blend the image with its ITU-R 601 luma (PIL's rounded integer
    ``L`` conversion) in float32, truncated to uint8 and, for factors outside [0, 1], clipped first."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'saturation jitter needs uint8 RGB images (H, W, 3), got {img.dtype} {img.shape}')
    r, g, b = (img[..., i].astype(np.int64) for i in range(3))
    luma = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float32)[..., None]
    out = luma + np.float32(factor) * (img.astype(np.float32) - luma)
    if not 0 <= factor <= 1:
        out = np.clip(out, 0, 255)
    return out.astype(np.uint8)


def saturation_jitter(imgs: List[np.ndarray], rng: np.random.Generator, prob: float,
                      max_change: float) -> List[np.ndarray]:
    """MPRNet's colour augmentation (``Deblurring/dataset_RGB.py``): with probability ``prob`` scale the
    saturation of all images by one factor ``1 + U(-max_change, max_change)`` (:func:`adjust_saturation`).
    Both numbers are drawn every time, so the stream does not depend on the outcome."""
    apply, factor = rng.random() < prob, 1 + max_change * (1 - 2 * rng.random())
    return [adjust_saturation(im, factor) for im in imgs] if apply else list(imgs)


def center_trim(imgs: List[np.ndarray], multiple: int) -> List[np.ndarray]:
    """Trim HWC images of one size to the largest multiple of ``multiple`` in height and width, keeping the
    centre (PromptIR's ``crop_img``: ``h % m`` rows removed, ``(h % m) // 2`` of them at the top)."""
    h, w = imgs[0].shape[:2]
    top, left = (h % multiple) // 2, (w % multiple) // 2
    return [im[top:top + h - h % multiple, left:left + w - w % multiple] for im in imgs]
