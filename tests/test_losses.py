"""Losses: hand-computed values on tiny tensors, reductions, weights, and the VGG19 weight file handling.

Golden numbers marked 'official' come from running MPRNet's ``Deblurring/losses.py`` (swz30/MPRNet) and
DSRIR's ``losses/loss.py`` (xfwang23/DSRIR, torchvision's VGG19 replaced by this project's VGG19 with the
same random weights) on exactly the tensors built here.
"""
import math

import numpy as np
import pytest
import torch

from basicsr.losses import build_loss
from basicsr.losses.frequency_loss import laplacian_band
from basicsr.losses.vgg import VGG19_LAYERS, VGG19Features, read_vgg19_state_dict


def _pair(shape=(2, 3, 32, 32), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g), torch.rand(*shape, generator=g)


def _official_inputs():
    """The tensors the official losses were run on (seed 1): pred, target, stage 2, stage 1, input, log-var."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    s2, s1, lq = (torch.rand(2, 3, 32, 32, generator=g) for _ in range(3))
    var = torch.randn(2, 3, 32, 32, generator=g) * 0.3
    return x, y, s2, s1, lq, var


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """A torchvision-layout VGG19 file with random weights (seed 0, N(0, 0.05)) plus classifier keys."""
    vgg = VGG19Features(load_weights=False)
    torch.manual_seed(0)
    for p in vgg.parameters():
        p.data.normal_(0, 0.05)
    state = dict(vgg.state_dict())
    state['classifier.0.weight'] = torch.zeros(4, 4)  # torchvision files carry the classifier; it is ignored
    path = tmp_path_factory.mktemp('vgg') / 'vgg19-random.pth'
    torch.save(state, path)
    return path


# ------------------------------------------------------------------ pixel losses
def test_l1_mse_charbonnier_hand_values():
    pred = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    target = torch.tensor([[[[0.5, 0.5], [0.0, 0.0]]]])
    assert build_loss({'type': 'L1Loss'})(pred, target).item() == pytest.approx((0.5 + 0 + 1 + 0.25) / 4)
    assert build_loss({'type': 'MSELoss'})(pred, target).item() == pytest.approx((0.25 + 0 + 1 + 0.0625) / 4)
    eps = 1e-3
    expected = np.mean([math.sqrt(d * d + eps * eps) for d in (0.5, 0.0, 1.0, 0.25)])
    assert build_loss({'type': 'CharbonnierLoss', 'eps': eps})(pred, target).item() == pytest.approx(expected)


def test_charbonnier_of_equal_images_is_eps():
    x, _ = _pair()
    assert build_loss({'type': 'CharbonnierLoss', 'eps': 0.01})(x, x).item() == pytest.approx(0.01)


@pytest.mark.parametrize('loss_type', ['L1Loss', 'MSELoss', 'CharbonnierLoss', 'EdgeLoss'])
def test_reductions_and_loss_weight(loss_type):
    x, y = _pair((2, 3, 16, 16))
    none = build_loss({'type': loss_type, 'reduction': 'none'})(x, y)
    assert none.shape == x.shape
    assert build_loss({'type': loss_type, 'reduction': 'sum'})(x, y).item() == pytest.approx(none.sum().item(),
                                                                                          rel=1e-5)
    mean = build_loss({'type': loss_type})(x, y)
    assert mean.item() == pytest.approx(none.mean().item(), rel=1e-6)
    assert build_loss({'type': loss_type, 'loss_weight': 0.05})(x, y).item() == pytest.approx(
        0.05 * mean.item(), rel=1e-6)


def test_weighted_mean_is_the_mean_over_the_weighted_region():
    x, y = _pair((1, 3, 4, 4))
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    weighted = build_loss({'type': 'L1Loss'})(x, y, weight=mask)
    assert weighted.item() == pytest.approx((x - y).abs()[..., :2, :].mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match='does not broadcast'):
        build_loss({'type': 'L1Loss'})(x, y, weight=torch.ones(1, 2, 4, 4))


def test_bad_reduction_and_shape_mismatch_are_errors():
    with pytest.raises(ValueError, match="reduction must be one of none, mean, sum; got 'avg'"):
        build_loss({'type': 'L1Loss', 'reduction': 'avg'})
    with pytest.raises(ValueError, match='differ in shape'):
        build_loss({'type': 'MSELoss'})(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(TypeError, match="did you mean 'loss_weight'"):
        build_loss({'type': 'L1Loss', 'loss_weigth': 2})


def test_psnr_loss_is_minus_per_image_psnr():
    target = torch.zeros(2, 3, 4, 4)
    pred = torch.cat([torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.01)])
    per_image = torch.tensor([10 * math.log10(0.01 + 1e-8), 10 * math.log10(1e-4 + 1e-8)])
    loss = build_loss({'type': 'PSNRLoss', 'reduction': 'none'})
    assert torch.allclose(loss(pred, target), per_image, atol=1e-4)
    assert build_loss({'type': 'PSNRLoss'})(pred, target).item() == pytest.approx(per_image.mean().item(), abs=1e-4)
    assert build_loss({'type': 'PSNRLoss', 'reduction': 'sum', 'loss_weight': 0.5})(pred, target).item() == \
        pytest.approx(0.5 * per_image.sum().item(), abs=1e-4)


def test_psnr_loss_on_y_uses_bt601_weights():
    target = torch.zeros(1, 3, 2, 2)
    pred = torch.zeros(1, 3, 2, 2)
    pred[:, 0] = 1.0  # pure red: Y differs by 65.481 / 255
    expected = 10 * math.log10((65.481 / 255) ** 2 + 1e-8)
    assert build_loss({'type': 'PSNRLoss', 'to_y': True})(pred, target).item() == pytest.approx(expected, abs=1e-4)


def test_uncertainty_loss_hand_values():
    x, y = _pair((1, 3, 8, 8))
    l1 = (x - y).abs().mean().item()
    loss = build_loss({'type': 'UncertaintyLoss'})
    assert loss(x, y, log_var=torch.zeros(1, 1, 8, 8)).item() == pytest.approx(l1, rel=1e-6)
    c = 0.7
    assert loss(x, y, log_var=torch.full((1, 3, 8, 8), c)).item() == pytest.approx(math.exp(-c) * l1 + 2 * c,
                                                                                   rel=1e-6)
    with pytest.raises(ValueError, match='needs log_var'):
        loss(x, y)


# ------------------------------------------------------------------ official values
def test_pixel_losses_match_official_code():
    x, y, _, _, _, var = _official_inputs()
    assert build_loss({'type': 'CharbonnierLoss'})(x, y).item() == pytest.approx(0.3307264745235443, abs=1e-7)
    assert build_loss({'type': 'EdgeLoss'})(x, y).item() == pytest.approx(0.3071843683719635, abs=1e-7)
    assert build_loss({'type': 'PSNRLoss'})(x, y).item() == pytest.approx(-7.817942142486572, abs=1e-5)
    assert build_loss({'type': 'PSNRLoss', 'to_y': True})(x, y).item() == pytest.approx(-12.678661346435547,
                                                                                         abs=1e-5)
    assert build_loss({'type': 'UncertaintyLoss'})(x, y, log_var=var).item() == pytest.approx(0.3519650995731354,
                                                                                              abs=1e-6)


# ------------------------------------------------------------------ edge and FFT losses
def _laplacian_direct(img: np.ndarray) -> np.ndarray:
    """Laplacian band of a 2-D image written out with loops: 5x5 kernel, replicate padding, zero-insert x4."""
    taps = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
    k = np.outer(taps, taps)

    def smooth(x):
        p = np.pad(x, 2, mode='edge')
        return np.array([[np.sum(k * p[i:i + 5, j:j + 5]) for j in range(x.shape[1])] for i in range(x.shape[0])])

    g = smooth(img)
    up = np.zeros_like(g)
    up[::2, ::2] = 4 * g[::2, ::2]
    return img - smooth(up)


def test_edge_loss_matches_direct_laplacian_formula():
    x, y = _pair((1, 1, 9, 10), seed=3)  # odd height on purpose
    lap_x, lap_y = _laplacian_direct(x[0, 0].double().numpy()), _laplacian_direct(y[0, 0].double().numpy())
    taps = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05], dtype=torch.float64)
    ours = laplacian_band(x.double(), torch.outer(taps, taps))
    np.testing.assert_allclose(ours[0, 0].numpy(), lap_x, atol=1e-12)
    expected = np.mean(np.sqrt((lap_x - lap_y) ** 2 + 1e-6))
    assert build_loss({'type': 'EdgeLoss'})(x.double(), y.double()).item() == pytest.approx(expected, rel=1e-10)


def test_edge_loss_is_zero_on_constant_images():
    kernel = torch.outer(*(2 * [torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05], dtype=torch.float64)]))
    band = laplacian_band(torch.full((1, 3, 12, 12), 0.6, dtype=torch.float64), kernel)
    # the band of a constant vanishes away from the borders (replicated zero-inserted rows shift the edges)
    assert band[..., 2:-2, 2:-2].abs().max().item() < 1e-12
    x = torch.full((1, 3, 12, 12), 0.3)
    assert build_loss({'type': 'EdgeLoss', 'eps': 1e-3})(x, x).item() == pytest.approx(1e-3)  # Charbonnier floor


def test_fft_loss_of_a_single_pixel_difference():
    target = torch.zeros(1, 1, 8, 8)
    pred = target.clone()
    pred[0, 0, 0, 0] = 0.8  # the spectrum of a delta at the origin is 0.8 everywhere, imaginary part 0
    assert build_loss({'type': 'FFTLoss'})(pred, target).item() == pytest.approx(0.8 / 2, rel=1e-6)
    none = build_loss({'type': 'FFTLoss', 'reduction': 'none'})(pred, target)
    assert none.shape == (1, 1, 8, 8, 2)
    assert build_loss({'type': 'FFTLoss', 'reduction': 'sum', 'loss_weight': 0.1})(pred, target).item() == \
        pytest.approx(0.1 * 0.8 * 64, rel=1e-6)


# ------------------------------------------------------------------ VGG19 weights
def test_vgg_layout_has_torchvision_names():
    names = list(VGG19Features(load_weights=False).state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert names == [f'features.{i}.{p}' for i in convs for p in ('weight', 'bias')]
    assert [VGG19_LAYERS.index(n) for n in ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')] == \
        [1, 6, 11, 20, 29]  # DSRIR's slice ends features[0:2], [2:7], [7:12], [12:21], [21:30]


def test_vgg_state_dict_round_trip_loads_strictly(vgg_file):
    saved = torch.load(vgg_file, weights_only=True)
    loaded = VGG19Features(vgg_file)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[key])
    assert not any(p.requires_grad for p in loaded.parameters())
    assert set(read_vgg19_state_dict(vgg_file)) == set(loaded.state_dict())


def test_missing_vgg_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='vgg19-dcbb9e9d.pth.*vgg_weights_path'):
        build_loss({'type': 'PerceptualLoss', 'vgg_weights_path': str(tmp_path / 'nope.pth')})
    with pytest.raises(FileNotFoundError, match='no vgg_weights_path was given'):
        build_loss({'type': 'PositiveContrastLoss'})


def test_wrong_shape_vgg_file_names_key_and_shapes(vgg_file, tmp_path):
    state = torch.load(vgg_file, weights_only=True)
    state['features.10.weight'] = torch.zeros(128, 128, 3, 3)
    bad = tmp_path / 'bad.pth'
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"'features.10.weight' has shape \(128, 128, 3, 3\), VGG19 expects "
                                         r'\(256, 128, 3, 3\)'):
        build_loss({'type': 'PerceptualLoss', 'vgg_weights_path': str(bad)})
    del state['features.10.weight']
    torch.save(state, bad)
    with pytest.raises(ValueError, match="'features.10.weight' is missing"):
        VGG19Features(bad)


def test_perceptual_loss_values_and_gradients(vgg_file):
    loss = build_loss({'type': 'PerceptualLoss', 'vgg_weights_path': str(vgg_file),
                       'layer_weights': {'relu1_1': 0.5, 'conv2_2': 1.0}})
    x, y = _pair((2, 3, 16, 16))
    assert loss(y, y)[0].item() == 0.0
    x.requires_grad_(True)
    value, style = loss(x, y)  # BasicSR's (perceptual, style) pair; no style weight -> None
    assert style is None
    feats_x = loss.vgg(x, ['relu1_1', 'conv2_2'])
    feats_y = loss.vgg(y, ['relu1_1', 'conv2_2'])
    expected = 0.5 * (feats_x['relu1_1'] - feats_y['relu1_1']).abs().mean() + \
        (feats_x['conv2_2'] - feats_y['conv2_2']).abs().mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    per_image = build_loss({'type': 'PerceptualLoss', 'vgg_weights_path': str(vgg_file), 'reduction': 'none',
                            'layer_weights': {'relu1_1': 0.5, 'conv2_2': 1.0}})(x.detach(), y)[0]
    assert per_image.shape == (2,) and per_image.mean().item() == pytest.approx(value.item(), rel=1e-5)
    with pytest.raises(ValueError, match="unknown VGG19 layer.*'relu9_9'"):
        build_loss({'type': 'PerceptualLoss', 'vgg_weights_path': str(vgg_file), 'layer_weights': {'relu9_9': 1}})


def test_positive_contrast_loss_matches_official(vgg_file):
    x, y, s2, s1, lq = (t[:1, :, :16, :16].clone() for t in _official_inputs()[:5])
    pocl = build_loss({'type': 'PositiveContrastLoss', 'vgg_weights_path': str(vgg_file)})
    s2.requires_grad_(True)
    value = pocl(x, y, positives=[s2, s1], negative=lq)
    assert value.item() == pytest.approx(1.7960375547409058, rel=1e-6)  # official
    value.backward()
    assert s2.grad is not None and s2.grad.abs().sum() > 0  # earlier stages are pulled too
    per_image = build_loss({'type': 'PositiveContrastLoss', 'vgg_weights_path': str(vgg_file),
                            'reduction': 'none'})(x, y, positives=[s2.detach(), s1], negative=lq)
    assert per_image.shape == (1,) and per_image.item() == pytest.approx(value.item(), rel=1e-6)


def test_positive_contrast_loss_argument_errors(vgg_file):
    pocl = build_loss({'type': 'PositiveContrastLoss', 'vgg_weights_path': str(vgg_file)})
    x, y = _pair((1, 3, 16, 16))
    with pytest.raises(ValueError, match='needs negative='):
        pocl(x, y, positives=[x, x])
    with pytest.raises(ValueError, match='positive_weights has 3 entries.*1 extra positives'):
        pocl(x, y, positives=[x], negative=y)
