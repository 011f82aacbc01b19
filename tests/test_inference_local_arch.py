"""The official ``*Local`` type names built as base network + TLC (basicsr/archs/local_arch.py)."""
import json
from pathlib import Path

import pytest
import torch

from basicsr.archs import build_network
from basicsr.inference.tlc import local_modules

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
SMALL = {'img_channel': 3, 'width': 4, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}


def _manifest(name: str) -> dict:
    path = SHARED / 'reference' / 'arch_manifests' / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    return json.loads(path.read_text())


@pytest.mark.parametrize('local, base', [('NAFNetLocal', 'NAFNet'), ('BaselineLocal', 'Baseline')])
def test_local_type_has_the_base_state_dict_and_loads_it_strictly(local, base):
    plain = build_network({'type': base, **SMALL})
    net = build_network({'type': local, **SMALL, 'train_size': [1, 3, 32, 32], 'fast_imp': True})
    assert list(net.state_dict()) == list(plain.state_dict())
    net.load_state_dict(plain.state_dict(), strict=True)
    assert all(m.fast_imp for _, m in local_modules(net))


def test_local_type_equals_base_network_below_the_base_size():
    plain = build_network({'type': 'NAFNet', **SMALL}).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    net = build_network({'type': 'NAFNetLocal', **SMALL, 'train_size': [1, 3, 32, 32]}).eval()
    net.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 48, 40)  # 48 = 1.5 x 32: every window still covers its map
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), atol=1e-5, rtol=0)
        assert (net(torch.rand(1, 3, 96, 64)) - plain(torch.rand(1, 3, 96, 64))).abs().max() > 0


def test_unknown_kwarg_lists_the_accepted_ones():
    with pytest.raises(TypeError, match='width'):
        build_network({'type': 'NAFNetLocal', 'widht': 8})


@pytest.mark.parametrize('name', ['BaselineLocal__gopro_width32', 'NAFNetLocal__gopro_width32'])
def test_windows_match_the_official_calibration(name):
    """Windows and fast_imp ratio caps per layer, as recorded from the official converted network
    (``tlc_avgpool`` in the manifest); they depend on the structure only, so width 4 is built."""
    man = _manifest(name)
    net = build_network({'type': man['arch_type'], **man['kwargs'], 'width': 4})
    got = {n: (list(m.kernel_size), list(m.max_ratio)) for n, m in local_modules(net)}
    ref = {n: (v['kernel_size'], [v['max_r1'], v['max_r2']]) for n, v in man['tlc_avgpool'].items()}
    assert got == ref


def test_official_parity_vector():
    path = SHARED / 'reference' / 'parity' / 'NAFNetLocal__gopro_width32_small.pt'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    vec = torch.load(path, map_location='cpu', weights_only=True)
    net = build_network({'type': vec['type'], **vec['kwargs']})
    net.load_state_dict(vec['state_dict'], strict=True)
    net.eval()
    cases = [(vec['inputs'], vec['outputs'], vec['atol'])] + [(c['inputs'], c['outputs'], c['atol'])
                                                              for c in vec.get('extra_cases', [])]
    with torch.no_grad():
        for inputs, ref, atol in cases:
            out = net(*inputs['args'], **inputs['kwargs'])
            torch.testing.assert_close(out, ref, atol=atol, rtol=0)


HINET = {'wf': 4, 'depth': 3, 'hin_position_left': 0, 'hin_position_right': 3}
MPRNET = {'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4, 'num_cab': 1}
RESTORMER = {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]}


