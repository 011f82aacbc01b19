"""DiffJPEG (basicsr/utils/diffjpeg.py) against BasicSR's own ``DiffJPEG``, plus its interface.

``tests/data/diffjpeg_parity.safetensors`` holds BasicSR's outputs (``scripts/make_diffjpeg_parity.py`` runs
XPixelGroup/BasicSR ``basicsr/utils/diffjpeg.py`` outside the project) for a (2, 3, 29, 35) batch, qualities
30, 75 and a per-image [20, 55], both rounding modes. The input was chosen so that every quantised DCT
coefficient is at least ``margin`` (>= 1e-4) quantisation steps from a rounding tie; float32 errors of the
coefficients are about 1e-5 steps, so no CPU rounds a coefficient differently and the outputs agree to
float32 rounding of the inverse transform (about 1e-6 on [0, 1]).
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from basicsr.utils.diffjpeg import DiffJPEG, diff_round, quality_to_factor

VECTORS = Path(__file__).resolve().parent / 'data' / 'diffjpeg_parity.safetensors'


def _vectors():
    with safe_open(str(VECTORS), 'pt') as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()['diffjpeg'])


def test_vectors_keep_coefficients_away_from_rounding_ties():
    assert _vectors()[1]['margin'] >= 1e-4


@pytest.mark.parametrize('index', range(6))
def test_matches_basicsr_diffjpeg(index):
    tensors, meta = _vectors()
    case = meta['cases'][index]
    quality = case['quality']
    quality = torch.tensor(quality) if isinstance(quality, list) else quality
    with torch.no_grad():
        out = DiffJPEG(differentiable=case['differentiable'])(tensors['diffjpeg.input'], quality)
    torch.testing.assert_close(out, tensors[case['key']], atol=1e-5, rtol=0)


def test_per_image_quality_equals_separate_calls_and_leaves_the_tensor_alone():
    x = _vectors()[0]['diffjpeg.input']
    jpeg = DiffJPEG(differentiable=False)
    quality = torch.tensor([20.0, 55.0])
    with torch.no_grad():
        both = jpeg(x, quality)
        torch.testing.assert_close(both[:1], jpeg(x[:1], 20), atol=1e-6, rtol=0)
        torch.testing.assert_close(both[1:], jpeg(x[1:], 55), atol=1e-6, rtol=0)
    assert quality.tolist() == [20.0, 55.0]  # BasicSR overwrites it with the factors


def test_quality_factor_is_one_at_50_and_follows_the_two_ijg_formulas():
    assert quality_to_factor(50) == 1.0
    assert quality_to_factor(25) == pytest.approx(2.0)    # 5000 / q / 100
    assert quality_to_factor(75) == pytest.approx(0.5)    # (200 - 2 q) / 100
    torch.testing.assert_close(quality_to_factor(torch.tensor([25, 75])), torch.tensor([2.0, 0.5]))


def test_lower_quality_loses_more():
    x = _vectors()[0]['diffjpeg.input']
    jpeg = DiffJPEG(differentiable=False)
    with torch.no_grad():
        errors = [(jpeg(x, q) - x).pow(2).mean().item() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2]


def test_differentiable_rounding_passes_gradients():
    x = _vectors()[0]['diffjpeg.input'][:1].clone().requires_grad_(True)
    DiffJPEG(differentiable=True)(x, 50).sum().backward()
    assert x.grad.abs().sum() > 0
    y = x.detach().clone().requires_grad_(True)
    DiffJPEG(differentiable=False)(y, 50).sum().backward()
    assert y.grad.abs().sum() == 0  # torch.round has a zero gradient
    t = torch.tensor([-1.3, 0.2, 2.5, 3.7])
    torch.testing.assert_close(diff_round(t), torch.round(t) + (t - torch.round(t)) ** 3)


@pytest.mark.parametrize('x, quality, match', [
    (torch.rand(1, 1, 16, 16), 50, r'\(B, 3, H, W\)'),
    (torch.rand(2, 3, 16, 16), torch.tensor([10.0, 20.0, 30.0]), 'tensor of 1 or 2 values'),
])
def test_bad_input_names_what_is_expected(x, quality, match):
    with pytest.raises(ValueError, match=match):
        DiffJPEG()(x, quality)


def test_basicsr_utils_exports_it_like_basicsr():
    from basicsr.utils import DiffJPEG as exported
    assert exported is DiffJPEG


def test_any_float_input_is_coded_in_float32_and_returned_in_its_dtype():
    x = _vectors()[0]['diffjpeg.input']
    jpeg = DiffJPEG(differentiable=False)
    with torch.no_grad():
        out = jpeg(x.double(), 40)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), jpeg(x, 40))
