"""Metric conventions: analytic values on synthetic images, golden values on real images.

Independent references: scikit-image (``peak_signal_noise_ratio``, ``structural_similarity``) and
scipy.ndimage Gaussian filters. Golden numbers marked 'upstream' were produced by running the official
BasicSR ``basicsr/metrics/psnr_ssim.py`` (XPixelGroup/BasicSR @ 8d56e3a) and Restormer's fork
(swz30/Restormer @ df766d5, ``.cuda()`` removed) on exactly the arrays built here.
"""
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from basicsr.metrics import (METRIC_REGISTRY, PROFILES, build_metric, compute_metrics, compute_metrics_per_image,
                             get_profile, profile_name)
from basicsr.metrics.metric_util import rgb_to_y
from basicsr.metrics.psnr_ssim import (calculate_psnr, calculate_psnr_float, calculate_ssim, calculate_ssim_float,
                                       calculate_ssim_volumetric)

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
DATA = SHARED / 'data'

# scikit-image arguments that reproduce Wang's ssim_index.m (BasicSR's SSIM), per its documentation
SK_WANG = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _rand_image(h: int = 40, w: int = 36, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c)).astype(np.float64)


def _to_tensor(img_rgb_255: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img_rgb_255.transpose(2, 0, 1).copy() / 255.0).float()


def _y_bt601(img_rgb: np.ndarray, scale: float) -> np.ndarray:
    """Independent BT.601 luma for the golden tests (written from the formula, not the package)."""
    r, g, b = (img_rgb[..., i] / scale for i in range(3))
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) * scale / 255.0


def _volumetric_ssim_scipy(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """MATLAB-ssim-like 3-D SSIM: Gaussian sigma 1.5, radius 5 on each axis, replicated borders (scipy)."""
    def g(x):
        return ndimage.gaussian_filter(x, sigma=1.5, mode='nearest', truncate=5 / 1.5)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = g(a), g(b)
    s1, s2, s12 = g(a * a) - mu1 ** 2, g(b * b) - mu2 ** 2, g(a * b) - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))).mean())


# ------------------------------------------------------------------ analytic values
def test_psnr_of_known_mse_is_analytic():
    gt = _rand_image()
    pred = gt.copy()
    pred[::2] += 10.0  # half the rows off by 10 -> MSE 50
    assert calculate_psnr(pred, gt) == pytest.approx(10 * math.log10(255 ** 2 / 50), abs=1e-12)
    assert calculate_psnr_float(pred / 255, gt / 255) == pytest.approx(10 * math.log10(255 ** 2 / 50), abs=1e-9)


def test_psnr_of_identical_images_is_inf():
    img = _rand_image()
    assert calculate_psnr(img, img) == math.inf
    assert compute_metrics(_to_tensor(img), _to_tensor(img), 'skimage_float')['psnr'] == math.inf


@pytest.mark.parametrize('fn,kwargs', [
    (calculate_ssim, {}), (calculate_ssim, {'test_y_channel': True}),
    (calculate_ssim_volumetric, {}), (calculate_ssim_volumetric, {'test_y_channel': True}),
    (calculate_ssim_float, {}), (calculate_ssim_float, {'gaussian_weights': True}),
    (calculate_ssim_float, {'test_y_channel': True, 'y_as_columns': True}),
])
def test_ssim_of_image_with_itself_is_one(fn, kwargs):
    img = _rand_image()
    scale = 1.0 if fn is calculate_ssim_float else 255.0
    assert fn(img / 255 * scale, img / 255 * scale, **kwargs) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize('rgb,y', [((255, 255, 255), 235.0), ((0, 0, 0), 16.0), ((255, 0, 0), 81.481),
                                   ((0, 255, 0), 144.553), ((0, 0, 255), 40.966)])
def test_y_channel_is_bt601_on_known_colours(rgb, y):
    img = np.ones((2, 2, 3)) * np.array(rgb, dtype=np.float64)
    assert rgb_to_y(img, 255.0, 'rgb')[0, 0, 0] == pytest.approx(y, abs=1e-9)
    assert rgb_to_y(img[..., ::-1], 255.0, 'bgr')[0, 0, 0] == pytest.approx(y, abs=1e-9)
    assert rgb_to_y(img / 255, 1.0, 'rgb')[0, 0, 0] == pytest.approx(y / 255, abs=1e-12)


