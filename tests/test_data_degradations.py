"""Registered degradations: seeded reproducibility, noise statistics, options and their errors."""
from __future__ import annotations

import numpy as np
import pytest

from basicsr.data import DEGRADATION_REGISTRY, build_degradation
from basicsr.data.degradations import GaussianNoise, build_degradations


def _flat(h=128, w=128, value=0.5):
    return np.full((h, w, 3), value, np.float32)


def test_gaussian_noise_is_registered_and_built_by_name():
    assert 'GaussianNoise' in DEGRADATION_REGISTRY.keys()
    assert isinstance(build_degradation({'type': 'GaussianNoise', 'sigma': 25}), GaussianNoise)


def test_same_seed_same_noise_other_seed_other_noise():
    deg = GaussianNoise(sigma=25)
    a = deg(_flat(), np.random.default_rng([0, 1, 2]))
    b = deg(_flat(), np.random.default_rng([0, 1, 2]))
    c = deg(_flat(), np.random.default_rng([0, 1, 3]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sigma_25_has_the_right_standard_deviation_and_zero_mean():
    noise = GaussianNoise(sigma=25)(_flat(256, 256), np.random.default_rng(0)) - 0.5
    assert abs(noise.std() * 255 - 25) < 0.2  # 196k samples: std error of the std is about 0.04
    assert abs(noise.mean() * 255) < 0.2
    assert noise.dtype == np.float32


def test_unclipped_by_default_clipped_on_request():
    img = _flat(64, 64, 0.98)
    assert GaussianNoise(sigma=25)(img, np.random.default_rng(0)).max() > 1.0
    assert GaussianNoise(sigma=25, clip=True)(img, np.random.default_rng(0)).max() <= 1.0


def test_quantize_round_and_floor_give_8bit_levels():
    img = _flat(32, 32)
    r = GaussianNoise(sigma=10, quantize='round')(img, np.random.default_rng(0))
    f = GaussianNoise(sigma=10, quantize='floor')(img, np.random.default_rng(0))
    for out in (r, f):
        np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)
        assert 0 <= out.min() and out.max() <= 1
    assert np.all(f <= r + 1e-6) and np.any(f < r)


def test_sigma_range_draws_one_sigma_per_image_within_range():
    deg = GaussianNoise(sigma_range=[10, 20])
    sigmas = [deg.draw_sigma(np.random.default_rng(s)) for s in range(200)]
    assert 10 <= min(sigmas) < 11 and 19 < max(sigmas) <= 20
    measured = (deg(_flat(), np.random.default_rng(5)) - 0.5).std() * 255
    assert abs(measured - deg.draw_sigma(np.random.default_rng(5))) < 0.5  # first draw of the same stream


def test_sigma_choices():
    deg = GaussianNoise(sigma_choices=[15, 25, 50])
    assert {deg.draw_sigma(np.random.default_rng(s)) for s in range(50)} == {15.0, 25.0, 50.0}


@pytest.mark.parametrize('kwargs,match', [
    ({}, 'exactly one of'),
    ({'sigma': 25, 'sigma_range': [0, 50]}, 'exactly one of'),
    ({'sigma_range': [50, 0]}, 'low <= high'),
    ({'sigma': -1}, '>= 0'),
    ({'sigma': 5, 'quantize': 'ceil'}, 'quantize'),
])
def test_bad_noise_options_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianNoise(**kwargs)


def test_pipeline_from_a_list_and_errors_name_the_entry():
    pipe = build_degradations([{'type': 'GaussianNoise', 'sigma': 5}, {'type': 'GaussianNoise', 'sigma': 5}])
    assert len(pipe.steps) == 2
    with pytest.raises(TypeError, match=r"degradation\[1\].*'sigmaa'"):
        build_degradations([{'type': 'GaussianNoise', 'sigma': 5}, {'type': 'GaussianNoise', 'sigmaa': 5}])
    with pytest.raises(KeyError, match='GaussianNoise'):
        build_degradations({'type': 'GaussNoise', 'sigma': 5})
