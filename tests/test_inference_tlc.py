"""TLC: the local box filter, conversion rules, calibration, bad input (basicsr/inference/tlc.py,
tlc_blocks.py)."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.conv_blocks import CALayer
from basicsr.archs.transformer_blocks import Attention, transposed_attention
from basicsr.inference.tlc import (LocalAvgPool2d, LocalInstanceNorm2d, LocalPooledBranch, convert_local_,
                                   expand_local, local_mean, local_modules, make_settings, to_local)
from basicsr.inference.tlc_blocks import LocalCALayer, LocalChannelAttention


class TwoScaleNet(nn.Module):
    """Global statistics at full and half resolution: SE branch, bare pool, half instance norm."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1), nn.Sigmoid())
        self.down = nn.Conv2d(c, c, 2, 2)
        self.norm = nn.InstanceNorm2d(c // 2, affine=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.up = nn.ConvTranspose2d(c, 3, 2, 2)

    def forward(self, x):
        y = self.head(x)
        y = y * self.se(y)
        z = self.down(y)
        a, b = z.chunk(2, dim=1)
        z = torch.cat([self.norm(a), b], dim=1)
        z = z + self.pool(z)
        return self.up(z) + x


def _randomise(net: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return net.eval()


# ------------------------------------------------------------------ box filter
def test_exact_local_mean_is_the_valid_box_filter():
    x = torch.rand(2, 3, 20, 27, dtype=torch.float64)
    compact, ratio = local_mean(x, (7, 9))
    assert ratio == (1, 1)
    torch.testing.assert_close(compact, F.avg_pool2d(x, (7, 9), stride=1))


def test_expand_replicates_borders_floor_before_ceil_after():
    compact = torch.arange(6.).view(1, 1, 2, 3)
    out = expand_local(compact, (1, 1), (5, 6))
    assert out.shape == (1, 1, 5, 6)
    # 3 extra rows: 1 above, 2 below; 3 extra columns: 1 left, 2 right
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0., 0., 1., 2., 2., 2.]))
    torch.testing.assert_close(out[0, 0, 4], torch.tensor([3., 3., 4., 5., 5., 5.]))


def test_window_covering_the_map_is_global_mean():
    x = torch.rand(1, 2, 10, 12)
    compact, ratio = local_mean(x, (10, 12))
    assert ratio == (0, 0) and compact.shape == (1, 2, 1, 1)
    torch.testing.assert_close(compact, x.mean((-2, -1), keepdim=True))


def test_fast_imp_subsamples_by_largest_divisor_and_keeps_constants():
    x = torch.full((1, 1, 60, 42), 0.7)
    compact, ratio = local_mean(x, (20, 20), fast_imp=True, max_ratio=(5, 5))
    assert ratio == (5, 3)  # 60 divisible by 5; 42 by 3 (not 5 or 4)
    out = expand_local(compact, ratio, (60, 42))
    assert out.shape == (1, 1, 60, 42)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


def test_fast_imp_expansion_is_nearest_upsampling_then_replicate_padding():
    compact, ratio = local_mean(torch.rand(2, 3, 60, 42), (20, 20), fast_imp=True, max_ratio=(5, 5))
    up = F.interpolate(compact, scale_factor=ratio)
    dh, dw = 60 - up.shape[-2], 42 - up.shape[-1]
    ref = F.pad(up, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode='replicate')
    assert torch.equal(expand_local(compact, ratio, (60, 42)), ref)


def test_fast_imp_ratio_is_capped_by_calibration():
    compact, ratio = local_mean(torch.rand(1, 1, 60, 60), (20, 20), fast_imp=True, max_ratio=(2, 1))
    assert ratio == (2, 1)


# ------------------------------------------------------------------ conversion
def test_to_local_swaps_every_global_statistic_and_keeps_state_dict_names():
    net = _randomise(TwoScaleNet())
    local = to_local(net, train_size=(1, 3, 16, 16))
    assert isinstance(local.se, LocalPooledBranch)
    assert isinstance(local.norm, LocalInstanceNorm2d) and isinstance(local.pool, LocalAvgPool2d)
    assert list(local.state_dict()) == list(net.state_dict())
    assert isinstance(net.pool, nn.AdaptiveAvgPool2d)  # the original is untouched
    local.load_state_dict(net.state_dict(), strict=True)