def test_round_y_rounds_luma_like_matlab_on_uint8():
    gt = np.zeros((12, 12, 3))
    pred = np.zeros((12, 12, 3))
    pred[..., 0] = 1  # red 1/255 -> Y = 16.2568 (rounds to 16), same as black
    assert calculate_psnr(pred, gt, test_y_channel=True, channel_order='rgb', round_y=True) == math.inf
    assert calculate_psnr(pred, gt, test_y_channel=True, channel_order='rgb') == pytest.approx(
        10 * math.log10(255 ** 2 / (65.481 / 255) ** 2), abs=1e-9)


def test_crop_border_removes_exactly_that_many_pixels():
    gt = _rand_image(20, 24)
    pred = gt.copy()
    pred[:2] += 50
    pred[:, -2:] += 50  # differences only in a 2-pixel ring (top and right)
    assert calculate_psnr(pred, gt, crop_border=2) == math.inf
    assert calculate_psnr(pred, gt, crop_border=1) < 100
    inner = gt.copy()
    inner[5, 5] += 30  # one pixel (all three channels) inside the crop
    mse = 3 * 30 ** 2 / ((20 - 6) * (24 - 6) * 3)
    assert calculate_psnr(inner, gt, crop_border=3) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)


def test_crop_border_that_leaves_nothing_is_an_error():
    with pytest.raises(ValueError, match='crop_border=10'):
        calculate_psnr(_rand_image(20, 20), _rand_image(20, 20), crop_border=10)


def test_chw_input_order_matches_hwc():
    a, b = _rand_image(seed=1), _rand_image(seed=2)
    assert calculate_ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1), input_order='CHW') == calculate_ssim(a, b)


def test_uint8_profiles_round_and_float_profiles_do_not():
    gt = np.minimum(_rand_image(16, 16), 250)  # away from 255, where +0.4 would be clipped
    pred = gt + 0.4  # rounds back to gt on the 0..255 scale
    t_pred, t_gt = _to_tensor(pred), _to_tensor(gt)
    assert compute_metrics(t_pred, t_gt, 'basicsr_rgb')['psnr'] == math.inf
    expected = 10 * math.log10(255 ** 2 / 0.4 ** 2)
    assert compute_metrics(t_pred, t_gt, {'psnr': {'type': 'calculate_psnr_float'}})['psnr'] == pytest.approx(
        expected, abs=1e-3)  # float32 tensors: 0.4/255 is stored to ~1e-7


def test_values_outside_unit_range_are_clipped():
    gt = torch.rand(3, 16, 16)
    assert compute_metrics(gt + 2.0, torch.ones_like(gt), 'basicsr_rgb')['psnr'] == math.inf


def test_batch_result_is_mean_of_per_image_values():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 3, 24, 24, generator=gen)
    pred = (gt + 0.05 * torch.randn(3, 3, 24, 24, generator=gen)).clamp(0, 1)
    rows = compute_metrics_per_image(pred, gt, 'basicsr_rgb')
    mean = compute_metrics(pred, gt, 'basicsr_rgb')
    assert len(rows) == 3
    assert mean['psnr'] == pytest.approx(np.mean([r['psnr'] for r in rows]), abs=1e-12)
    assert rows[1] == compute_metrics(pred[1], gt[1], 'basicsr_rgb')


def test_numpy_uint8_rgb_and_tensor_inputs_agree():
    gt, pred = _rand_image(seed=3), _rand_image(seed=4)
    from_numpy = compute_metrics(pred.astype(np.uint8), gt.astype(np.uint8), 'basicsr_y')
    from_tensor = compute_metrics(_to_tensor(pred), _to_tensor(gt), 'basicsr_y')
    assert from_numpy == pytest.approx(from_tensor, abs=1e-12)


