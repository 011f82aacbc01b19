"""Real-ESRGAN degradations and USM at BasicSR's module paths, against BasicSR's own definitions.

Expected values were computed outside the project by running XPixelGroup/BasicSR's ``data/degradations.py`` and
``utils/img_process_util.py`` with the same seeds (``random.seed``/``np.random.seed``/``torch.manual_seed``)
and inputs; matching them means the same random draws in the same order. float32 values are compared to
1e-6, float64 kernels to 1e-8, sums of many float32 values to 1e-4.
"""
import math
import random

import numpy as np
import pytest
import torch

from basicsr.data.degradations import (circular_lowpass_kernel, random_add_gaussian_noise,
                                       random_add_gaussian_noise_pt, random_add_jpg_compression,
                                       random_add_poisson_noise, random_add_poisson_noise_pt, random_mixed_kernels)
from basicsr.utils import USMSharp, usm_sharp
from basicsr.utils.img_process_util import filter2D

KINDS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
# (row 3, columns 0..3; sum of squares) of six consecutive random_mixed_kernels draws after seeding with 0
MIXED = [([0.0184139, 0.02808683, 0.02871476, 0.0287174], 0.023867324186540993),
         ([0.01827703, 0.02383523, 0.02952141, 0.03236999], 0.021659261125586443),
         ([0.01943047, 0.02292527, 0.01810788, 0.02600723], 0.021077269496844662),
         ([0.00386016, 0.02257495, 0.08205367, 0.09497484], 0.053965187811629525),
         ([0.01312957, 0.02060825, 0.03650416, 0.03248167], 0.024137203996867723),
         ([0.00024664, 0.00764525, 0.08574373, 0.354906], 0.173926497575575)]


def pattern(h: int, w: int, c: int = 3, mult: int = 37, mod: int = 251) -> np.ndarray:
    return ((np.arange(h * w * c).reshape(h, w, c) * mult) % mod / (mod - 1)).astype(np.float32)


def batch(*mults: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([pattern(4, 5, mult=m) for m in mults])).permute(0, 3, 1, 2).contiguous()


def test_random_mixed_kernels_and_circular_kernel_match_basicsr():
    random.seed(0)
    np.random.seed(0)
    for row, energy in MIXED:
        kernel = random_mixed_kernels(KINDS, [1 / 6] * 6, 7, noise_range=(0.75, 1.25))
        assert kernel.shape == (7, 7) and kernel.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(kernel[3, :4], row, atol=1e-8)
        assert float((kernel ** 2).sum()) == pytest.approx(energy, abs=1e-12)
    sinc = circular_lowpass_kernel(math.pi / 3, 7, pad_to=9)
    assert sinc.shape == (9, 9) and sinc[0].sum() == 0 and sinc.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(sinc[4, 1:6], [0.01153021, 0.03456865, 0.05530199, 0.0636354, 0.05530199], atol=1e-8)
    with pytest.raises(ValueError, match='odd'):
        circular_lowpass_kernel(1.0, 6)


