"""Convolutional networks: NAFNet, Baseline, NAFSSR (+ NAFNetSR), HINet, MPRNet and their shared blocks.

Shape contracts run on reduced configurations; the manifest and parity-vector checks read
``../shared/reference`` (made from the official implementations) and skip when it is absent.
"""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from basicsr.archs import build_network
from basicsr.archs.conv_blocks import LayerNorm2d
from basicsr.archs.outputs import NamedOutputs, main_output

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
MANIFESTS = SHARED / 'reference' / 'arch_manifests'
VECTORS = SHARED / 'reference' / 'parity'
OUR_TYPES = ('NAFNet', 'Baseline', 'NAFSSR', 'HINet', 'MPRNet')

SMALL_UNET = dict(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
SMALL_SSR = dict(width=8, num_blks=2, train_size=None)
SMALL_HINET = dict(wf=4, depth=3, hin_position_left=0, hin_position_right=4)
SMALL_MPRNET = dict(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1, reduction=4)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomize(net: nn.Module) -> nn.Module:
    """Non-zero values everywhere (NAF blocks start with zero residual scales)."""
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return net.eval()


# ------------------------------------------------------------------------------------ shape contracts
@pytest.mark.parametrize('arch', ['NAFNet', 'Baseline'])
@pytest.mark.parametrize('size', [(16, 16), (17, 23), (5, 9)])
def test_unet_any_size_batch_2(arch, size):
    net = build_network({'type': arch, **SMALL_UNET}).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = net(x)
    assert out.shape == x.shape


def test_nafnet_pads_internally_like_cropping_the_padded_result():
    net = _randomize(build_network({'type': 'NAFNet', **SMALL_UNET}))
    x = torch.rand(1, 3, 13, 10)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3))  # zero pad to a multiple of 2**2 = 4
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[:, :, :13, :10], atol=1e-6)


def test_nafnet_gray():
    net = build_network({'type': 'NAFNet', 'img_channel': 1, **SMALL_UNET}).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 12, 12)).shape == (1, 1, 12, 12)


def test_unet_mismatched_levels_is_an_error():
    with pytest.raises(ValueError, match='same length'):
        build_network({'type': 'NAFNet', 'enc_blk_nums': [1, 1], 'dec_blk_nums': [1]})


@pytest.mark.parametrize('scale', [2, 4])
def test_nafssr_scale_and_views(scale):
    net = build_network({'type': 'NAFSSR', 'up_scale': scale, **SMALL_SSR}).eval()
    x = torch.rand(2, 6, 7, 11)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 6, 7 * scale, 11 * scale)


def test_nafssr_left_output_depends_on_the_right_view():
    net = _randomize(build_network({'type': 'NAFSSR', 'up_scale': 2, **SMALL_SSR}))
    left = torch.rand(1, 3, 6, 8)
    with torch.no_grad():
        out = net(torch.cat([left, torch.rand(1, 3, 6, 8)], 1))
        other_right = net(torch.cat([left, torch.rand(1, 3, 6, 8)], 1))
    assert not torch.allclose(out[:, :3], other_right[:, :3])  # SCAM exchanges information


def test_nafnetsr_single_view():
    net = build_network({'type': 'NAFNetSR', 'up_scale': 3, 'width': 8, 'num_blks': 2}).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 15, 18)


def test_hinet_two_named_outputs_in_official_order():
    net = build_network({'type': 'HINet', **SMALL_HINET}).eval()
    x = torch.rand(2, 3, 8, 12)  # depth 3 -> multiples of 4
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, NamedOutputs)
    assert out.names == ('stage:1', 'stage:2')
    assert main_output(out) is out[1] and out.pred.shape == x.shape


def test_hinet_gray():
    net = build_network({'type': 'HINet', 'in_chn': 1, **SMALL_HINET}).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 8, 8)).pred.shape == (1, 1, 8, 8)


