"""Differentiable JPEG compression in PyTorch, with the numerics of BasicSR's ``DiffJPEG``
(XPixelGroup/BasicSR ``basicsr/utils/diffjpeg.py``, itself after mlomnitz/DiffJPEG), which MiOIR used to
synthesise its JPEG sets.

The model of JPEG, step by step (all in float32, on a batch):

1. zero-pad the bottom/right to multiples of 16 (so that the 2x-subsampled chroma splits into 8x8 blocks);
2. RGB x 255 -> YCbCr with the JFIF matrix (no rounding of the planes to integers);
3. 4:2:0 chroma subsampling by 2x2 averages;
4. 8x8 blocks, level shift by -128, orthonormal 2-D DCT-II;
5. quantisation by the standard tables (ITU-T T.81 Annex K) times a quality factor: ``5000 / q`` below
   50, ``200 - 2 q`` from 50, divided by 100 -- continuous, not rounded or clamped to 1..255 as libjpeg
   does. As in BasicSR, the tables are applied transposed (coefficient (u, v) uses entry (v, u)); the
   chrominance table is symmetric, the luminance one is not;
6. rounding: ``round(x)`` (``differentiable=False``) or ``round(x) + (x - round(x)) ** 3``, a rounding
   with a non-zero gradient almost everywhere (Shin & Song, NIPS-W 2017);
7. dequantisation, inverse DCT, nearest-neighbour chroma up-sampling, YCbCr -> RGB, clamp to [0, 255],
   / 255 and crop to the input size.

It differs from libjpeg (OpenCV, PIL) in steps 1, 2, 5 and 7 (libjpeg repeats the edge, rounds the planes,
rounds the tables, up-samples chroma smoothly), so the outputs are not the same images at equal quality.
"""
from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['DiffJPEG', 'diff_round', 'quality_to_factor']

# ITU-T T.81 Annex K, row = vertical frequency
_LUMINANCE_TABLE = [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]]
_CHROMINANCE_CORNER = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]  # rest: 99
# JFIF colour transforms (rows: output channel)
_RGB_TO_YCBCR = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
_YCBCR_TO_RGB = [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]
_SUBSAMPLED_BLOCK = 16  # an 8x8 chroma block covers 16x16 pixels

Quality = Union[int, float, Tensor]


def diff_round(x: Tensor) -> Tensor:
    """``round(x) + (x - round(x)) ** 3``: rounding plus a cubic residual (at most 0.125), so that the
    gradient is ``3 (x - round(x)) ** 2`` instead of 0."""
    rounded = torch.round(x)
    return rounded + (x - rounded) ** 3


def quality_to_factor(quality: Quality) -> Quality:
    """JPEG quality (1..100, float allowed) -> scale of the quantisation tables (1 at quality 50).

    A number gives a float; a tensor gives a float tensor of the same shape (the input is not modified).
    """
    if isinstance(quality, Tensor):
        q = quality.float()
        return torch.where(q < 50, 5000.0 / q, 200.0 - q * 2) / 100.0
    quality = float(quality)
    return (5000.0 / quality if quality < 50 else 200.0 - quality * 2) / 100.0


def _dct_basis() -> Tensor:
    """(8, 8, 8, 8) ``cos((2x+1) u pi / 16) cos((2y+1) v pi / 16)`` at [x, y, u, v], from float64."""
    k = torch.arange(8, dtype=torch.float64)
    c = torch.cos((2 * k[:, None] + 1) * k[None, :] * math.pi / 16)  # [x, u]
    return (c[:, None, :, None] * c[None, :, None, :]).float()


def _blocks(plane: Tensor) -> Tensor:
    """(B, H, W) -> (B, H*W/64, 8, 8), blocks in row-major order."""
    b, h, w = plane.shape
    return plane.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 8, 8)


