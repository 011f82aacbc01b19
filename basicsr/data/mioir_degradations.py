"""MiOIR's seven synthetic degradations (Kong et al., "Towards Effective Multiple-in-One Image Restoration"),
as registered, seeded degradations (see :mod:`basicsr.data.degradations` for the calling convention).

Task (letter): type -- in-distribution (training) parameters per image; out-of-distribution test change:

* blur (b): GaussianBlur -- kernel size from {7, 9, ..., 21}, sigma round(U(1, 3), 2); OOD sigma U(3, 5).
* noise (n): GaussianNoise -- colour noise, sigma round(U(15, 50)), clipped; OOD sigma round(U(50, 70)).
* jpeg (j): JPEG -- quality round(U(30, 70)); OOD round(U(10, 30)).
* rain (r): RainStreaks -- density randint(50, 99), length 20..40, angle -45..44, width in {3, 5, ..., 11};
  OOD density 100..149.
* haze (h): Haze -- airlight round(U(0.8, 1), 2), beta round(U(0.5, 2.5), 2), per-image depth; OOD beta U(2.5, 3).
* dark (d): LowLight -- x ** gamma, gamma round(U(1, 3), 2); OOD gamma U(3, 4).
* sr (s): BicubicDownUp -- torch bicubic x1/4 down, then up to the input size; MiOIR has no OOD setting.

Every degradation ends on the 8-bit grid (``round(x * 255) / 255``, clipped), as MiOIR's offline synthesis
does after each operation, and keeps the input's size and channels. The constructor defaults are the training
ranges; :func:`mioir_degradation` gives the option block of a task for either split, and the registered
``MiOIR`` type builds it from YAML (``{type: MiOIR, task: rain}``, ``{type: MiOIR, task: blur, split: ood}``,
extra keys override the block's).

Differences from the official offline scripts (``data_script/add_MiO_*_degradation.py``), on purpose:

* Rain and haze keep the input size; the official script first crops the image to multiples of 4. Rain does
  not need the crop at all; haze pads its upsampled depth map instead (see :class:`Haze`).
* Applied on the fly to a training crop, rain streaks are min-max normalised over the crop, not over the full
  image as MiOIR does before cutting 300x300 crops, so they are brighter: mean streak level 24.9 on a 128x128
  crop vs 16.1 on the same region of a 2040x1356 image (200 draws). Synthesise offline for MiOIR's levels.

Seven MiOIR tasks from one folder of clean images, labels = MiOIR task ids (``MIOIR_TASKS`` of
:mod:`basicsr.archs.prompt_blocks`)::

    type: MultiTaskDataset
    gt_size: 128
    use_hflip: true
    use_rot: true
    tasks:
      - {name: blur,  label: 0, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: blur}}
      - {name: noise, label: 1, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: noise}}
      - {name: jpeg,  label: 2, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: jpeg}}
      - {name: rain,  label: 3, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: rain}}
      # not MiOIR's haze: a smooth random depth stands in for the per-image depth maps (see Haze)
      - {name: haze,  label: 4, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: haze, depth: synthetic_smooth}}
      - {name: dark,  label: 5, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: dark}}
      - {name: sr,    label: 6, type: SyntheticDegradationDataset, dataroot_gt: datasets/DF2K/GT,
         degradation: {type: MiOIR, task: sr}}
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from basicsr.archs.prompt_blocks import MIOIR_TASKS
from basicsr.data.degradations import _check_range
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.registry import DEGRADATION_REGISTRY, check_kwargs

__all__ = ['BicubicDownUp', 'GaussianBlur', 'JPEG', 'RainStreaks', 'Haze', 'LowLight', 'MiOIRDegradation',
           'mioir_degradation', 'gaussian_kernel', 'rain_streak_map', 'to_uint8_grid', 'MIOIR_TASK_LETTERS']

MIOIR_TASK_LETTERS = {'b': 'blur', 'n': 'noise', 'j': 'jpeg', 'r': 'rain', 'h': 'haze', 'd': 'dark', 's': 'sr'}


def to_uint8_grid(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> nearest 8-bit level (``clip(round(x * 255), 0, 255) / 255``, ties to even), float32."""
    return (np.clip(np.round(np.asarray(img, np.float32) * np.float32(255.0)), 0, 255) / 255.0).astype(np.float32)


