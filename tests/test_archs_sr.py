"""SwinIR, MSRResNet, SRResNet (MiOIR) and Uformer: configurations, official state dicts, shapes, size rules."""
import json
from pathlib import Path

import pytest
import torch

from basicsr.archs import build_network

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
MANIFESTS = SHARED / 'reference' / 'arch_manifests'
VECTORS = SHARED / 'reference' / 'parity'
SR_MANIFESTS = ['SwinIR__classical_srx2', 'SwinIR__classical_srx4', 'SwinIR__classical_srx4_s64', 'SwinIR__mioir',
                'MSRResNet__x2', 'MSRResNet__x3', 'MSRResNet__x4', 'SRResNet__mioir', 'Uformer__mioir']

TINY_SWINIR = dict(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2, img_size=16)
TINY_UFORMER = dict(img_size=32, embed_dim=4, depths=[1, 2, 1, 1, 1, 1, 1, 2, 1], num_heads=[1, 1, 1, 1, 1, 1, 1, 1, 1],
                    win_size=2, modulator=True)


def _rand(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------- official layouts
@pytest.mark.parametrize('name', SR_MANIFESTS)
def test_manifest_state_dict_matches_official(name):
    path = MANIFESTS / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    manifest = json.loads(path.read_text())
    with torch.device('meta'):  # shapes and dtypes only: fast for the 50M-parameter Uformer too
        net = build_network({'type': manifest['registry_type'], **manifest['kwargs']})
    got = [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in net.state_dict().items()]
    assert got == manifest['state_dict']
    assert sum(p.numel() for p in net.parameters()) == manifest['param_count']


@pytest.mark.parametrize('name', ['SwinIR__classical_srx2_small', 'MSRResNet__x4_small'])
def test_parity_vector(name):
    path = VECTORS / f'{name}.pt'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    vec = torch.load(path, weights_only=True)
    net = build_network({'type': vec['type'], **vec['kwargs']})
    net.load_state_dict(vec['state_dict'], strict=True)
    net.eval()
    cases = [(vec['inputs'], vec['outputs'], vec['atol'])]
    cases += [(c['inputs'], c['outputs'], c['atol']) for c in vec.get('extra_cases', [])]
    with torch.no_grad():
        for inputs, expected, atol in cases:
            out = net(*inputs['args'], **inputs['kwargs'])
            assert (out - expected).abs().max().item() <= atol


def test_swinir_mean_is_not_in_state_dict_and_follows_device_moves():
    net = build_network({'type': 'SwinIR', **TINY_SWINIR})
    assert 'mean' not in net.state_dict()
    assert net.double().mean.dtype == torch.float64


# ---------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_swinir_super_resolution_shapes(scale):
    net = build_network({'type': 'SwinIR', 'upscale': scale, 'upsampler': 'pixelshuffle', **TINY_SWINIR}).eval()
    with torch.no_grad():
        out = net(_rand(2, 3, 16, 24))  # not img_size: the shift mask is computed for this size
    assert out.shape == (2, 3, 16 * scale, 24 * scale)


@pytest.mark.parametrize('upsampler,scale', [('pixelshuffledirect', 3), ('nearest+conv', 4), ('', 1)])
def test_swinir_other_upsamplers(upsampler, scale):
    net = build_network({'type': 'SwinIR', 'upscale': scale, 'upsampler': upsampler, **TINY_SWINIR}).eval()
    with torch.no_grad():
        assert net(_rand(1, 3, 8, 12)).shape == (1, 3, 8 * scale, 12 * scale)


def test_swinir_gray_same_size_restoration():
    net = build_network({'type': 'SwinIR', 'in_chans': 1, 'upscale': 1, 'upsampler': 'pixelshuffle',
                         'resi_connection': '3conv', **TINY_SWINIR}).eval()
    with torch.no_grad():
        assert net(_rand(1, 1, 12, 8)).shape == (1, 1, 12, 8)


def test_swinir_rejects_size_not_multiple_of_window():
    net = build_network({'type': 'SwinIR', 'upscale': 2, 'upsampler': 'pixelshuffle', **TINY_SWINIR})
    with pytest.raises(ValueError, match='multiples of 4'):
        net(_rand(1, 3, 16, 10))


def test_swinir_backward_in_training_mode():
    net = build_network({'type': 'SwinIR', 'upscale': 2, 'upsampler': 'pixelshuffle', 'drop_path_rate': 0.5,
                         'use_checkpoint': True, **TINY_SWINIR}).train()
    net(_rand(2, 3, 8, 8)).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_msrresnet_scales_any_size(scale):
    net = build_network({'type': 'MSRResNet', 'num_feat': 8, 'num_block': 2, 'upscale': scale}).eval()
    with torch.no_grad():
        assert net(_rand(2, 3, 7, 11)).shape == (2, 3, 7 * scale, 11 * scale)


def test_msrresnet_gray():
    net = build_network({'type': 'MSRResNet', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 1,
                         'upscale': 2})
    assert net(_rand(1, 1, 5, 6)).shape == (1, 1, 10, 12)


def test_msrresnet_rejects_unsupported_scale():
    with pytest.raises(ValueError, match='upscale 2, 3 or 4'):
        build_network({'type': 'MSRResNet', 'upscale': 8})


def test_srresnet_same_size_any_shape_and_only_upscale_1():
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'upscale': 1}).eval()
    with torch.no_grad():
        assert net(_rand(3, 3, 9, 13)).shape == (3, 3, 9, 13)
    with pytest.raises(ValueError, match='upscale must be 1'):
        build_network({'type': 'SRResNet', 'upscale': 4})