@pytest.mark.parametrize('local, base, kwargs, kinds, train', [
    # HINet/MPRNet windows assume 256 px training whatever train_size says (see below): 256 here
    ('HINetLocal', 'HINet', HINET, {'LocalInstanceNorm2d'}, 256),
    ('MPRNetLocal', 'MPRNet', MPRNET, {'LocalAvgPool2d'}, 256),
    ('RestormerLocal', 'Restormer', RESTORMER, {'LocalChannelAttention'}, 32),
])
def test_tlc_repo_local_types_convert_their_blocks(local, base, kwargs, kinds, train):
    from basicsr.archs.outputs import main_output
    plain = build_network({'type': base, **kwargs}).eval()
    net = build_network({'type': local, **kwargs, 'train_size': [1, 3, train, train],
                         'base_size': train * 3 // 2}).eval()
    assert list(net.state_dict()) == list(plain.state_dict())
    assert {type(m).__name__ for _, m in local_modules(net)} == kinds
    net.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(main_output(net(x)), main_output(plain(x)), atol=1e-5, rtol=0)


@pytest.mark.parametrize('local, base, kwargs', [('HINetLocal', 'HINet', HINET), ('MPRNetLocal', 'MPRNet', MPRNET)])
def test_hinet_mprnet_local_size_windows_for_256_px_training_like_the_official_classes(local, base, kwargs):
    from basicsr.inference.tlc import to_local
    net = build_network({'type': local, **kwargs, 'train_size': [1, 3, 64, 64]})
    windows = [m.kernel_size for _, m in local_modules(net)]
    # official: window = feature size x base (1.5 x 64 = 96) // 256, not // 64: 24 at full resolution
    assert max(windows) == (64 * 96 // 256, 64 * 96 // 256)
    generic = to_local(build_network({'type': base, **kwargs}), train_size=(1, 3, 64, 64))
    assert max(m.kernel_size for _, m in local_modules(generic)) == (96, 96)


def test_mprnet_local_returns_the_final_image_only():
    plain = build_network({'type': 'MPRNet', **MPRNET}).eval()
    net = build_network({'type': 'MPRNetLocal', **MPRNET}).eval()
    net.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        out = net(x)
        ref = plain(x)
    assert len(out) == 1 and out.names == ('stage:3',)
    torch.testing.assert_close(out[0], ref['stage:3'], atol=1e-5, rtol=0)
    assert len(ref) == 3  # the plain network (and to_local of it) keeps the three stage outputs


@pytest.mark.parametrize('local, base, kwargs, multiple', [('HINetLocal', 'HINet', HINET, 16),
                                                           ('MPRNetLocal', 'MPRNet', MPRNET, 8),
                                                           ('RestormerLocal', 'Restormer', RESTORMER, 8)])
def test_tlc_repo_local_types_zero_pad_sizes_that_are_not_multiples(local, base, kwargs, multiple):
    """Any size works; the result is the network on the zero-padded input, cropped (official padder)."""
    from basicsr.archs.outputs import main_output
    plain = build_network({'type': base, **kwargs}).eval()
    net = build_network({'type': local, **kwargs}).eval()  # 256 training: no window reached at this size
    net.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 37, 45)
    padded = torch.nn.functional.pad(x, (0, -45 % multiple, 0, -37 % multiple))
    with torch.no_grad():
        out = main_output(net(x))
        ref = main_output(plain(padded))[:, :, :37, :45]
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_padder_size_is_checked():
    with pytest.raises(ValueError, match='padder_size'):
        build_network({'type': 'HINetLocal', **HINET, 'padder_size': -1})


def test_inference_pipeline_hands_official_local_types_the_unpadded_image():
    """Their zero padding covers the network's multiple, so ``pad_multiple: auto`` adds no reflect padding
    (the official test calls the network on the image as is)."""
    from basicsr.archs.outputs import main_output
    from basicsr.inference.pipeline import InferencePipeline
    net = build_network({'type': 'HINetLocal', **HINET, 'train_size': [1, 3, 64, 64]}).eval()
    assert net.size_multiple == 1
    assert build_network({'type': 'HINetLocal', **HINET, 'padder_size': 0}).size_multiple == 4
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(InferencePipeline(net)(x), main_output(net(x)), atol=1e-6, rtol=0)