def test_mprnet_three_named_outputs_final_first():
    net = build_network({'type': 'MPRNet', **SMALL_MPRNET}).eval()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        out = net(x)
    assert out.names == ('stage:3', 'stage:2', 'stage:1')
    assert main_output(out) is out[0]
    assert all(t.shape == x.shape for t in out)


@pytest.mark.parametrize('arch, kwargs, size, multiple', [
    ('HINet', {'wf': 4}, (24, 32), 16),
    ('HINet', SMALL_HINET, (8, 10), 4),
    ('MPRNet', SMALL_MPRNET, (12, 16), 8),
])
def test_size_that_the_network_cannot_take(arch, kwargs, size, multiple):
    net = build_network({'type': arch, **kwargs}).eval()
    assert net.size_multiple == multiple
    with pytest.raises(ValueError, match=f'multiples of {multiple}'):
        net(torch.rand(1, 3, *size))


@pytest.mark.parametrize('arch', OUR_TYPES)
def test_unknown_kwarg_lists_accepted_ones(arch):
    with pytest.raises(TypeError, match='widht') as err:
        build_network({'type': arch, 'widht': 8})
    first_kwarg = 'img_channel' if arch in ('NAFNet', 'Baseline') else {'NAFSSR': 'up_scale', 'HINet': 'in_chn',
                                                                        'MPRNet': 'in_c'}[arch]
    assert first_kwarg in str(err.value)


# ------------------------------------------------------------------------------------ blocks and TLC hooks
def test_layernorm2d_gradients_equal_plain_autograd():
    norm = LayerNorm2d(5).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 5, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: norm(t), (x,))

    def reference(t):
        mu = t.mean(1, keepdim=True)
        var = (t - mu).pow(2).mean(1, keepdim=True)
        return norm.weight.view(1, -1, 1, 1) * (t - mu) / (var + norm.eps).sqrt() + norm.bias.view(1, -1, 1, 1)

    grad_out = torch.randn(2, 5, 3, 4, dtype=torch.double)
    ours = torch.autograd.grad(norm(x), (x, norm.weight, norm.bias), grad_out)
    ref = torch.autograd.grad(reference(x), (x, norm.weight, norm.bias), grad_out)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize('arch, kwargs, module_type', [
    ('NAFNet', SMALL_UNET, nn.AdaptiveAvgPool2d),
    ('Baseline', SMALL_UNET, nn.AdaptiveAvgPool2d),
    ('MPRNet', SMALL_MPRNET, nn.AdaptiveAvgPool2d),
    ('HINet', SMALL_HINET, nn.InstanceNorm2d),
])
def test_global_statistics_are_modules_tlc_can_replace(arch, kwargs, module_type):
    net = build_network({'type': arch, **kwargs})
    assert any(type(m) is module_type for m in net.modules())


def test_nafssr_is_tlc_converted_like_the_official_class():
    tlc = pytest.importorskip('basicsr.inference.tlc')
    kwargs = dict(up_scale=2, width=8, num_blks=2)
    plain = _randomize(build_network({'type': 'NAFSSR', **kwargs, 'train_size': None}))
    local = build_network({'type': 'NAFSSR', **kwargs, 'train_size': [1, 6, 8, 12]}).eval()
    assert list(local.state_dict()) == list(plain.state_dict())
    local.load_state_dict(plain.state_dict())
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in local.modules())
    windows = [m.kernel_size for _, m in tlc.local_modules(local)]
    assert windows and all(k == (12, 18) for k in windows)  # 1.5 x the training crop
    with torch.no_grad():
        small = torch.rand(1, 6, 12, 18)  # no larger than the window: global statistics, same output
        assert torch.allclose(local(small), plain(small), atol=1e-6)
        large = torch.rand(1, 6, 24, 36)
        assert not torch.allclose(local(large), plain(large), atol=1e-4)