def _rounded_uniform(rng: np.random.Generator, bounds: Sequence[float], decimals: int) -> float:
    """``round(U(low, high), decimals)``: MiOIR's per-image parameter draw."""
    return float(np.round(rng.uniform(bounds[0], bounds[1]), decimals))


def _int_range(name: str, value: Sequence[int], low: int, high: int) -> Tuple[int, int]:
    """An inclusive integer range ``[a, b]`` with ``low <= a <= b <= high``."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
            and low <= value[0] <= value[1] <= high):
        raise ValueError(f'{name} must be [a, b], integers with {low} <= a <= b <= {high}, got {value!r}')
    return int(value[0]), int(value[1])


def _positive_range(name: str, value: Sequence[float]) -> Tuple[float, float]:
    low, high = _check_range(name, value)
    if low <= 0:
        raise ValueError(f'{name} must be positive, got {value!r}')
    return low, high


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, np.float32).transpose(2, 0, 1)).unsqueeze(0)


def _from_tensor(x: torch.Tensor) -> np.ndarray:
    return x.squeeze(0).permute(1, 2, 0).numpy()


@DEGRADATION_REGISTRY.register()
class BicubicDownUp:
    """Bicubic down-sampling by ``scale`` then bicubic up-sampling back to the input size (MiOIR's SR task).

    Both steps are ``torch.nn.functional.interpolate(mode='bicubic', align_corners=False)`` without
    antialiasing, as in MiOIR. Sizes not divisible by ``scale`` are handled as torch (and MiOIR) do: the small
    image is ``floor(H / scale) x floor(W / scale)`` sampled with the nominal factor ``1 / scale`` from the
    top-left, and the up-sampling stretches it back to exactly ``H x W``. Deterministic (``rng`` is unused).

    Args:
        scale: integer down-sampling factor (MiOIR: 4).
    """

    def __init__(self, scale: int = 4) -> None:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise ValueError(f'BicubicDownUp scale must be an integer >= 2, got {scale!r}')
        self.scale = scale

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float in [0, 1] with H, W >= scale -> same shape on the 8-bit grid."""
        h, w = img.shape[:2]
        if min(h, w) < self.scale:
            raise ValueError(f'BicubicDownUp: image {h}x{w} is smaller than the scale {self.scale}')
        x = _to_tensor(img)
        # MiOIR does not round the small image: only the result is put on the 8-bit grid
        small = F.interpolate(x, scale_factor=1.0 / self.scale, mode='bicubic', align_corners=False)
        out = F.interpolate(small, size=(h, w), mode='bicubic', align_corners=False)
        return to_uint8_grid(_from_tensor(out))

    def __repr__(self) -> str:
        return f'BicubicDownUp(scale={self.scale})'


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Isotropic Gaussian ``(size, size)`` float64 kernel centred on the middle tap, summing to 1."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2.0 * sigma ** 2))
    return kernel / kernel.sum()


@DEGRADATION_REGISTRY.register()
class GaussianBlur:
    """Isotropic Gaussian blur with a random kernel size and sigma per image (MiOIR's blur task).

    Kernel size uniform from ``kernel_sizes``, sigma = ``round(U(sigma_range), 2)``; the image is padded by
    reflection (``torch`` 'reflect', i.e. without repeating the edge pixel) and filtered channel by channel in
    float32, like BasicSR's ``filter2D``.

    Args:
        kernel_sizes: odd sizes to draw from (MiOIR: 7, 9, ..., 21).
        sigma_range: [low, high] in pixels (MiOIR: [1, 3] in distribution, [3, 5] out of distribution).
    """

    def __init__(self, kernel_sizes: Sequence[int] = (7, 9, 11, 13, 15, 17, 19, 21),
                 sigma_range: Sequence[float] = (1.0, 3.0)) -> None:
        sizes = list(kernel_sizes) if isinstance(kernel_sizes, (list, tuple)) else []
        if not sizes or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f'GaussianBlur kernel_sizes must be a non-empty list of odd positive integers, '
                             f'got {kernel_sizes!r}')
        self.kernel_sizes = sizes
        self.sigma_range = _positive_range('GaussianBlur sigma_range', list(sigma_range))

    def draw(self, rng: np.random.Generator) -> Tuple[int, float]:
        """(kernel size, sigma) of one image."""
        size = self.kernel_sizes[int(rng.integers(0, len(self.kernel_sizes)))]
        return size, _rounded_uniform(rng, self.sigma_range, 2)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float in [0, 1], H and W larger than half the largest kernel -> same shape, 8-bit grid."""
        size, sigma = self.draw(rng)
        pad = size // 2
        h, w, c = img.shape
        if min(h, w) <= pad:
            raise ValueError(f'GaussianBlur: image {h}x{w} is too small for reflect padding of a {size}x{size} '
                             f'kernel (needs both sides > {pad})')
        x = F.pad(_to_tensor(img), (pad, pad, pad, pad), mode='reflect')
        kernel = torch.from_numpy(gaussian_kernel(size, sigma).astype(np.float32))
        out = F.conv2d(x, kernel.expand(c, 1, size, size), groups=c)
        return to_uint8_grid(_from_tensor(out))

    def __repr__(self) -> str:
        return f'GaussianBlur(kernel_sizes={self.kernel_sizes}, sigma_range={list(self.sigma_range)})'


@DEGRADATION_REGISTRY.register()
class JPEG:
    """JPEG compression with quality ``round(U(quality_range))`` per image; output on the 8-bit grid.

    ``backend: diffjpeg`` (default) is MiOIR's synthesis: BasicSR's ``DiffJPEG`` model of JPEG in
    non-differentiable mode (:class:`basicsr.utils.diffjpeg.DiffJPEG`), then rounding to 8 bits, as in
    ``data_script/add_MiO_*_degradation.py`` (equal to the official outputs, see
    ``tests/test_data_mioir_degradations.py``). ``backend: opencv`` encodes and decodes with OpenCV's
    libjpeg instead: a real JPEG codec (rounded, clamped tables, edge-repeated padding, smooth chroma
    up-sampling) whose artefacts differ clearly from DiffJPEG's at equal quality, with a similar strength.
    Gray images are compressed as their luminance plane (both backends).

    Args:
        quality_range: [low, high] within 1..100 (MiOIR: [30, 70] in distribution, [10, 30] out of
            distribution).
        backend: 'diffjpeg' (MiOIR) or 'opencv'.
    """

    BACKENDS = ('diffjpeg', 'opencv')

    def __init__(self, quality_range: Sequence[int] = (30, 70), backend: str = 'diffjpeg') -> None:
        self.quality_range = _int_range('JPEG quality_range', quality_range, 1, 100)
        if backend not in self.BACKENDS:
            raise ValueError(f"JPEG backend must be one of {', '.join(self.BACKENDS)}, got {backend!r}")
        self.backend = backend
        self._jpeger = DiffJPEG(differentiable=False) if backend == 'diffjpeg' else None

    def draw(self, rng: np.random.Generator) -> int:
        return int(_rounded_uniform(rng, self.quality_range, 0))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 1 or 3) RGB/gray float in [0, 1] -> same shape, decoded JPEG on the 8-bit grid."""
        quality = self.draw(rng)
        c = img.shape[2]
        if c not in (1, 3):
            raise ValueError(f'JPEG: images must have 1 or 3 channels, got {c}')
        if self.backend == 'diffjpeg':
            return self._diffjpeg(img, quality)
        u8 = (to_uint8_grid(img) * 255.0).round().astype(np.uint8)
        # OpenCV encodes BGR; the JPEG colour transform is not symmetric in R and B
        src = u8[:, :, 0] if c == 1 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode('.jpg', src, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f'JPEG: OpenCV could not encode a {img.shape} image')
        flag = cv2.IMREAD_GRAYSCALE if c == 1 else cv2.IMREAD_COLOR
        dec = cv2.imdecode(buf, flag)
        dec = dec[:, :, None] if c == 1 else cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
        return dec.astype(np.float32) / 255.0

    def _diffjpeg(self, img: np.ndarray, quality: int) -> np.ndarray:
        # a gray image as R = G = B has zero chroma: the decoded channels are its coded luminance
        x = _to_tensor(to_uint8_grid(img)).expand(-1, 3, -1, -1).clamp(0, 1)
        with torch.no_grad():
            out = self._jpeger(x, quality)
        out = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
        return _from_tensor(out[:, :img.shape[2]]).astype(np.float32)

    def __repr__(self) -> str:
        return f'JPEG(quality_range={list(self.quality_range)}, backend={self.backend!r})'