def test_uformer_shapes_non_square_and_ignores_upscale():
    net = build_network({'type': 'Uformer', 'upscale': 4, **TINY_UFORMER}).eval()
    assert net.size_multiple == 32  # 16 (four halvings) x window 2
    with torch.no_grad():
        assert net(_rand(2, 3, 32, 64)).shape == (2, 3, 32, 64)


def test_uformer_default_multiple_is_128():
    with torch.device('meta'):
        assert build_network({'type': 'Uformer', 'embed_dim': 4}).size_multiple == 128


def test_uformer_gray():
    net = build_network({'type': 'Uformer', **dict(TINY_UFORMER, in_chans=1, dd_in=1, token_mlp='mlp')}).eval()
    with torch.no_grad():
        assert net(_rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_uformer_conv_token_projection():
    net = build_network({'type': 'Uformer', 'token_projection': 'conv', **TINY_UFORMER}).eval()
    assert 'encoderlayer_0.blocks.0.attn.qkv.to_v.pointwise.weight' in net.state_dict()
    with torch.no_grad():
        assert net(_rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_uformer_rejects_size_not_multiple():
    net = build_network({'type': 'Uformer', **TINY_UFORMER})
    with pytest.raises(ValueError, match='multiples of 32'):
        net(_rand(1, 3, 32, 48))


def test_uformer_backward():
    net = build_network({'type': 'Uformer', 'cross_modulator': True, **TINY_UFORMER}).train()
    net(_rand(1, 3, 32, 32)).mean().backward()
    assert all(p.grad is not None for name, p in net.named_parameters() if 'norm_cross' not in name)


# ---------------------------------------------------------------------------------------- bad configurations
def test_unknown_kwarg_lists_accepted_ones():
    with pytest.raises(TypeError, match=r"'upscal'.*did you mean 'upscale'.*accepted: .*window_size"):
        build_network({'type': 'SwinIR', 'upscal': 2})


@pytest.mark.parametrize('opt,match', [
    ({'type': 'SwinIR', 'upsampler': 'bicubic'}, 'upsampler must be one of'),
    ({'type': 'SwinIR', 'upsampler': 'nearest+conv', 'upscale': 2}, 'upscale=4 only'),
    ({'type': 'SwinIR', 'embed_dim': 10, 'num_heads': [3], 'depths': [2]}, 'divisible'),
    ({'type': 'Uformer', 'depths': [2, 2]}, '9 depths'),
    ({'type': 'Uformer', 'token_mlp': 'fastleff'}, 'token_mlp must be one of'),
    ({'type': 'Uformer', 'img_size': 32, 'win_size': 8, 'modulator': True}, 'modulator'),
])
def test_invalid_configurations_raise_clear_errors(opt, match):
    with pytest.raises(ValueError, match=match):
        build_network(opt)


def test_shifted_windows_one_window_high():
    """H equal to the window and W larger: the shifted-window mask must not need a contiguous view."""
    import torch

    from basicsr.archs import build_network
    net = build_network({'type': 'SwinIR', 'upscale': 1, 'img_size': 8, 'window_size': 4, 'embed_dim': 12,
                         'depths': [2], 'num_heads': [2], 'upsampler': ''}).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 4, 8))
    assert out.shape == (1, 3, 4, 8) and torch.isfinite(out).all()