def _unblocks(blocks: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`_blocks`."""
    b = blocks.shape[0]
    return blocks.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


class DiffJPEG(nn.Module):
    """JPEG compression and decompression of RGB images with BasicSR's ``DiffJPEG`` numerics.

    Args:
        differentiable: use :func:`diff_round` for quantisation (gradients reach the input), else
            ``torch.round`` (MiOIR's synthesis uses ``False``).
    Forward:
        x: (B, 3, H, W) RGB float in [0, 1], any H, W.
        quality: a number (1..100) for the whole batch or a (B,) tensor, one quality per image (float
            arithmetic, as BasicSR with a float tensor).
    Returns the decoded (B, 3, H, W) in [0, 1] (not rounded to 8 bits), computed in float32 and returned in
    the input's dtype.
    """

    def __init__(self, differentiable: bool = True) -> None:
        super().__init__()
        self.differentiable = differentiable
        luminance = torch.tensor(_LUMINANCE_TABLE, dtype=torch.float32)
        chrominance = torch.full((8, 8), 99.0)
        chrominance[:4, :4] = torch.tensor(_CHROMINANCE_CORNER, dtype=torch.float32)
        alpha = torch.tensor([1 / math.sqrt(2)] + [1.0] * 7, dtype=torch.float64)
        outer = alpha[:, None] * alpha[None, :]
        basis = _dct_basis()
        buffers = {
            'luminance_table': luminance.t().contiguous(),  # transposed, as BasicSR applies it
            'chrominance_table': chrominance.t().contiguous(),
            'rgb_to_ycbcr': torch.tensor(_RGB_TO_YCBCR, dtype=torch.float32).t().contiguous(),
            'ycbcr_to_rgb': torch.tensor(_YCBCR_TO_RGB, dtype=torch.float32).t().contiguous(),
            'dct_basis': basis,                                           # [x, y, u, v]
            'idct_basis': basis.permute(2, 3, 0, 1).contiguous(),         # [u, v, x, y]
            'dct_scale': (outer * 0.25).float(),
            'idct_alpha': outer.float(),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    def _factor(self, quality: Quality, x: Tensor) -> Union[float, Tensor]:
        """Table scale: a float for a number, a (B, 1, 1, 1) tensor for a tensor of 1 or B qualities."""
        if not isinstance(quality, Tensor):
            return quality_to_factor(quality)
        b = x.shape[0]
        if quality.numel() not in (1, b):
            raise ValueError(f'DiffJPEG: quality must be a number or a tensor of 1 or {b} values for a batch of '
                             f'{b}, got shape {tuple(quality.shape)}')
        return quality_to_factor(quality.reshape(-1)).to(x.device).expand(b).reshape(b, 1, 1, 1)

    def _round(self, x: Tensor) -> Tensor:
        return diff_round(x) if self.differentiable else torch.round(x)

    def _code(self, plane: Tensor, table: Tensor, factor: Union[float, Tensor]) -> Tensor:
        """(B, h, w) plane in 0..255 -> the same plane after DCT, quantisation, rounding and inverse DCT."""
        h, w = plane.shape[-2:]
        coeffs = self.dct_scale * torch.tensordot(_blocks(plane) - 128, self.dct_basis, dims=2)
        step = table * factor
        levels = self._round(coeffs / step)
        decoded = 0.25 * torch.tensordot(levels * step * self.idct_alpha, self.idct_basis, dims=2) + 128
        return _unblocks(decoded, h, w)

    def forward(self, x: Tensor, quality: Quality) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'DiffJPEG expects (B, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}')
        h, w = x.shape[-2:]
        dtype = x.dtype
        x = x.float()  # the model's arithmetic is float32 whatever the input (as BasicSR's tables)
        factor = self._factor(quality, x)
        x = F.pad(x, (0, -w % _SUBSAMPLED_BLOCK, 0, -h % _SUBSAMPLED_BLOCK))
        ycbcr = torch.tensordot((x * 255).permute(0, 2, 3, 1), self.rgb_to_ycbcr, dims=1)
        ycbcr = ycbcr + ycbcr.new_tensor([0.0, 128.0, 128.0])
        luma = self._code(ycbcr[..., 0], self.luminance_table, factor)
        chroma = F.avg_pool2d(ycbcr[..., 1:].permute(0, 3, 1, 2), kernel_size=2, stride=2)
        chroma = torch.stack([self._code(chroma[:, i], self.chrominance_table, factor) for i in range(2)], 1)
        chroma = chroma.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        decoded = torch.cat([luma[:, None], chroma], dim=1).permute(0, 2, 3, 1)
        decoded = decoded + decoded.new_tensor([0.0, -128.0, -128.0])
        rgb = torch.tensordot(decoded, self.ycbcr_to_rgb, dims=1).permute(0, 3, 1, 2)
        return (rgb.clamp(0, 255)[:, :, :h, :w] / 255).to(dtype)

    def extra_repr(self) -> str:
        return f'differentiable={self.differentiable}'