# first blur of the seed map: mostly the seed itself, a little spread to its 4 neighbours (MiOIR's values)
_SEED_KERNEL = np.array([[0.0, 0.1, 0.0], [0.1, 8.0, 0.1], [0.0, 0.1, 0.0]])


def rain_streak_levels(noise: np.ndarray, density: int, length: int, angle: int, width: int) -> np.ndarray:
    """Rain streaks ``(H, W)`` float64 in [0, 255] before truncation, MiOIR's construction.

    Args:
        noise: ``(H, W)`` float64 values uniform in [0, 256); only values >= ``256 - density / 100`` become
            streak seeds (a fraction ``density / 25600`` of the pixels).
        density: MiOIR's streak-count parameter ("value").
        length: streak length in pixels; the motion kernel is an ``length x length`` diagonal line rotated by
            ``angle - 45`` degrees and shrunk by ``1 - length / 100``.
        angle: degrees, counter-clockwise.
        width: odd size of the Gaussian blur giving the streaks their width.

    The seeds are filtered by the (unnormalised) motion kernel and the result is min-max scaled to 0..255.
    OpenCV filters (border: reflect without repeating the edge) as in MiOIR.
    """
    seeds = np.where(noise >= 256.0 - density * 0.01, noise, 0.0)
    seeds = cv2.filter2D(seeds, -1, _SEED_KERNEL)
    rot = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
    motion = cv2.warpAffine(np.eye(length), rot, (length, length))
    motion = cv2.GaussianBlur(motion, (width, width), 0)
    streaks = cv2.filter2D(seeds, -1, motion)
    # OpenCV's min-max scaling (all zeros when the map is flat, e.g. no seed) so truncation matches MiOIR's
    return cv2.normalize(streaks, None, 0, 255, cv2.NORM_MINMAX)