def test_calibration_sets_window_from_feature_size_times_base_over_train():
    local = to_local(TwoScaleNet(), train_size=(1, 3, 16, 16))
    windows = dict((name, m.kernel_size) for name, m in local_modules(local))
    assert windows == {'se.0': (24, 24), 'norm': (12, 12), 'pool': (12, 12)}
    local = to_local(TwoScaleNet(), train_size=(1, 3, 16, 20), base_size=(20, 40))
    assert local.se[0].kernel_size == (20, 40) and local.pool.kernel_size == (10, 20)


def test_images_up_to_the_base_size_give_the_unconverted_output():
    net = _randomise(TwoScaleNet())
    local = to_local(net, train_size=(1, 3, 16, 16))
    x = torch.rand(2, 3, 24, 20)  # <= 1.5 x 16 at every layer: global statistics (documented fallback)
    with torch.no_grad():
        torch.testing.assert_close(local(x), net(x), atol=1e-5, rtol=0)


def test_larger_images_use_local_statistics():
    net = _randomise(TwoScaleNet())
    local = to_local(net, train_size=(1, 3, 16, 16))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert (local(x) - net(x)).abs().max() > 1e-3
        # the SE branch at a pixel uses the mean of its own 24x24 window
        feat = local.head(x)
        gate = local.se(feat)
        ref = torch.sigmoid(local.se[1](F.avg_pool2d(feat, 24, stride=1)))
        torch.testing.assert_close(gate[..., 11:11 + 41, 11:11 + 41], ref, atol=1e-5, rtol=0)


def test_local_instance_norm_matches_instance_norm_on_small_maps():
    norm = nn.InstanceNorm2d(4, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    local = LocalInstanceNorm2d(norm, make_settings((1, 3, 8, 8)))
    local.kernel_size = (12, 12)
    x = torch.randn(2, 4, 12, 10)
    torch.testing.assert_close(local(x), norm(x), atol=1e-5, rtol=0)


def test_ca_layer_converter_excites_compact_means_same_as_pool_then_excite():
    layer = CALayer(16, reduction=4, bias=True)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), layer)
    local = to_local(net, train_size=(1, 3, 8, 8))
    assert isinstance(local[1], LocalCALayer)
    assert list(local.state_dict()) == list(net.state_dict())
    x = torch.rand(1, 3, 30, 20)
    with torch.no_grad():
        feat = local[0](x)
        ref = feat * layer.conv_du(expand_local(*local_mean(feat, (12, 12)), (30, 20)))
        torch.testing.assert_close(local(x), ref, atol=1e-6, rtol=0)


def test_mdta_windows_average_overlaps_and_match_global_on_small_inputs():
    attn = Attention(8, num_heads=2, bias=False).eval()
    net = nn.Sequential(nn.Conv2d(3, 8, 1), attn)
    local = to_local(net, train_size=(1, 3, 8, 8))
    assert isinstance(local[1], LocalChannelAttention) and local[1].kernel_size == (12, 12)
    with torch.no_grad():
        small = torch.rand(2, 3, 12, 10)
        torch.testing.assert_close(local(small), net(small), atol=1e-6, rtol=0)
        # 24 x 24 = four disjoint 12 x 12 windows: each quadrant is attention on that quadrant alone
        x = torch.rand(2, 3, 24, 24)
        out = local(x)
        qkv = attn.qkv_dwconv(attn.qkv(local[0](x)))
        quad = attn.project_out(transposed_attention(qkv[..., 12:, :12], 2, attn.temperature))
        torch.testing.assert_close(out[..., 12:, :12], quad, atol=1e-5, rtol=0)


def test_shared_weights_follow_the_original():
    net = _randomise(TwoScaleNet())
    local = to_local(net, train_size=(1, 3, 16, 16), share_weights=True)
    assert local.head.weight is net.head.weight
    copy = to_local(net, train_size=(1, 3, 16, 16))
    assert copy.head.weight is not net.head.weight


def test_calibration_keeps_training_mode_and_global_rng():
    net = TwoScaleNet().train()
    state = torch.random.get_rng_state()
    local = to_local(net, train_size=(1, 3, 16, 16))
    assert local.training
    assert torch.equal(state, torch.random.get_rng_state())