def test_every_profile_has_name_description_and_runs():
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(3, 24, 24, generator=gen)
    pred = (gt + 0.1 * torch.randn(3, 24, 24, generator=gen)).clamp(0, 1)
    for name, profile in PROFILES.items():
        assert profile.name == name and profile.description
        result = compute_metrics(pred, gt, name)
        assert set(result) == set(profile.metrics) and 'psnr' in result
        assert all(math.isfinite(v) for v in result.values())


def test_metric_types_are_discoverable_by_name():
    for name in ('calculate_psnr', 'calculate_ssim', 'calculate_ssim_volumetric', 'calculate_psnr_float',
                 'calculate_ssim_float'):
        assert name in METRIC_REGISTRY.keys()


def test_profile_name_for_results_files():
    assert profile_name('restormer') == 'restormer'
    opts = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True, 'better': 'higher'},
            'ssim': {'type': 'calculate_ssim', 'test_y_channel': True}}
    assert profile_name(opts) == 'basicsr_y'
    assert profile_name({'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}) == 'custom'


def test_unknown_profile_error_lists_known_names():
    with pytest.raises(KeyError) as err:
        get_profile('basicsr')
    assert 'basicsr_rgb' in str(err.value) and 'skimage_float' in str(err.value)


def test_basicsr_val_metrics_block_is_accepted_and_typos_are_named():
    gt = torch.rand(3, 16, 16)
    opts = {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True, 'better': 'higher'}}
    assert compute_metrics(gt, gt, opts) == {'psnr': math.inf}
    with pytest.raises(TypeError, match="crop_boder.*did you mean 'crop_border'"):
        compute_metrics(gt, gt, {'psnr': {'type': 'calculate_psnr', 'crop_boder': 2}})


def test_shape_mismatch_and_tiny_ssim_inputs_are_errors():
    with pytest.raises(ValueError, match='differ in shape'):
        compute_metrics(torch.rand(3, 16, 16), torch.rand(3, 16, 17), 'basicsr_rgb')
    with pytest.raises(ValueError, match='at least 11x11'):
        calculate_ssim(_rand_image(10, 30), _rand_image(10, 30))


def test_build_metric_binds_keyword_arguments():
    psnr_y = build_metric({'type': 'calculate_psnr', 'crop_border': 1, 'test_y_channel': True})
    a, b = _rand_image(seed=5), _rand_image(seed=6)
    assert psnr_y(a, b) == calculate_psnr(a, b, crop_border=1, test_y_channel=True)
    with pytest.raises(TypeError, match='accepted'):
        build_metric({'type': 'calculate_ssim', 'window': 7})


# ------------------------------------------------------------------ against independent implementations
def test_basicsr_ssim_equals_skimage_wang_settings_on_random_images():
    a, b = _rand_image(seed=7), _rand_image(seed=8)
    assert calculate_ssim(a, b) == pytest.approx(sk_ssim(a, b, data_range=255, channel_axis=-1, **SK_WANG),
                                                 abs=1e-10)


def test_volumetric_ssim_equals_scipy_3d_gaussian_replicate():
    a, b = _rand_image(seed=9), _rand_image(seed=10)
    assert calculate_ssim_volumetric(a, b) == pytest.approx(_volumetric_ssim_scipy(a, b), abs=1e-10)
    y_a, y_b = _y_bt601(a, 255.0), _y_bt601(b, 255.0)
    assert calculate_ssim_volumetric(a, b, test_y_channel=True, channel_order='rgb') == pytest.approx(
        _volumetric_ssim_scipy(y_a, y_b), abs=1e-10)  # 2-D replicate SSIM, no valid crop


def test_column_quirk_equals_skimage_channel_axis_on_2d_image():
    a, b = _rand_image(seed=11, c=1)[..., 0] / 255, _rand_image(seed=12, c=1)[..., 0] / 255
    quirk = calculate_ssim_float(a, b, y_as_columns=True)
    assert quirk == pytest.approx(sk_ssim(a, b, data_range=1, channel_axis=-1), abs=1e-10)
    assert quirk != pytest.approx(sk_ssim(a, b, data_range=1), abs=1e-3)


# ------------------------------------------------------------------ golden values on real images
def _cbsd68_noisy_pair():
    """CBSD68 101085 (BGR as cv2 reads it) and a sigma-25 noisy copy (default_rng(0)), rounded to uint8."""
    path = DATA / 'CBSD68' / '101085.png'
    if not path.is_file():
        pytest.skip(f'shared data not found: {path}')
    gt = cv2.imread(str(path))
    noisy = np.clip(gt / 255.0 + np.random.default_rng(0).normal(0, 25 / 255, gt.shape), 0, 1)
    return gt, np.round(noisy * 255).astype(np.uint8), noisy


def _set5_bicubic_pair():
    """Set5 butterfly HR and its x4 LR upsampled with cv2 bicubic (both BGR uint8)."""
    hr_path, lr_path = DATA / 'Set5' / 'HR' / 'butterfly.png', DATA / 'Set5' / 'LR_bicubic' / 'X4' / 'butterflyx4.png'
    if not (hr_path.is_file() and lr_path.is_file()):
        pytest.skip(f'shared data not found: {hr_path}')
    hr, lr = cv2.imread(str(hr_path)), cv2.imread(str(lr_path))
    up = cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    return hr[:up.shape[0], :up.shape[1]], up


def _bgr_to_tensor(img: np.ndarray) -> torch.Tensor:
    return _to_tensor(img[..., ::-1].astype(np.float64))


def test_cbsd68_basicsr_rgb_matches_skimage_and_upstream():
    gt, n8, _ = _cbsd68_noisy_pair()
    result = compute_metrics(_bgr_to_tensor(n8), _bgr_to_tensor(gt), 'basicsr_rgb')
    g, n = gt.astype(np.float64), n8.astype(np.float64)
    assert result['psnr'] == pytest.approx(sk_psnr(g, n, data_range=255), abs=1e-10)
    assert result['ssim'] == pytest.approx(sk_ssim(g, n, data_range=255, channel_axis=-1, **SK_WANG), abs=1e-10)
    assert result['psnr'] == pytest.approx(20.530640942756314, abs=1e-9)  # upstream
    assert result['ssim'] == pytest.approx(0.5338578181862224, abs=1e-9)  # upstream


def test_cbsd68_basicsr_y_matches_skimage_on_bt601_y():
    gt, n8, _ = _cbsd68_noisy_pair()
    result = compute_metrics(_bgr_to_tensor(n8), _bgr_to_tensor(gt), 'basicsr_y')
    y_g, y_n = _y_bt601(gt[..., ::-1].astype(np.float64), 255.0), _y_bt601(n8[..., ::-1].astype(np.float64), 255.0)
    assert result['psnr'] == pytest.approx(sk_psnr(y_g, y_n, data_range=255), abs=1e-9)
    assert result['ssim'] == pytest.approx(sk_ssim(y_g, y_n, data_range=255, **SK_WANG), abs=1e-9)
    # upstream computes Y in float32: 25.300436301 dB, 0.7050614331; we stay in float64
    assert result['psnr'] == pytest.approx(25.300436301203938, abs=1e-5)
    assert result['ssim'] == pytest.approx(0.705061433054423, abs=1e-7)


def test_cbsd68_restormer_volumetric_ssim_matches_scipy_and_fork():
    gt, n8, _ = _cbsd68_noisy_pair()
    result = compute_metrics(_bgr_to_tensor(n8), _bgr_to_tensor(gt), 'restormer')
    assert result['ssim'] == pytest.approx(_volumetric_ssim_scipy(n8.astype(float), gt.astype(float)), abs=1e-10)
    # the fork runs in float32 and gives 0.5825292 (0.5825587 when its code is run in float64)
    assert result['ssim'] == pytest.approx(0.5825586731526694, abs=1e-9)
    assert abs(result['ssim'] - 0.5825292468070984) < 1e-4
    # the volumetric SSIM is not comparable with per-channel BasicSR SSIM (0.5339 on the same pair)
    assert result['ssim'] - compute_metrics(_bgr_to_tensor(n8), _bgr_to_tensor(gt), 'basicsr_rgb')['ssim'] > 0.04


def test_cbsd68_skimage_float_profiles_match_skimage():
    gt, _, noisy = _cbsd68_noisy_pair()
    g, n = gt[..., ::-1] / 255.0, noisy[..., ::-1]
    tensors = (torch.from_numpy(n.transpose(2, 0, 1).copy()), torch.from_numpy(g.transpose(2, 0, 1).copy()))
    result = compute_metrics(*tensors, 'skimage_float')
    assert result['psnr'] == pytest.approx(sk_psnr(g, n, data_range=1), abs=1e-10)
    assert result['ssim'] == pytest.approx(sk_ssim(g, n, data_range=1, channel_axis=-1), abs=1e-10)
    y_g, y_n = _y_bt601(g, 1.0), _y_bt601(n, 1.0)
    result_y = compute_metrics(*tensors, 'skimage_float_y')
    assert result_y['psnr'] == pytest.approx(sk_psnr(y_g, y_n, data_range=1), abs=1e-10)
    assert result_y['ssim'] == pytest.approx(sk_ssim(y_g, y_n, data_range=1), abs=1e-10)
    dsrir = compute_metrics(*tensors, 'dsrir_y')
    assert dsrir['psnr'] == result_y['psnr']
    assert dsrir['ssim'] == pytest.approx(sk_ssim(y_g, y_n, data_range=1, channel_axis=-1), abs=1e-10)
    # rounding to uint8 moves PSNR by a few 1e-4 dB on this noisy image; the profiles are not interchangeable
    assert abs(result['psnr'] - compute_metrics(*tensors, 'basicsr_rgb')['psnr']) < 0.01


def test_set5_bicubic_x4_y_channel_with_border_crop():
    hr, up = _set5_bicubic_pair()
    opts = {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
            'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True}}
    result = compute_metrics(_bgr_to_tensor(up), _bgr_to_tensor(hr), opts)
    y_hr = _y_bt601(hr[4:-4, 4:-4, ::-1].astype(np.float64), 255.0)
    y_up = _y_bt601(up[4:-4, 4:-4, ::-1].astype(np.float64), 255.0)
    assert result['psnr'] == pytest.approx(sk_psnr(y_hr, y_up, data_range=255), abs=1e-9)
    assert result['ssim'] == pytest.approx(sk_ssim(y_hr, y_up, data_range=255, **SK_WANG), abs=1e-9)
    assert result['psnr'] == pytest.approx(22.31991522931569, abs=1e-5)  # upstream (float32 Y)
    assert result['ssim'] == pytest.approx(0.7378535779514895, abs=1e-7)  # upstream
    rgb = compute_metrics(_bgr_to_tensor(up), _bgr_to_tensor(hr), 'basicsr_rgb')
    assert rgb['psnr'] == pytest.approx(21.108102648802365, abs=1e-9)  # upstream
    assert rgb['ssim'] == pytest.approx(0.7002709327694876, abs=1e-9)  # upstream


def test_rain100h_matlab_y_matches_skimage_on_rounded_y():
    names = sorted((DATA / 'Rain100H' / 'input').glob('*.png')) if (DATA / 'Rain100H').is_dir() else []
    if not names:
        pytest.skip(f"shared data not found: {DATA / 'Rain100H'}")
    rainy = cv2.imread(str(names[0]))
    clean = cv2.imread(str(DATA / 'Rain100H' / 'target' / names[0].name))
    result = compute_metrics(_bgr_to_tensor(rainy), _bgr_to_tensor(clean), 'matlab_y')
    y_r = np.floor(_y_bt601(rainy[..., ::-1].astype(np.float64), 255.0) + 0.5)
    y_c = np.floor(_y_bt601(clean[..., ::-1].astype(np.float64), 255.0) + 0.5)
    assert result['psnr'] == pytest.approx(sk_psnr(y_c, y_r, data_range=255), abs=1e-9)
    assert result['ssim'] == pytest.approx(sk_ssim(y_c, y_r, data_range=255, **SK_WANG), abs=1e-9)
    # rounding Y moves the numbers a little: same pair under BasicSR's unrounded Y
    unrounded = compute_metrics(_bgr_to_tensor(rainy), _bgr_to_tensor(clean), 'basicsr_y')
    assert 0 < abs(result['psnr'] - unrounded['psnr']) < 0.05
