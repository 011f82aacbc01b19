"""MiOIR's seven synthetic degradations: seeding, 8-bit grid, parameter ranges, errors, parity, the task table.

Parity with the official scripts (``data_script/add_MiO_train_degradation.py`` / ``add_MiO_test_degradation.py``,
run outside the project with stubbed imports, same fixed parameters, CBSD68, 68 images): SR down-up, blur
(kernel and image), low light and rain (streak map and image, same NumPy noise stream) are identical to the
8-bit level; haze differs by one level in 113 of 31.3M values (float32 vs float64 rounding near ties).
Noise is the same formula (colour Gaussian, clip, round) with a different random stream. JPEG (default
backend ``diffjpeg``) equals MiOIR's synthesis recorded in ``tests/data/diffjpeg_parity.safetensors`` by
``scripts/make_diffjpeg_parity.py``; ``backend: opencv`` is libjpeg (different artefacts).
The rain golden numbers below are the official ``rain_blur(get_noise(...))`` maps for
``np.random.seed(0)``.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from scipy.io import savemat
from scipy.ndimage import correlate

from basicsr.archs.prompt_blocks import MIOIR_TASKS
from basicsr.data import DEGRADATION_REGISTRY, build_dataset, build_degradation
from basicsr.data import mioir_degradations
from basicsr.data.degradations import GaussianNoise, build_degradations
from basicsr.data.mioir_degradations import (JPEG, BicubicDownUp, GaussianBlur, Haze, LowLight, MiOIRDegradation,
                                             RainStreaks, gaussian_kernel, mioir_degradation, rain_streak_levels,
                                             rain_streak_map)
from basicsr.utils.img_util import read_image
from data_helpers import SHARED_DATA, save

TYPES = ('BicubicDownUp', 'GaussianBlur', 'JPEG', 'RainStreaks', 'Haze', 'LowLight', 'MiOIR')


def _made_image(h: int, w: int) -> np.ndarray:
    """Smooth ramps, a few sharp squares and fine texture, on the 8-bit grid."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.5 + 0.3 * np.sin(8 * x + 5 * y)], -1)
    img[h // 4:h // 2, w // 4:w // 2] = [0.9, 0.1, 0.2]
    img += 0.05 * np.random.default_rng(0).standard_normal((h, w, 3))
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


@pytest.fixture(scope='module')
def image() -> np.ndarray:
    """(97, 130, 3) crop of a CBSD68 image (sizes not divisible by 4), or a made one when the data is absent."""
    path = SHARED_DATA / 'CBSD68' / '102061.png'
    if path.is_file():
        return read_image(path)[100:197, 150:280]
    return _made_image(97, 130)


def _on_grid(img: np.ndarray) -> bool:
    return bool(np.all(np.abs(img * 255 - np.round(img * 255)) < 1e-4) and img.min() >= 0 and img.max() <= 1)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def _block(task: str) -> dict:
    extra = {'depth': 'synthetic_smooth'} if task == 'haze' else {}
    return {'type': 'MiOIR', 'task': task, **extra}


# ------------------------------------------------------------------------------------------ common behaviour
def test_all_types_are_registered():
    assert set(TYPES) <= set(DEGRADATION_REGISTRY.keys())


@pytest.mark.parametrize('task', MIOIR_TASKS)
def test_every_task_is_seeded_on_the_8bit_grid_and_keeps_the_shape(task, image):
    deg = build_degradation(_block(task))
    a = deg(image, np.random.default_rng([3, 1]))
    b = deg(image, np.random.default_rng([3, 1]))
    c = deg(image, np.random.default_rng([3, 2]))
    np.testing.assert_array_equal(a, b)
    assert a.shape == image.shape and a.dtype == np.float32
    assert _on_grid(a)
    assert not np.array_equal(a, image)
    if task == 'sr':  # deterministic
        np.testing.assert_array_equal(a, c)
    else:
        assert not np.array_equal(a, c)


@pytest.mark.parametrize('task', MIOIR_TASKS)
def test_degradations_draw_only_from_the_given_generator(task, image):
    np.random.seed(0)
    torch.manual_seed(0)
    a = build_degradation(_block(task))(image, np.random.default_rng(7))
    np.random.seed(1)
    torch.manual_seed(1)
    b = build_degradation(_block(task))(image, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------------- SR
def test_sr_is_torch_bicubic_round_trip_on_sizes_not_divisible_by_the_scale(image):
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    small = F.interpolate(x, scale_factor=0.25, mode='bicubic', align_corners=False)
    assert small.shape[-2:] == (24, 32)  # floor(97 / 4), floor(130 / 4)
    back = F.interpolate(small, size=image.shape[:2], mode='bicubic', align_corners=False)
    expected = torch.clamp(torch.round(back * 255), 0, 255)[0].permute(1, 2, 0).numpy() / 255
    np.testing.assert_allclose(BicubicDownUp(4)(image, np.random.default_rng(0)), expected, atol=1e-6)


def test_sr_errors():
    with pytest.raises(ValueError, match='integer >= 2'):
        BicubicDownUp(scale=1)
    with pytest.raises(ValueError, match='smaller than the scale'):
        BicubicDownUp(4)(np.zeros((3, 8, 3), np.float32), np.random.default_rng(0))


# ----------------------------------------------------------------------------------------------------- blur
def test_blur_kernel_is_a_centred_normalised_gaussian():
    k = gaussian_kernel(7, 1.5)
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-12
    assert k.argmax() == 24 and np.allclose(k, k.T) and np.allclose(k, k[::-1])
    assert np.isclose(k[3, 4] / k[3, 3], np.exp(-1 / (2 * 1.5 ** 2)))


def test_blur_equals_reflect_padded_correlation_with_that_kernel(image):
    out = GaussianBlur([9], [2.0, 2.0])(image, np.random.default_rng(0))
    k = gaussian_kernel(9, 2.0)
    # scipy 'mirror' = reflection without repeating the edge pixel, torch's 'reflect'
    ref = np.stack([correlate(image[:, :, c].astype(np.float64), k, mode='mirror') for c in range(3)], -1)
    assert np.abs(out - np.round(ref * 255) / 255).max() <= 1 / 255 + 1e-6


def test_blur_draws_size_and_two_decimal_sigma_in_range_and_removes_high_frequencies(image):
    deg = GaussianBlur()
    draws = [deg.draw(np.random.default_rng(s)) for s in range(300)]
    assert {k for k, _ in draws} == {7, 9, 11, 13, 15, 17, 19, 21}
    sigmas = np.array([s for _, s in draws])
    assert 1 <= sigmas.min() < 1.1 and 2.9 < sigmas.max() <= 3
    np.testing.assert_allclose(sigmas, np.round(sigmas, 2))

    def hf_energy(img):
        return float(np.mean(np.diff(img, axis=0) ** 2) + np.mean(np.diff(img, axis=1) ** 2))
    assert hf_energy(deg(image, np.random.default_rng(0))) < 0.3 * hf_energy(image)
    ood = GaussianBlur(**{k: v for k, v in mioir_degradation('blur', 'ood').items() if k != 'type'})
    assert all(3 <= ood.draw(np.random.default_rng(s))[1] <= 5 for s in range(50))


@pytest.mark.parametrize('kwargs,match', [
    ({'kernel_sizes': [8]}, 'odd positive'), ({'kernel_sizes': []}, 'odd positive'),
    ({'sigma_range': [3, 1]}, 'low <= high'), ({'sigma_range': [0, 1]}, 'positive')])
def test_bad_blur_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianBlur(**kwargs)


def test_blur_rejects_images_smaller_than_the_kernel_padding():
    with pytest.raises(ValueError, match='too small'):
        GaussianBlur([21], [1, 1])(np.zeros((10, 40, 3), np.float32), np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------------- noise
def test_mioir_noise_draws_integer_sigma_15_to_50_and_clips_to_the_grid():
    deg = build_degradation(_block('noise')).degradation
    assert isinstance(deg, GaussianNoise)
    sigmas = {deg.draw_sigma(np.random.default_rng(s)) for s in range(400)}
    assert sigmas <= set(map(float, range(15, 51))) and {15.0, 50.0} <= sigmas
    flat = np.full((128, 128, 3), 0.5, np.float32)
    rng_sigma, rng_img = np.random.default_rng(4), np.random.default_rng(4)
    out = deg(flat, rng_img)
    assert _on_grid(out)
    assert abs((out - 0.5).std() * 255 - deg.draw_sigma(rng_sigma)) < 1.0


def test_round_sigma_is_off_by_default():
    assert GaussianNoise(sigma_range=[15, 50]).draw_sigma(np.random.default_rng(0)) % 1 != 0
    assert GaussianNoise(sigma=25.4, round_sigma=True).draw_sigma(np.random.default_rng(0)) == 25.0


# ----------------------------------------------------------------------------------------------------- JPEG
@pytest.mark.parametrize('backend', ['diffjpeg', 'opencv'])
def test_jpeg_quality_10_is_worse_than_90_and_output_is_on_the_grid(image, backend):
    rng = np.random.default_rng(0)
    low, high = JPEG([10, 10], backend=backend)(image, rng), JPEG([90, 90], backend=backend)(image, rng)
    assert _psnr(low, image) + 5 < _psnr(high, image)
    assert _on_grid(low) and low.shape == image.shape


def test_jpeg_draws_integer_quality_in_range_and_handles_gray(image):
    deg = JPEG()
    qs = {deg.draw(np.random.default_rng(s)) for s in range(400)}
    assert qs <= set(range(30, 71)) and {30, 70} <= qs
    for backend in JPEG.BACKENDS:
        gray = JPEG([50, 50], backend=backend)(image[:, :, :1], np.random.default_rng(0))
        assert gray.shape == image[:, :, :1].shape and _on_grid(gray)


def test_diffjpeg_codes_a_gray_image_as_luminance_only(image):
    """R = G = B has zero chroma, so every decoded channel is the coded luminance (what the gray path keeps)."""
    gray = image[:, :, :1]
    rgb = JPEG([40, 40])(np.repeat(gray, 3, axis=2), np.random.default_rng(0))
    np.testing.assert_array_equal(rgb[:, :, :1], JPEG([40, 40])(gray, np.random.default_rng(0)))
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


def _mioir_jpeg_vectors():
    with safe_open(str(Path(__file__).resolve().parent / 'data' / 'diffjpeg_parity.safetensors'), 'pt') as f:
        return {k: f.get_tensor(k).numpy() for k in f.keys() if k.startswith('mioir.')}, \
            json.loads(f.metadata()['mioir'])


@pytest.mark.parametrize('quality', [30, 47, 70])
def test_jpeg_default_equals_the_official_mioir_synthesis(quality):
    """MiOIR's steps (8-bit input, DiffJPEG(differentiable=False), rounding to 8 bits) recorded from its own
    script on a 45x53 CBSD68 crop. Every DCT coefficient is >= 1e-4 steps from a rounding tie (``margin``),
    so only the final rounding to 8 bits may differ on another CPU: at most one level, on a few pixels."""
    vectors, meta = _mioir_jpeg_vectors()
    assert meta['margin'] >= 1e-4 and quality in meta['qualities']
    clean = vectors['mioir.input_rgb_u8'].astype(np.float32) / 255
    ours = np.round(JPEG([quality, quality])(clean, np.random.default_rng(0)) * 255).astype(np.int16)
    official = vectors[f'mioir.q{quality}_rgb_u8'].astype(np.int16)
    assert np.abs(ours - official).max() <= 1
    assert np.mean(ours != official) <= 1e-3
    opencv = np.round(JPEG([quality, quality], backend='opencv')(clean, np.random.default_rng(0)) * 255)
    assert np.mean(opencv != official) > 0.1  # the other backend is a different codec


def test_bad_jpeg_backend():
    with pytest.raises(ValueError, match='JPEG backend must be one of diffjpeg, opencv'):
        JPEG(backend='pil')


@pytest.mark.parametrize('q', [[0, 50], [50, 101], [30.5, 70], [70, 30]])
def test_bad_jpeg_quality(q):
    with pytest.raises(ValueError, match='quality_range'):
        JPEG(q)


# ----------------------------------------------------------------------------------------------------- rain
@pytest.mark.parametrize('h,w,density,length,angle,width,total,nonzero,top', [
    (64, 80, 75, 30, 10, 5, 121794, 2053, 254),
    (96, 64, 140, 20, -45, 11, 189452, 3867, 254),
    (64, 64, 50, 40, 44, 3, 107993, 1251, 255)])
def test_rain_streak_map_matches_the_official_synthesis(h, w, density, length, angle, width, total, nonzero, top):
    """Golden (sum, nonzero count, max) of the official synthesis on one machine.

    The map is float64 filters truncated to uint8: a pixel whose exact value is an integer level (always the
    maximum, 255, after min-max scaling) lands within a few ulps above or below it depending on the CPU's
    summation order (seen: 254 vs 255 on AVX-512 and with another OpenCV). Such a pixel may move one level,
    so the tolerance is the number of pixels lying within 1e-9 of a non-zero integer level (float64 rounding
    of these sums is ~1e-13); every other pixel must match exactly.
    """
    noise = np.random.RandomState(0).uniform(0, 256, (h, w))  # the official np.random stream of seed 0
    streaks = rain_streak_map(noise, density, length, angle, width)
    assert streaks.dtype == np.uint8 and streaks.shape == (h, w)
    levels = rain_streak_levels(noise, density, length, angle, width)
    ambiguous = int(((np.abs(levels - np.round(levels)) < 1e-9) & (np.round(levels) >= 1)).sum())
    assert 1 <= ambiguous <= 3  # the maximum, perhaps a tie: a handful of pixels, not a loose bound
    assert abs(int(streaks.sum()) - total) <= ambiguous
    assert abs(int((streaks > 0).sum()) - nonzero) <= ambiguous
    assert abs(int(streaks.max()) - top) <= 1 and int(streaks.max()) in (254, 255)


def test_rain_adds_bright_streaks_only(image):
    out = RainStreaks()(image, np.random.default_rng(2))
    assert np.all(out >= image - 1e-6)  # only added light, clipped
    added = (out - image).max(-1)
    assert 0.01 < np.mean(added > 10 / 255) < 0.6
    unclipped = (out < 1 - 1e-6).all(-1)  # the same streak map is added to every channel
    diff = (out - image)[unclipped]
    np.testing.assert_allclose(diff, diff[:, :1].repeat(3, 1), atol=1e-6)


def test_rain_without_seeds_leaves_the_image_unchanged():
    img = _made_image(8, 8)
    assert np.array_equal(rain_streak_map(np.zeros((8, 8)), 50, 20, 0, 3), np.zeros((8, 8), np.uint8))
    out = RainStreaks(density_range=[1, 1])(img, np.random.default_rng(0))  # 64 px * 1/25600: no seed
    np.testing.assert_array_equal(out, img)


def test_rain_parameters_are_drawn_in_the_inclusive_ranges():
    deg = RainStreaks(**{k: v for k, v in mioir_degradation('rain', 'ood').items() if k != 'type'})
    draws = [deg.draw(np.random.default_rng(s)) for s in range(600)]
    assert {d['density'] for d in draws} == set(range(100, 150))
    assert {d['width'] for d in draws} == {3, 5, 7, 9, 11}
    assert min(d['length'] for d in draws) == 20 and max(d['length'] for d in draws) == 40
    assert min(d['angle'] for d in draws) == -45 and max(d['angle'] for d in draws) == 44


@pytest.mark.parametrize('kwargs', [{'density_range': [0, 10]}, {'length_range': [40, 20]}, {'widths': [4]},
                                    {'angle_range': [-45.5, 44]}])
def test_bad_rain_options(kwargs):
    with pytest.raises(ValueError, match='RainStreaks'):
        RainStreaks(**kwargs)


# ----------------------------------------------------------------------------------------------------- haze
def test_haze_follows_the_scattering_model_with_a_full_size_depth(tmp_path, image):
    depth = np.linspace(0.5, 2.0, image.shape[0])[:, None].repeat(image.shape[1], 1)
    np.save(tmp_path / 'a.npy', depth)
    out = Haze(depth_dir=str(tmp_path), airlight_range=[0.9, 0.9], beta_range=[1.5, 1.5])(
        image, np.random.default_rng(0), name='sub/a.png')
    t = np.exp(-1.5 * depth / 2.0)[:, :, None]
    np.testing.assert_allclose(out, np.round((image * t + 0.9 * (1 - t)) * 255) / 255, atol=1.01 / 255)
    assert out.shape == image.shape and _on_grid(out)


def test_haze_upsamples_a_quarter_size_mat_depth_and_keeps_the_image_size(tmp_path, image):
    h, w = image.shape[:2]  # 97 x 130: MiOIR would crop to 96 x 128
    savemat(tmp_path / 'b.mat', {'data_obj': np.random.default_rng(0).uniform(0.1, 1, (h // 4, w // 4))})
    deg = Haze(depth_dir=str(tmp_path), airlight_range=[0.85, 0.85], beta_range=[2.0, 2.0])
    full = deg(image, np.random.default_rng(0), name='b.png')
    cropped = deg(image[:96, :128], np.random.default_rng(0), name='b.png')
    assert full.shape == image.shape
    np.testing.assert_array_equal(full[:96, :128], cropped)
    assert (full - image).mean() > 0.05  # hazier (brighter) on average


def test_haze_errors_name_what_is_missing(tmp_path, image):
    with pytest.raises(ValueError, match='depth_dir'):
        Haze()
    with pytest.raises(ValueError, match='not a folder'):
        Haze(depth_dir=str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='only used with depth: from_dir'):
        Haze(depth='synthetic_smooth', depth_dir=str(tmp_path))
    with pytest.raises(ValueError, match='depth must be one of'):
        Haze(depth='zeros')
    deg = Haze(depth_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'0801\.png'.*0801\.npy, 0801\.png, 0801\.mat"):
        deg(image, np.random.default_rng(0), name='0801.png')
    with pytest.raises(ValueError, match='needs the image name'):
        deg(image, np.random.default_rng(0))
    np.save(tmp_path / 'c.npy', np.ones((10, 10)))
    with pytest.raises(ValueError, match=r'c\.npy is 10x10.*expected 97x130 or 24x32'):
        deg(image, np.random.default_rng(0), name='c.png')


def test_haze_in_a_pipeline_without_names_fails_clearly(tmp_path, image):
    pipe = build_degradations({'type': 'MiOIR', 'task': 'haze', 'depth_dir': str(tmp_path)})
    with pytest.raises(ValueError, match='needs the image name'):
        pipe(image, np.random.default_rng(0))


def test_synthetic_smooth_depth_is_an_explicit_opt_in(image):
    deg = Haze(depth='synthetic_smooth')
    out = deg(image, np.random.default_rng(0))
    assert out.shape == image.shape and (out - image).mean() > 0.02
    assert 'synthetic_smooth' in repr(deg)


# ----------------------------------------------------------------------------------------------- low light
def test_low_light_follows_the_gamma_law(image):
    out = LowLight([2.0, 2.0])(image, np.random.default_rng(0))
    np.testing.assert_allclose(out, np.round(image.astype(np.float64) ** 2 * 255) / 255, atol=1e-6)
    assert out.mean() < image.mean()


def test_low_light_gamma_is_drawn_with_two_decimals_in_range():
    ramp = np.linspace(0.3, 0.9, 64, dtype=np.float32)[None, :, None].repeat(3, -1)
    for s in range(20):
        out = LowLight()(ramp, np.random.default_rng(s))
        gamma = float(np.median(np.log(out[0, 40:, 0]) / np.log(ramp[0, 40:, 0])))  # bright end: rounding small
        assert 1 - 0.02 <= gamma <= 3 + 0.02
        expected = round(float(np.random.default_rng(s).uniform(1, 3)), 2)
        assert abs(gamma - expected) < 0.02


def test_bad_low_light_range():
    with pytest.raises(ValueError, match='positive'):
        LowLight([0, 2])


# ------------------------------------------------------------------------------------------------ task table
def test_task_names_letters_and_ids_give_the_same_blocks():
    for i, name in enumerate(MIOIR_TASKS):
        assert mioir_degradation(name) == mioir_degradation(i) == mioir_degradation(name[0])  # letters: b n j r h d s
    assert mioir_degradation('s') == {'type': 'BicubicDownUp', 'scale': 4}


def test_out_of_distribution_ranges():
    assert mioir_degradation('blur', 'ood')['sigma_range'] == [3.0, 5.0]
    assert mioir_degradation('noise', 'ood')['sigma_range'] == [50, 70]
    assert mioir_degradation('jpeg', 'ood')['quality_range'] == [10, 30]
    assert mioir_degradation('rain', 'ood')['density_range'] == [100, 149]
    assert mioir_degradation('haze', 'ood')['beta_range'] == [2.5, 3.0]
    assert mioir_degradation('dark', 'ood')['gamma_range'] == [3.0, 4.0]
    for task in MIOIR_TASKS[:-1]:
        build_degradation({**_block(task), 'split': 'ood'})


def test_task_table_errors():
    with pytest.raises(ValueError, match='no .ood. setting'):
        mioir_degradation('sr', 'ood')
    with pytest.raises(ValueError, match='unknown MiOIR task .snow.*0=blur'):
        mioir_degradation('snow')
    with pytest.raises(ValueError, match='split'):
        mioir_degradation('blur', 'test')
    with pytest.raises(TypeError, match='sigmaa'):
        build_degradation({'type': 'MiOIR', 'task': 'blur', 'sigmaa': 1})
    with pytest.raises(ValueError, match="'type' cannot be overridden"):
        MiOIRDegradation(task='blur', type='JPEG')


def test_overrides_reach_the_underlying_degradation():
    deg = build_degradation({'type': 'MiOIR', 'task': 'jpeg', 'quality_range': [90, 90]})
    assert deg.degradation.quality_range == (90, 90)


# --------------------------------------------------------------------------------------- seven-task dataset
def test_the_documented_seven_task_dataset_builds_and_yields_samples(tmp_path):
    for i in range(2):
        save(tmp_path / 'clean' / f'{i:04d}.png', (_made_image(48, 56) * 255).round().astype(np.uint8))
    opt = yaml.safe_load(textwrap.dedent(mioir_degradations.__doc__.split('::\n', 1)[1]))
    assert [(t['name'], t['label']) for t in opt['tasks']] == list(zip(MIOIR_TASKS, range(7)))
    for task in opt['tasks']:
        task['dataroot_gt'] = str(tmp_path / 'clean')
    ds = build_dataset({**opt, 'name': 'mio', 'phase': 'train', 'gt_size': 32, 'num_task_prompts': 7})
    ds.set_seed(0)
    assert len(ds) == 14
    for index in range(0, 14, 2):
        sample = ds[index]
        assert sample['lq'].shape == sample['gt'].shape == (3, 32, 32)
        assert MIOIR_TASKS[sample['task']] == sample['task_name']
        assert not torch.equal(sample['lq'], sample['gt'])