# ------------------------------------------------------------------ bad input
def test_nothing_to_convert_warns_and_returns_an_unchanged_copy():
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
    with pytest.warns(UserWarning, match='nothing|no layer'):
        local = to_local(net)
    assert local is not net
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(local(x), net(x))


def test_uncalibrated_layer_raises_a_clear_error():
    pool = LocalAvgPool2d(make_settings())
    with pytest.raises(RuntimeError, match='to_local'):
        pool(torch.rand(1, 1, 4, 4))


def test_layer_missed_by_the_calibration_forward_warns():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.AdaptiveAvgPool2d(1)
            self.unused = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return x * self.used(x)

    with pytest.warns(UserWarning, match='not reached'):
        to_local(Unused(), train_size=(1, 3, 8, 8))


@pytest.mark.parametrize('kwargs, match', [
    ({'train_size': (3, 256, 256)}, 'train_size'),
    ({'train_size': (1, 3, 0, 256)}, 'train_size'),
    ({'base_size': (384, -1)}, 'base_size'),
])
def test_bad_settings_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_local(TwoScaleNet(), **kwargs)


def test_non_global_adaptive_pool_is_left_alone():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        assert convert_local_(net, train_size=(1, 3, 8, 8)) == []


# ------------------------------------------------------------------ opt-in converters (ablation)
def test_extra_converters_are_off_by_default():
    from basicsr.archs.dsrir_arch import PatchAttention
    from basicsr.archs.promptir_arch import PromptGenBlock
    net = nn.ModuleDict({'pa': PatchAttention(8, 4, (2, 2)), 'prompt': PromptGenBlock(4, 3, 8, 8)})

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = net

        def forward(self, x):
            y = nn.functional.pad(x, (0, 0, 0, 0, 0, 5))
            return self.inner['pa'](y) + self.inner['prompt'](y).sum(1, keepdim=True)

    with pytest.warns(UserWarning, match='unchanged copy'):
        to_local(Wrap(), train_size=(1, 3, 16, 16))
    local = to_local(Wrap(), train_size=(1, 3, 16, 16), extra=True)
    assert [n for n, _ in local_modules(local)] == ['inner.pa', 'inner.prompt']


def test_local_prompt_weights_match_global_on_small_maps_and_vary_on_large_ones():
    from basicsr.archs.promptir_arch import PromptGenBlock
    block = PromptGenBlock(prompt_dim=4, prompt_len=3, prompt_size=8, lin_dim=6).eval()
    with torch.no_grad():
        block.linear_layer.weight.mul_(20)
    local = to_local(nn.Sequential(block), train_size=(1, 6, 8, 8), extra=True)
    x = torch.rand(2, 6, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(local(x), block(x), atol=1e-5, rtol=0)
        big = torch.cat([torch.zeros(1, 6, 40, 40), torch.ones(1, 6, 40, 40)], dim=-1)
        assert (local(big) - block(big)).abs().max() > 1e-3


def test_patch_attention_keeps_the_training_cell_size():
    from basicsr.archs.dsrir_arch import PatchAttention
    pa = PatchAttention(8, 4, (2, 2)).eval()
    local = to_local(nn.Sequential(pa), train_size=(1, 8, 16, 16), extra=True)
    assert local[0].kernel_size == (8, 8)
    x = torch.rand(1, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(local(x), pa(x))  # the training grid: unchanged
        four = PatchAttention(8, 4, (4, 6)).eval()
        four.conv_du = pa.conv_du
        y = torch.rand(1, 8, 32, 48)  # 4 x 6 cells of the training size 8 x 8
        torch.testing.assert_close(local(y), four(y))


def test_patch_attention_with_a_global_grid_is_kept_whole_without_extra():
    from basicsr.archs.dsrir_arch import PatchAttention
    pa = PatchAttention(8, 4, (1, 1)).eval()  # its AdaptiveAvgPool2d((1, 1)) feeds a per-cell gate
    with pytest.warns(UserWarning, match='unchanged copy'):
        local = to_local(nn.Sequential(pa), train_size=(1, 8, 16, 16))
    x = torch.rand(1, 8, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(local(x), pa(x))


def test_local_mean_is_differentiable():
    x = torch.rand(1, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: local_mean(t, (5, 4))[0], (x,))
    assert torch.autograd.gradcheck(lambda t: local_mean(t, (6, 6), True, (2, 2))[0], (x,))