def test_noise_pt_matches_basicsr():
    torch.manual_seed(0)
    out = random_add_gaussian_noise_pt(batch(37), sigma_range=(1, 30), gray_prob=0.5)
    np.testing.assert_allclose(out.flatten()[:6].tolist(), [0.0, 0.41781169, 0.93922698, 0.36976871, 0.75292593,
                                                            0.08432834], atol=1e-6)
    assert float(out.double().sum()) == pytest.approx(29.765278711915016, abs=1e-4)
    torch.manual_seed(3)
    gray = random_add_gaussian_noise_pt(batch(37), sigma_range=(1, 30), gray_prob=1.0)
    assert float(gray.double().sum()) == pytest.approx(29.121417071670294, abs=1e-4)
    noise = gray - batch(37)
    unclipped = (gray > 0) & (gray < 1)
    same = unclipped[:, 0] & unclipped[:, 1] & unclipped[:, 2]
    assert torch.allclose(noise[:, 0][same], noise[:, 2][same], atol=1e-6)  # gray: the same noise in R, G, B
    torch.manual_seed(1)
    pois = random_add_poisson_noise_pt(batch(37, 11), scale_range=(0.05, 3), gray_prob=0.5)
    np.testing.assert_allclose(pois.flatten()[:6].tolist(), [0.0, 0.43895948, 0.83171475, 0.30615798, 1.0,
                                                             0.45002216], atol=1e-6)
    assert float(pois.double().sum()) == pytest.approx(53.39770969981328, abs=1e-4)
    torch.manual_seed(7)
    pois_gray = random_add_poisson_noise_pt(batch(37, 11), scale_range=(0.5, 3), gray_prob=1.0, clip=False)
    np.testing.assert_allclose(pois_gray.flatten()[:6].tolist(), [0.2359678, -0.07679534, 0.49824786, 0.82717991,
                                                                  1.12527621, 0.11630694], atol=1e-6)
    assert float(pois_gray.double().sum()) == pytest.approx(60.76026764558628, abs=1e-4)
    two = random_add_gaussian_noise_pt(batch(37, 11), sigma_range=(1, 30), gray_prob=1.0)  # batch > 1 with gray
    assert two.shape == (2, 3, 4, 5)


def test_noise_and_jpeg_numpy_match_basicsr():
    np.random.seed(2)
    np.testing.assert_allclose(random_add_gaussian_noise(pattern(3, 3), sigma_range=(1, 30), gray_prob=0.5)
                               .flatten()[:5], [0.0, 0.03370218, 0.18170218, 0.5317632, 0.6797632], atol=1e-6)
    np.random.seed(4)
    rounded = random_add_poisson_noise(pattern(3, 3), scale_range=(0.1, 2), gray_prob=0.0, rounds=True)
    np.testing.assert_allclose(rounded.flatten()[:5], [0.0, 41 / 255, 54 / 255, 95 / 255, 1.0], atol=1e-6)
    np.random.seed(5)
    np.testing.assert_allclose(random_add_poisson_noise(pattern(3, 3), scale_range=(0.1, 2), gray_prob=1.0)
                               .flatten()[:5], [0.005755, 0.15375501, 0.30175501, 0.41420186, 0.56220186], atol=1e-6)
    np.random.seed(6)  # quality 88.04 -> 88 (BasicSR passes the float, which current OpenCV refuses)
    np.testing.assert_allclose(random_add_jpg_compression(pattern(8, 8), (30, 95)).flatten()[:5],
                               [42 / 255, 33 / 255, 66 / 255, 169 / 255, 136 / 255], atol=1e-6)


def test_filter2d_and_usm_match_basicsr():
    kernel = torch.from_numpy(circular_lowpass_kernel(1.2, 5)).float()[None]
    out = filter2D(batch(37, 11), kernel.repeat(2, 1, 1))
    np.testing.assert_allclose(out.flatten()[:5].tolist(), [0.4573493, 0.4556061, 0.49918216, 0.55066705,
                                                            0.55760944], atol=1e-6)
    assert float(out.double().sum()) == pytest.approx(58.446676552295685, abs=1e-4)
    assert torch.allclose(filter2D(batch(37, 11), kernel), out, atol=1e-6)  # one kernel for the whole batch
    sharp = USMSharp(radius=5)(batch(37, 11), weight=0.7, threshold=5)
    np.testing.assert_allclose(sharp.flatten()[:5].tolist(), [0.0, 0.44688684, 0.97549999, 0.20652267, 0.86335003],
                               atol=1e-6)
    assert float(sharp.double().sum()) == pytest.approx(55.28782762866467, abs=1e-4)
    np.testing.assert_allclose(usm_sharp(pattern(9, 9), 0.5, 5, 10).flatten()[:5],
                               [0.0, 0.04390624, 0.19975001, 0.3766875, 0.71010309], atol=1e-6)
    with pytest.raises(ValueError, match='odd'):
        filter2D(batch(37), torch.ones(1, 4, 4))
