"""BasicSR's public helpers at their module paths, checked against values from BasicSR's own definitions.

The expected numbers were computed outside the project by running XPixelGroup/BasicSR (master, 1.4.2) functions
with numpy/torch on the inputs of :func:`pattern`: ``matlab_functions.imresize``, ``color_util``, ``img_util``,
``transforms`` (seeded with ``random.seed``), ``arch_util`` (seeded with ``torch.manual_seed``),
``loss_util.weight_reduce_loss`` and ``psnr_ssim``. float32 results are compared to 1e-6 (their sums of a few
products round differently by < 2e-7); integer results exactly.
"""
import random

import numpy as np
import pytest
import torch

from basicsr.archs.arch_util import (ResidualBlockNoBN, Upsample, default_init_weights, flow_warp, make_layer,
                                     pixel_unshuffle, resize_flow, to_2tuple, trunc_normal_)
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss
from basicsr.metrics import calculate_metric
from basicsr.utils import (FileClient, bgr2ycbcr, crop_border, imfrombytes, img2tensor, imwrite, rgb2ycbcr,
                           rgb2ycbcr_pt, scandir, tensor2img, ycbcr2bgr, ycbcr2rgb)
from basicsr.utils.matlab_functions import imresize

F32_TOL = 1e-6


def pattern(h: int, w: int, c: int = 3, mult: int = 37, mod: int = 251) -> np.ndarray:
    """Deterministic float32 image in [0, 1] (the inputs the expected values were computed on)."""
    return ((np.arange(h * w * c).reshape(h, w, c) * mult) % mod / (mod - 1)).astype(np.float32)


# ------------------------------------------------------------------------------------------ matlab_functions
IMRESIZE_DOWN = [[[0.3145267, 0.3695813, 0.5352297], [0.5379973, 0.4200146, 0.4866509], [0.7521082, 0.6021989, 0.2501293]],
                 [[0.5088171, 0.5095629, 0.5980147], [0.5478524, 0.4948102, 0.4225265], [0.4586614, 0.4129882, 0.55198]],
                 [[0.4355313, 0.5452777, 0.4390759], [0.5903692, 0.4621987, 0.4274944], [0.6350429, 0.8079222, 0.5159062]]]
IMRESIZE_UP = [[-0.041625, 0.0023125, 0.0901875, 0.134125], [0.0393125, 0.08325, 0.171125, 0.2150625],
               [0.2011875, 0.245125, 0.333, 0.3769375], [0.3630625, 0.407, 0.494875, 0.5388125],
               [0.5249374, 0.568875, 0.65675, 0.7006876], [0.605875, 0.6498124, 0.7376874, 0.7816249]]
IMRESIZE_NOAA = [[[0.096, 0.244, 0.392], [0.424, 0.572, 0.72]], [[0.056, 0.204, 0.352], [0.384, 0.532, 0.68]],
                 [[0.364, 0.512, 0.66], [0.692, 0.84, 0.988]]]