def rain_streak_map(noise: np.ndarray, density: int, length: int, angle: int, width: int) -> np.ndarray:
    """Rain streaks ``(H, W)`` uint8: :func:`rain_streak_levels` truncated to integers as MiOIR does.

    A level that is an integer in exact arithmetic (the maximum, 255) can land one float ulp below it on
    some CPUs and then truncates to the level below; that is MiOIR's own behaviour on such a machine.
    """
    return rain_streak_levels(noise, density, length, angle, width).astype(np.uint8)


@DEGRADATION_REGISTRY.register()
class RainStreaks:
    """Synthetic rain: bright motion-blurred streaks added to the image and clipped (MiOIR's rain task).

    Per image: ``density`` (integer, inclusive range), streak ``width`` from ``widths``, ``length`` and
    ``angle`` (integers, inclusive ranges), then the uniform noise map; see :func:`rain_streak_map`. The same
    streak map is added to every channel. The image keeps its size (MiOIR crops its full-size images to
    multiples of 4 first, which only removes up to 3 border rows/columns and is not needed for rain).

    Args:
        density_range: MiOIR: [50, 99] in distribution, [100, 149] out of distribution.
        length_range: [20, 40].
        angle_range: [-45, 44] degrees.
        widths: odd Gaussian widths, [3, 5, 7, 9, 11].
    """

    def __init__(self, density_range: Sequence[int] = (50, 99), length_range: Sequence[int] = (20, 40),
                 angle_range: Sequence[int] = (-45, 44), widths: Sequence[int] = (3, 5, 7, 9, 11)) -> None:
        # above 25600 every pixel would be a seed
        self.density_range = _int_range('RainStreaks density_range', density_range, 1, 25600)
        self.length_range = _int_range('RainStreaks length_range', length_range, 2, 100)
        self.angle_range = _int_range('RainStreaks angle_range', angle_range, -180, 180)
        widths = list(widths) if isinstance(widths, (list, tuple)) else []
        if not widths or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0 for k in widths):
            raise ValueError(f'RainStreaks widths must be a non-empty list of odd positive integers, got {widths!r}')
        self.widths = widths

    def draw(self, rng: np.random.Generator) -> Dict[str, int]:
        """The streak parameters of one image (drawn before the noise map)."""
        return {'density': int(rng.integers(self.density_range[0], self.density_range[1] + 1)),
                'width': self.widths[int(rng.integers(0, len(self.widths)))],
                'length': int(rng.integers(self.length_range[0], self.length_range[1] + 1)),
                'angle': int(rng.integers(self.angle_range[0], self.angle_range[1] + 1))}

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float in [0, 1] -> same shape, 8-bit grid, with rain streaks added."""
        params = self.draw(rng)
        noise = rng.uniform(0.0, 256.0, img.shape[:2])
        streaks = rain_streak_map(noise, **params).astype(np.float32) / 255.0
        return to_uint8_grid(np.clip(img + streaks[:, :, None], 0.0, 1.0))

    def __repr__(self) -> str:
        return (f'RainStreaks(density_range={list(self.density_range)}, length_range={list(self.length_range)}, '
                f'angle_range={list(self.angle_range)}, widths={self.widths})')


DEPTH_SUFFIXES = ('.npy', '.png', '.mat')
DEPTH_MODES = ('from_dir', 'synthetic_smooth')


def load_depth(path: Path) -> np.ndarray:
    """A 2-D depth map from ``.npy``, ``.png`` (8/16 bit, first channel) or ``.mat`` (key ``data_obj``)."""
    if path.suffix == '.npy':
        depth = np.load(path)
    elif path.suffix == '.png':
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise ValueError(f'Haze: cannot read depth map {path}')
        depth = depth[:, :, 0] if depth.ndim == 3 else depth
    else:
        try:
            from scipy.io import loadmat
        except ImportError as exc:  # scipy is optional: only MATLAB depth maps need it
            raise ImportError(f'Haze: reading {path} (a .mat depth map) needs scipy: pip install scipy, or '
                              f'convert the maps to .npy/.png') from exc
        data = loadmat(str(path))
        if 'data_obj' not in data:
            raise ValueError(f"Haze: depth map {path} has no variable 'data_obj' (MiOIR's key)")
        depth = data['data_obj']
    depth = np.asarray(depth, np.float64)
    if depth.ndim != 2:
        raise ValueError(f'Haze: depth map {path} must be 2-D, got shape {depth.shape}')
    return depth


def smooth_random_depth(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """NOT MiOIR's depth: a smooth random ``(h, w)`` map in (0, 1], farther at the top like outdoor photos.

    Half a top-to-bottom ramp, half a 4x4 uniform random grid up-sampled bicubically.
    """
    ramp = np.linspace(1.0, 0.0, h)[:, None].repeat(w, 1)
    grid = rng.uniform(0.0, 1.0, (4, 4))
    blobs = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    depth = np.clip(0.5 * ramp + 0.5 * blobs, 0.0, None) + 1e-3
    return depth / depth.max()


@DEGRADATION_REGISTRY.register()
class Haze:
    """Atmospheric scattering ``I = J * t + A * (1 - t)``, ``t = exp(-beta * d)`` (MiOIR's haze task).

    Per image: airlight ``A = round(U(airlight_range), 2)`` and ``beta = round(U(beta_range), 2)``; ``d`` is
    the depth map normalised by its maximum.

    Depth:
        ``depth: from_dir`` (MiOIR): the depth map of image ``name`` is read from ``depth_dir`` as
        ``<stem>.npy``, ``<stem>.png`` or ``<stem>.mat`` (variable ``data_obj``; MiOIR's maps are at 1/4 of
        the image size). A map of the image's size is used as it is; a map of ``floor(H / depth_scale) x
        floor(W / depth_scale)`` is up-sampled bilinearly by ``depth_scale`` (as MiOIR), and its last row and
        column are repeated over the up to ``depth_scale - 1`` remaining ones, where MiOIR crops the image
        instead. The call must then pass the name, ``deg(img, rng, name='0001.png')``, and the image must be
        the full image the map belongs to (not a training crop); otherwise the call fails, naming what is
        missing. The generic datasets do not pass names: use ``from_dir`` for offline synthesis.
        ``depth: synthetic_smooth``: NOT MiOIR's haze, an explicit opt-in for when no depth data exist: a
        smooth random depth per image (:func:`smooth_random_depth`).

    Args:
        depth: 'from_dir' or 'synthetic_smooth'.
        depth_dir: folder of depth maps (required by, and only allowed with, 'from_dir').
        depth_scale: size ratio of image to stored depth map (MiOIR: 4).
        airlight_range: [low, high] within [0, 1] (MiOIR: [0.8, 1]).
        beta_range: [low, high] > 0 (MiOIR: [0.5, 2.5] in distribution, [2.5, 3] out of distribution).
    """

    def __init__(self, depth: str = 'from_dir', depth_dir: Optional[str] = None, depth_scale: int = 4,
                 airlight_range: Sequence[float] = (0.8, 1.0), beta_range: Sequence[float] = (0.5, 2.5)) -> None:
        if depth not in DEPTH_MODES:
            raise ValueError(f"Haze depth must be one of {', '.join(DEPTH_MODES)}, got {depth!r}")
        if depth == 'from_dir':
            if not depth_dir:
                raise ValueError("Haze with depth 'from_dir' needs 'depth_dir', the folder of per-image depth maps "
                                 "(<name>.npy/.png/.mat); without depth data, opt in to depth: synthetic_smooth "
                                 "(not MiOIR's haze)")
            if not Path(depth_dir).is_dir():
                raise ValueError(f"Haze depth_dir '{depth_dir}' is not a folder")
        elif depth_dir is not None:
            raise ValueError(f"Haze depth_dir is only used with depth: from_dir, not with depth: {depth}")
        if not isinstance(depth_scale, int) or isinstance(depth_scale, bool) or depth_scale < 1:
            raise ValueError(f'Haze depth_scale must be a positive integer, got {depth_scale!r}')
        self.depth = depth
        self.depth_dir = Path(depth_dir) if depth_dir else None
        self.depth_scale = depth_scale
        self.airlight_range = _check_range('Haze airlight_range', list(airlight_range))
        if not 0 <= self.airlight_range[0] <= self.airlight_range[1] <= 1:
            raise ValueError(f'Haze airlight_range must lie within [0, 1], got {airlight_range!r}')
        self.beta_range = _positive_range('Haze beta_range', list(beta_range))

    def depth_path(self, name: str) -> Path:
        """The depth file of image ``name`` (any folders and extension of ``name`` are ignored)."""
        stem = Path(name).stem
        for suffix in DEPTH_SUFFIXES:
            path = self.depth_dir / f'{stem}{suffix}'
            if path.is_file():
                return path
        tried = ', '.join(f'{stem}{s}' for s in DEPTH_SUFFIXES)
        raise FileNotFoundError(f"Haze: no depth map for image '{name}' in depth_dir '{self.depth_dir}' "
                                f'(looked for {tried})')

    def depth_map(self, h: int, w: int, name: Optional[str], rng: np.random.Generator) -> np.ndarray:
        """``(h, w)`` float64 depth normalised to max 1."""
        if self.depth == 'synthetic_smooth':
            return smooth_random_depth(h, w, rng)
        if name is None:
            raise ValueError("Haze with depth 'from_dir' needs the image name: call deg(img, rng, name=...) on the "
                             'full image (the generic datasets do not pass it; synthesise hazy images offline)')
        path = self.depth_path(name)
        depth = load_depth(path)
        s = self.depth_scale
        if depth.shape != (h, w):
            if depth.shape != (h // s, w // s):
                raise ValueError(f'Haze: depth map {path} is {depth.shape[0]}x{depth.shape[1]}, but image '
                                 f"'{name}' is {h}x{w}: expected {h}x{w} or {h // s}x{w // s} "
                                 f'(1/{s} size, depth_scale {s})')
            depth = cv2.resize(depth, (depth.shape[1] * s, depth.shape[0] * s), interpolation=cv2.INTER_LINEAR)
            depth = np.pad(depth, ((0, h - depth.shape[0]), (0, w - depth.shape[1])), mode='edge')
        top = depth.max()
        if not top > 0:
            raise ValueError(f'Haze: depth map {path} has no positive value (max {top})')
        return depth / top

    def __call__(self, img: np.ndarray, rng: np.random.Generator, name: Optional[str] = None) -> np.ndarray:
        """(H, W, C) float in [0, 1] -> same shape, 8-bit grid, hazy; ``name`` is needed by 'from_dir'."""
        airlight = _rounded_uniform(rng, self.airlight_range, 2)
        beta = _rounded_uniform(rng, self.beta_range, 2)
        depth = self.depth_map(img.shape[0], img.shape[1], name, rng)
        trans = np.exp(-beta * depth)[:, :, None]
        return to_uint8_grid(img * trans + airlight * (1.0 - trans))

    def __repr__(self) -> str:
        where = f', depth_dir={str(self.depth_dir)!r}' if self.depth_dir else ''
        return (f'Haze(depth={self.depth!r}{where}, airlight_range={list(self.airlight_range)}, '
                f'beta_range={list(self.beta_range)})')


@DEGRADATION_REGISTRY.register()
class LowLight:
    """Gamma darkening ``x ** gamma``, gamma = ``round(U(gamma_range), 2)`` per image (MiOIR's low-light task).

    This is the definition of MiOIR's test script; its training script calls the same function without
    defining it.

    Args:
        gamma_range: [low, high] >= 1 darkens (MiOIR: [1, 3] in distribution, [3, 4] out of distribution).
    """

    def __init__(self, gamma_range: Sequence[float] = (1.0, 3.0)) -> None:
        self.gamma_range = _positive_range('LowLight gamma_range', list(gamma_range))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, C) float in [0, 1] -> same shape, 8-bit grid, darker for gamma > 1."""
        gamma = _rounded_uniform(rng, self.gamma_range, 2)
        return to_uint8_grid(np.power(np.clip(img, 0.0, 1.0), gamma))

    def __repr__(self) -> str:
        return f'LowLight(gamma_range={list(self.gamma_range)})'


# MiOIR's per-task option blocks: in-distribution (training and 'indis' test sets) and out-of-distribution
_MIOIR_BLOCKS: Dict[str, Dict[str, Dict[str, Any]]] = {
    'blur': {'train': {'type': 'GaussianBlur', 'sigma_range': [1.0, 3.0]},
             'ood': {'type': 'GaussianBlur', 'sigma_range': [3.0, 5.0]}},
    'noise': {split: {'type': 'GaussianNoise', 'sigma_range': rng, 'round_sigma': True, 'clip': True,
                      'quantize': 'round'} for split, rng in (('train', [15, 50]), ('ood', [50, 70]))},
    'jpeg': {'train': {'type': 'JPEG', 'quality_range': [30, 70]},
             'ood': {'type': 'JPEG', 'quality_range': [10, 30]}},
    'rain': {'train': {'type': 'RainStreaks', 'density_range': [50, 99]},
             'ood': {'type': 'RainStreaks', 'density_range': [100, 149]}},
    'haze': {'train': {'type': 'Haze', 'airlight_range': [0.8, 1.0], 'beta_range': [0.5, 2.5]},
             'ood': {'type': 'Haze', 'airlight_range': [0.8, 1.0], 'beta_range': [2.5, 3.0]}},
    'dark': {'train': {'type': 'LowLight', 'gamma_range': [1.0, 3.0]},
             'ood': {'type': 'LowLight', 'gamma_range': [3.0, 4.0]}},
    'sr': {'train': {'type': 'BicubicDownUp', 'scale': 4}},
}
MIOIR_SPLITS = ('train', 'ood')


def mioir_task_name(task: Union[str, int]) -> str:
    """MiOIR task name ('blur', ..., 'sr') from a name, a letter ('b', 'n', 'j', 'r', 'h', 'd', 's') or an id."""
    if isinstance(task, (int, np.integer)) and not isinstance(task, bool) and 0 <= task < len(MIOIR_TASKS):
        return MIOIR_TASKS[int(task)]
    if isinstance(task, str) and (task in MIOIR_TASKS or task in MIOIR_TASK_LETTERS):
        return MIOIR_TASK_LETTERS.get(task, task)
    known = ', '.join(f'{i}={t} ({next(k for k, v in MIOIR_TASK_LETTERS.items() if v == t)})'
                      for i, t in enumerate(MIOIR_TASKS))
    raise ValueError(f'unknown MiOIR task {task!r}; give a name, letter or id: {known}')


def mioir_degradation(task: Union[str, int], split: str = 'train') -> Dict[str, Any]:
    """The degradation option block of a MiOIR task, e.g. ``{'type': 'JPEG', 'quality_range': [30, 70]}``.

    Args:
        task: name, letter or id (see :func:`mioir_task_name`).
        split: 'train' (MiOIR's in-distribution ranges, also its in-distribution test sets) or 'ood' (the
            out-of-distribution test ranges; SR has none).
    """
    name = mioir_task_name(task)
    if split not in MIOIR_SPLITS:
        raise ValueError(f"MiOIR split must be one of {', '.join(MIOIR_SPLITS)}, got {split!r}")
    blocks = _MIOIR_BLOCKS[name]
    if split not in blocks:
        raise ValueError(f"MiOIR task '{name}' has no '{split}' setting (MiOIR defines no out-of-distribution SR)")
    return copy.deepcopy(blocks[split])


@DEGRADATION_REGISTRY.register(name='MiOIR')
class MiOIRDegradation:
    """``{type: MiOIR, task: rain, split: train, **overrides}``: the MiOIR block of a task, built.

    ``overrides`` replace keys of the block (e.g. ``depth: synthetic_smooth`` for haze, ``scale: 2`` for sr)
    and must be options of the underlying degradation.
    """

    def __init__(self, task: Union[str, int], split: str = 'train', **overrides: Any) -> None:
        block = mioir_degradation(task, split)
        if 'type' in overrides:
            raise ValueError(f"MiOIR: 'type' cannot be overridden (task '{mioir_task_name(task)}' is "
                             f"{block['type']})")
        block.update(overrides)
        cls = DEGRADATION_REGISTRY.get(block['type'])
        check_kwargs(cls, {k: v for k, v in block.items() if k != 'type'},
                     f"MiOIR task '{mioir_task_name(task)}' ({block['type']})")
        self.task = mioir_task_name(task)
        self.split = split
        self.degradation = DEGRADATION_REGISTRY.build(block)

    def __call__(self, img: np.ndarray, rng: np.random.Generator, **context: Any) -> np.ndarray:
        """Apply the task's degradation; ``context`` (e.g. ``name`` for haze from a depth folder) is passed on."""
        return self.degradation(img, rng, **context)

    def __repr__(self) -> str:
        return f'MiOIR({self.task!r}, {self.split!r}: {self.degradation!r})'