def test_nafssr_bad_train_size():
    with pytest.raises(ValueError, match=r'\[N, 6, H, W\]'):
        build_network({'type': 'NAFSSR', **SMALL_SSR, 'train_size': [1, 3, 30, 90]})
    with pytest.raises(ValueError, match='fast_imp'):
        build_network({'type': 'NAFSSR', **SMALL_SSR, 'fast_imp': True})
    with pytest.raises(ValueError, match='train_size'):
        build_network({'type': 'NAFSSR', **SMALL_SSR, 'base_size': 48})


def test_nafssr_base_size_sets_the_window():
    tlc = pytest.importorskip('basicsr.inference.tlc')
    net = build_network({'type': 'NAFSSR', 'up_scale': 2, 'width': 8, 'num_blks': 1, 'train_size': [1, 6, 8, 12],
                         'base_size': [10, 20]})
    assert {m.kernel_size for _, m in tlc.local_modules(net)} == {(10, 20)}


def test_nafssr_drop_path_identity_in_eval_and_stochastic_in_training():
    net = _randomize(build_network({'type': 'NAFSSR', 'up_scale': 2, **SMALL_SSR, 'drop_path_rate': 0.5}))
    x = torch.rand(1, 6, 6, 8)
    with torch.no_grad():
        ref = net(x)
        assert torch.equal(net(x), ref)
        net.train()
        torch.manual_seed(3)
        outs = [net(x) for _ in range(8)]
    assert any(not torch.allclose(o, ref) for o in outs)


# ------------------------------------------------------------------------------------ official references
def _manifests():
    if not MANIFESTS.is_dir():
        return []
    return sorted(p for p in MANIFESTS.glob('*.json') if p.stem.split('__')[0] in OUR_TYPES)


@pytest.mark.parametrize('path', _manifests(), ids=lambda p: p.stem)
def test_manifest_state_dict_names_shapes_order(path):
    manifest = json.loads(path.read_text())
    kwargs = dict(manifest['kwargs'])
    if manifest['registry_type'] == 'NAFSSR':
        kwargs['train_size'] = None  # TLC adds no parameters; skip its calibration forward (slow at full size)
    with torch.device('meta'):
        net = build_network({'type': manifest['registry_type'], **kwargs})
    ours = [(k, list(v.shape), str(v.dtype).replace('torch.', '')) for k, v in net.state_dict().items()]
    assert ours == [tuple(e) for e in manifest['state_dict']]
    assert sum(p.numel() for p in net.parameters()) == manifest['param_count']


def test_mprnet_task_configs_match_manifests():
    from basicsr.archs.mprnet_arch import MPRNET_CONFIGS
    if not MANIFESTS.is_dir():
        pytest.skip('no ../shared/reference')
    for task, cfg in MPRNET_CONFIGS.items():
        manifest = json.loads((MANIFESTS / f'MPRNet__{task}.json').read_text())
        assert {k: manifest['kwargs'][k] for k in cfg} == cfg


def _vectors():
    if not VECTORS.is_dir():
        return []
    return sorted(p for p in VECTORS.glob('*.pt') if p.stem.split('__')[0] in OUR_TYPES)


@pytest.mark.parametrize('path', _vectors(), ids=lambda p: p.stem)
def test_parity_vector(path):
    vec = torch.load(path, weights_only=True)
    net = build_network({'type': vec['type'], **vec['kwargs']})
    net.load_state_dict(vec['state_dict'], strict=True)
    net.eval()
    cases = [(vec['inputs'], vec['outputs'], vec['atol'])]
    cases += [(c['inputs'], c['outputs'], c['atol']) for c in vec.get('extra_cases', [])]
    for inputs, expected, atol in cases:
        with torch.no_grad():
            out = net(*inputs['args'], **inputs['kwargs'])
        expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
        out = list(out) if isinstance(out, tuple) else [out]
        assert len(out) == len(expected)
        for o, e in zip(out, expected):
            assert (o - e).abs().max().item() <= atol