def test_imresize_matches_basicsr_matlab_bicubic():
    down = imresize(pattern(6, 5), 0.5)
    assert down.dtype == np.float32 and down.shape == (3, 3, 3)
    np.testing.assert_allclose(down, IMRESIZE_DOWN, atol=F32_TOL, rtol=0)
    up = imresize(pattern(3, 2, 1)[:, :, 0], 2)  # 2-D in, 2-D out; bicubic overshoots below 0
    np.testing.assert_allclose(up, IMRESIZE_UP, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(imresize(pattern(7, 6), 1 / 3, antialiasing=False), IMRESIZE_NOAA, atol=F32_TOL, rtol=0)
    chw = imresize(torch.from_numpy(pattern(6, 5)).permute(2, 0, 1), 0.5)  # tensors stay (C, H, W)
    np.testing.assert_allclose(chw.permute(1, 2, 0).numpy(), IMRESIZE_DOWN, atol=F32_TOL, rtol=0)


# ------------------------------------------------------------------------------------------ color_util
U8 = np.array([[[0, 38, 75], [113, 151, 189], [226, 8, 46]], [[84, 121, 159], [197, 235, 16], [54, 92, 130]]], np.uint8)
RGB2YCBCR_U8 = [[[42, 150, 109], [140, 150, 109], [83, 112, 221]], [[114, 150, 109], [187, 37, 127], [89, 150, 109]]]
BGR2Y_U8 = [[54, 152, 54], [126, 158, 101]]
YCBCR2BGR_U8 = [[[75, 37, 0], [189, 151, 114], [46, 9, 226]], [[158, 121, 84], [16, 236, 198], [129, 92, 55]]]
RGB2YCBCR_F32 = [[[0.1663364, 0.5889018, 0.4263856], [0.547654, 0.5889018, 0.4263856], [0.3245282, 0.4400854, 0.8673581]],
                 [[0.4480306, 0.5889018, 0.4263856], [0.7310506, 0.1479292, 0.4980988], [0.348407, 0.5889018, 0.4263856]]]
YCBCR2RGB_F32 = [[[2.4e-06, 0.1480029, 0.295999], [0.4440024, 0.592003, 0.739999], [0.8880025, 0.0320029, 0.1799978]],
                 [[0.3280024, 0.476003, 0.623999], [0.7720025, 0.9200026, 0.0639994], [0.2120024, 0.360003, 0.507999]]]
RGB2Y_PT = [0.1663364, 0.547654, 0.3245283, 0.4480305, 0.7310506, 0.348407]


def test_colour_conversions_match_basicsr():
    assert (U8 == (pattern(2, 3) * 255).round()).all()
    np.testing.assert_array_equal(rgb2ycbcr(U8), RGB2YCBCR_U8)
    y = bgr2ycbcr(U8, y_only=True)
    assert y.dtype == np.uint8 and y.shape == (2, 3)
    np.testing.assert_array_equal(y, BGR2Y_U8)
    np.testing.assert_array_equal(ycbcr2bgr(rgb2ycbcr(U8)), YCBCR2BGR_U8)
    ycc = rgb2ycbcr(pattern(2, 3))
    assert ycc.dtype == np.float32
    np.testing.assert_allclose(ycc, RGB2YCBCR_F32, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(ycbcr2rgb(ycc), YCBCR2RGB_F32, atol=F32_TOL, rtol=0)
    y_pt = rgb2ycbcr_pt(torch.from_numpy(pattern(2, 3)).permute(2, 0, 1)[None], y_only=True)
    assert y_pt.shape == (1, 1, 2, 3)
    np.testing.assert_allclose(y_pt.flatten().numpy(), RGB2Y_PT, atol=F32_TOL, rtol=0)
    with pytest.raises(TypeError, match='uint8'):
        rgb2ycbcr(U8.astype(np.int32))


# ------------------------------------------------------------------------------------------ img_util (BGR)
T2I_U8 = [[[55, 2, 0], [213, 160, 108], [13, 0, 255]], [[172, 119, 66], [0, 255, 225], [130, 78, 25]]]
T2I_GRAY = [[0, 108, 255], [66, 225, 25]]


def test_tensor2img_img2tensor_follow_basicsr_bgr_conventions():
    def tensor() -> torch.Tensor:
        return torch.from_numpy(pattern(2, 3) * 1.4 - 0.2).permute(2, 0, 1)

    t = tensor()
    np.testing.assert_array_equal(tensor2img(t), T2I_U8)  # clamped, x255 rounded, RGB -> BGR
    assert torch.equal(t, tensor())  # the input is not clamped in place (BasicSR's is)
    f32 = tensor2img([t[None]], rgb2bgr=False, out_type=np.float32, min_max=(-0.2, 1.2))
    np.testing.assert_allclose(f32, pattern(2, 3), atol=F32_TOL, rtol=0)
    np.testing.assert_array_equal(tensor2img(t[:1]), T2I_GRAY)  # one channel -> (H, W)
    assert isinstance(tensor2img([t, t]), list)
    back = img2tensor(pattern(2, 2).astype(np.float64))  # BGR float64 -> RGB float32 (C, H, W)
    assert back.dtype == torch.float32 and back.shape == (3, 2, 2)
    np.testing.assert_allclose(back[:, 0, 0].numpy(), [0.296, 0.148, 0.0], atol=F32_TOL)
    a, b = img2tensor([U8, U8], bgr2rgb=False, float32=False)
    assert a.dtype == torch.uint8 and torch.equal(a.permute(1, 2, 0), torch.from_numpy(U8))
    assert crop_border([np.zeros((6, 7, 3))], 2)[0].shape == (2, 3, 3)


def test_imwrite_imfrombytes_file_client_scandir_round_trip(tmp_path):
    img = (pattern(5, 4) * 255).round().astype(np.uint8)
    assert imwrite(img, str(tmp_path / 'sub' / 'a.png'))  # auto_mkdir
    (tmp_path / '.hidden.png').write_bytes(b'x')
    data = FileClient('disk').get(tmp_path / 'sub' / 'a.png')
    np.testing.assert_array_equal(imfrombytes(data), img)  # BGR in, BGR out
    np.testing.assert_allclose(imfrombytes(data, float32=True), img / 255.0, atol=1e-7)
    assert imfrombytes(data, flag='grayscale').shape == (5, 4)
    assert sorted(scandir(str(tmp_path), suffix='.png', recursive=True)) == ['sub/a.png']
    assert list(scandir(str(tmp_path), suffix='.png')) == []  # not recursive: hidden and folders skipped
    with pytest.raises(ValueError, match='memcached'):
        FileClient('memcached')


# ------------------------------------------------------------------------------------------ transforms
def test_paired_random_crop_and_augment_draw_like_basicsr():
    gt, lq = pattern(8, 8), pattern(4, 4, mult=11)
    random.seed(5)
    g, low = paired_random_crop(gt, lq, 4, 2, 'x')
    assert g.shape == (4, 4, 3) and low.shape == (2, 2, 3)
    np.testing.assert_allclose(low[0, 0], [0.184, 0.228, 0.272], atol=F32_TOL)
    np.testing.assert_allclose(g[0, 0], [0.036, 0.184, 0.332], atol=F32_TOL)
    random.seed(5)
    gt_t, lq_t = paired_random_crop(torch.from_numpy(gt).permute(2, 0, 1), torch.from_numpy(lq).permute(2, 0, 1), 4, 2)
    assert torch.equal(lq_t.permute(1, 2, 0), torch.from_numpy(low))  # tensors: the same crop on (..., H, W)
    # BasicSR's (hflip, vflip, transpose) draws for seeds 0..3 and the first pixel of the first image
    expected = {0: ((False, False, True), (4, 3, 3), [0.0, 0.148, 0.296]),
                1: ((True, False, False), (3, 4, 3), [0.328, 0.476, 0.624]),
                2: ((False, False, True), (4, 3, 3), [0.0, 0.148, 0.296]),
                3: ((True, False, True), (4, 3, 3), [0.328, 0.476, 0.624])}
    for seed, (status, shape, first) in expected.items():
        random.seed(seed)
        imgs, got = augment([pattern(3, 4), pattern(3, 4, mult=5)], True, True, None, True)  # flows, return_status
        assert got == status and imgs[0].shape == shape
        np.testing.assert_allclose(imgs[0][0, 0], first, atol=F32_TOL)
    random.seed(3)
    flows = [np.stack([np.ones((3, 4)), 2 * np.ones((3, 4))], -1)]
    _, out_flows = augment(pattern(3, 4), True, True, flows)  # BasicSR's positional flows
    np.testing.assert_array_equal(out_flows[0, 0], [2, -1])  # hflip negates dx, transpose swaps


# ------------------------------------------------------------------------------------------ arch_util
def test_arch_util_numerics_match_basicsr():
    x = torch.from_numpy(pattern(5, 6, 2)).permute(2, 0, 1)[None]
    flow = torch.from_numpy(pattern(5, 6, 2, mult=13) - 0.5)[None] * 3
    warped = flow_warp(x, flow)
    np.testing.assert_allclose(warped.flatten()[:12].numpy(),
                               [0.0, 0.0, 0.0931571, 0.4268652, 0.324008, 0.4003348, 0.5833297, 0.3380858, 0.3881624,
                                0.5377716, 0.5897835, 0.2892076], atol=F32_TOL)
    assert abs(float(warped.double().sum()) - 21.011633284389973) < 1e-4
    np.testing.assert_allclose(resize_flow(flow.permute(0, 3, 1, 2), 'ratio', [2, 0.5]).flatten()[:8].numpy(),
                               [-0.672, -0.36, -0.048, -0.438, -0.126, -0.1905, 0.03, 0.342], atol=F32_TOL)
    torch.manual_seed(0)
    t = trunc_normal_(torch.empty(6, 4), std=0.5, a=-0.6, b=0.9)
    np.testing.assert_allclose(t.flatten()[:8].numpy(), [0.0456734, 0.3649756, -0.4386036, -0.3741103, -0.1579073,
                                                         0.1972614, 0.0390918, 0.57798], atol=F32_TOL)
    torch.manual_seed(1)
    block = ResidualBlockNoBN(num_feat=4, res_scale=0.5)
    np.testing.assert_allclose(block.conv1.weight.flatten()[:6].detach().numpy(),
                               [-0.0177501, -0.01018, 0.0157756, 0.0153328, -0.0204879, 0.0209035], atol=F32_TOL)
    assert torch.equal(block.conv1.bias, torch.zeros(4))
    torch.manual_seed(2)
    seq = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Linear(3, 2), torch.nn.BatchNorm2d(3))
    default_init_weights(seq, scale=0.3, bias_fill=0.1, a=0.2, mode='fan_out')  # kwargs go to kaiming_normal_
    np.testing.assert_allclose(seq[0].weight.flatten()[:5].detach().numpy(),
                               [-0.0508704, -0.1177139, -0.0170846, -0.0697084, 0.1293764], atol=F32_TOL)
    np.testing.assert_allclose(seq[1].weight.flatten()[:4].detach().numpy(),
                               [0.3796252, 0.0559599, -0.094742, -0.2807362], atol=F32_TOL)
    assert torch.equal(seq[2].bias.detach(), torch.full((3, ), 0.1))
    assert pixel_unshuffle(torch.arange(32.).view(1, 2, 4, 4), 2)[0, :, 0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]
    layers = make_layer(ResidualBlockNoBN, 3, num_feat=4, pytorch_init=True)
    assert len(layers) == 3 and layers[2].conv2.in_channels == 4
    assert [type(m).__name__ for m in Upsample(4, 2)] == ['Conv2d', 'PixelShuffle'] * 2
    assert to_2tuple(3) == (3, 3) and to_2tuple((1, 2)) == (1, 2)


# ------------------------------------------------------------------------------------------ losses, metrics
def test_basic_losses_and_calculate_metric_match_basicsr():
    a = torch.from_numpy(pattern(4, 5, 3)).permute(2, 0, 1)[None]
    b = torch.from_numpy(pattern(4, 5, 3, mult=7)).permute(2, 0, 1)[None]
    w = torch.from_numpy(pattern(4, 5, 1, mult=3)).permute(2, 0, 1)[None]
    assert abs(float(L1Loss()(a, b, weight=w)) - 0.3111298382282257) < F32_TOL  # weighted mean over C as BasicSR
    assert abs(float(MSELoss()(a, b)) - 0.14624960720539093) < F32_TOL
    assert abs(float(CharbonnierLoss()(a, b)) - 0.30986669659614563) < F32_TOL  # sqrt(d^2 + 1e-12)
    assert abs(float(CharbonnierLoss(eps=1e-6, reduction='sum')(a, b, weight=w)) - 2.1281578540802) < 1e-5
    i1, i2 = (pattern(16, 16) * 255).round(), (pattern(16, 16, mult=41) * 255).round()
    psnr = calculate_metric({'img': i1, 'img2': i2}, {'type': 'calculate_psnr', 'crop_border': 2,
                                                      'test_y_channel': True, 'better': 'higher'})
    assert abs(psnr - 11.953922363406058) < 1e-6  # BasicSR computes Y in float32, here float64
    ssim = calculate_metric({'img': i1, 'img2': i2}, {'type': 'calculate_ssim', 'crop_border': 0})
    assert abs(ssim - 0.07603295262416929) < 1e-9


def test_loss_util_and_lr_scheduler_names():
    from basicsr.losses.loss_util import weight_reduce_loss, weighted_loss
    from basicsr.models.lr_scheduler import MultiStepRestartLR

    @weighted_loss
    def l1(pred, target):
        return (pred - target).abs()

    a = torch.from_numpy(pattern(4, 5, 3)).permute(2, 0, 1)[None]
    b = torch.from_numpy(pattern(4, 5, 3, mult=7)).permute(2, 0, 1)[None]
    w = torch.from_numpy(pattern(4, 5, 1, mult=3)).permute(2, 0, 1)[None]
    assert abs(float(l1(a, b, weight=w)) - 0.3111298382282257) < F32_TOL  # BasicSR's weighted mean
    assert torch.equal(weight_reduce_loss((a - b).abs(), None, 'sum'), (a - b).abs().sum())
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = MultiStepRestartLR(opt, milestones=[2], gamma=0.5)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]['lr'] == 0.5
