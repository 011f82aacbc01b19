"""Restormer, LoRARestormer, PromptIR / PromptIR_MiOIR and DSRIR: configurations, shapes, LoRA merging, errors,
parity vectors and full-configuration state_dicts (the last two read ../shared and skip without it)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network, list_networks
from basicsr.archs.lora_restormer_arch import LoRAConv2d
from basicsr.archs.outputs import NamedOutputs, main_output

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
MANIFESTS = SHARED / 'reference' / 'arch_manifests'
VECTORS = SHARED / 'reference' / 'parity'

MY_TYPES = ('Restormer', 'LoRARestormer', 'PromptIR', 'PromptIR_MiOIR', 'DSRIR')

# what distinguishes each manifest configuration (the rest are Restormer defaults), at reduced width/depth
SMALL = dict(dim=8, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1)
RESTORMER_CONFIGS = {
    'motion_deblurring': dict(LayerNorm_type='WithBias'),
    'deraining': dict(LayerNorm_type='WithBias'),
    'single_image_defocus_deblurring': dict(LayerNorm_type='WithBias'),
    'dual_pixel_defocus_deblurring': dict(inp_channels=6, dual_pixel_task=True),
    'gaussian_color_denoising': dict(LayerNorm_type='BiasFree'),
    'gaussian_gray_denoising': dict(inp_channels=1, out_channels=1, LayerNorm_type='BiasFree'),
    'real_denoising': dict(LayerNorm_type='BiasFree'),
    'mioir': dict(global_residual=True),
    'mioir_no_residual': dict(global_residual=False),
    'unirestorer_expert_biasfree': dict(LayerNorm_type='BiasFree'),
    'unirestorer_expert_withbias': dict(LayerNorm_type='WithBias'),
}
PROMPTIR_SMALL = dict(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
DSRIR_SMALL = dict(sn1_feats=8, sn2_feats=8, sn3_feats=8, feats_step1=4, feats_step2=4, reduction=2)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """These networks are small; on a busy 2-core machine more intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _randomize_(net: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial weights (LoRA B factors start at zero; make the update matter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_all_types_are_registered():
    assert set(MY_TYPES) <= set(list_networks())


# ---------------------------------------------------------------------------- Restormer
@pytest.mark.parametrize('config', sorted(RESTORMER_CONFIGS))
def test_restormer_configs_build_and_keep_shape(config):
    kwargs = dict(SMALL, **RESTORMER_CONFIGS[config])
    net = build_network({'type': 'Restormer', **kwargs}).eval()
    cin = kwargs.get('inp_channels', 3)
    cout = kwargs.get('out_channels', 3)
    with torch.no_grad():
        out = net(_rand(2, cin, 24, 16))
    assert out.shape == (2, cout, 24, 16)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('hw', [(13, 21), (29, 37), (5, 8), (40, 17)])
def test_restormer_takes_any_size_by_reflect_padding_to_8(hw):
    net = build_network({'type': 'Restormer', **SMALL}).eval()
    x = _rand(2, 3, *hw)
    ph, pw = -hw[0] % 8, -hw[1] % 8
    with torch.no_grad():
        out = net(x)
        padded = net(F.pad(x, (0, pw, 0, ph), mode='reflect'))
    assert out.shape == (2, 3, *hw)
    torch.testing.assert_close(out, padded[:, :, :hw[0], :hw[1]], rtol=0, atol=0)


def test_restormer_padding_is_a_no_op_on_multiples_of_8():
    from basicsr.archs.input_size import pad_to_multiple
    x = _rand(1, 3, 16, 24)
    padded, size = pad_to_multiple(x, 8, 'test')
    assert padded is x and size == (16, 24)


def test_restormer_global_residual_switch():
    torch.manual_seed(0)
    with_res = build_network({'type': 'Restormer', **SMALL, 'global_residual': True}).eval()
    without = build_network({'type': 'Restormer', **SMALL, 'global_residual': False}).eval()
    without.load_state_dict(with_res.state_dict())
    x = _rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(with_res(x) - without(x), x)


def test_restormer_dual_pixel_has_skip_conv_and_no_residual():
    net = build_network({'type': 'Restormer', **SMALL, 'inp_channels': 6, 'dual_pixel_task': True}).eval()
    assert 'skip_conv.weight' in net.state_dict()
    with torch.no_grad():
        for p in net.output.parameters():
            p.zero_()
        out = net(_rand(1, 6, 16, 16))
    assert out.abs().max() == 0  # a zero head gives zero: nothing is added to it


def test_restormer_rejects_bad_configurations():
    with pytest.raises(TypeError, match='accepted: .*LayerNorm_type'):
        build_network({'type': 'Restormer', 'layernorm_type': 'BiasFree'})
    with pytest.raises(ValueError, match='LayerNorm_type must be one of'):
        build_network({'type': 'Restormer', **SMALL, 'LayerNorm_type': 'Biasfree'})
    with pytest.raises(ValueError, match='not divisible by heads'):
        build_network({'type': 'Restormer', **SMALL, 'dim': 6, 'heads': [1, 2, 4, 5]})
    with pytest.raises(ValueError, match='inp_channels .* must equal out_channels'):
        build_network({'type': 'Restormer', **SMALL, 'inp_channels': 1, 'out_channels': 3})


def test_restormer_takes_inputs_smaller_than_its_multiple():
    from basicsr.archs.input_size import reflect_pad
    net = build_network({'type': 'Restormer', **SMALL}).eval()
    x = _rand(1, 3, 3, 16)
    with torch.no_grad():
        out = net(x)
        padded = net(reflect_pad(x, (0, 0, 0, 5)))
    assert out.shape == x.shape
    torch.testing.assert_close(out, padded[:, :, :3], rtol=0, atol=0)


# ---------------------------------------------------------------------------- LoRARestormer
LORA_SMALL = dict(SMALL, r=[2, 2, 4, 4], lora_alpha=[4, 4, 8, 16])


def test_lora_restormer_state_dict_layout():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL})
    keys = list(net.state_dict())
    assert keys[:3] == ['patch_embed.proj.lora_A', 'patch_embed.proj.lora_B', 'patch_embed.proj.conv.weight']
    sd = net.state_dict()
    # loralib ConvLoRA shapes: A (r*k, in*k), B (out/groups*k, r*k); depth-wise convs have groups = channels
    assert sd['encoder_level1.0.attn.qkv_dwconv.lora_A'].shape == (2 * 3, 24 * 3)
    assert sd['encoder_level1.0.attn.qkv_dwconv.lora_B'].shape == (1 * 3, 2 * 3)
    assert sd['latent.0.ffn.project_in.lora_A'].shape == (4, 64)
    assert not net.patch_embed.proj.conv.weight.requires_grad
    assert net.patch_embed.proj.lora_A.requires_grad


def test_lora_eval_forward_equals_train_forward_and_weights_stay_unmerged():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL})
    _randomize_(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = _rand(2, 3, 21, 13)
    with torch.no_grad():
        train_out = net.train()(x)
        eval_out = net.eval()(x)
        convs = [m for m in net.modules() if isinstance(m, LoRAConv2d)]
        assert convs and all(m.merged for m in convs)
        for k, v in net.state_dict().items():  # eval mode: still the official (unmerged) layout
            assert torch.equal(v, before[k]), k
        again = net.train()(x)
    assert not any(m.merged for m in convs)
    torch.testing.assert_close(eval_out, train_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, train_out)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_lora_merged_weight_follows_loaded_state_dict():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL}).eval()
    x = _rand(1, 3, 16, 16)
    with torch.no_grad():
        net(x)  # caches merged weights
        other = build_network({'type': 'LoRARestormer', **LORA_SMALL})
        _randomize_(other, seed=7)
        net.load_state_dict(other.state_dict())
        torch.testing.assert_close(net(x), other.train()(x), rtol=1e-5, atol=1e-5)


def test_lora_weight_folded_under_inference_mode_is_not_reused_with_autograd():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL}).eval()
    x = _rand(1, 3, 16, 16)
    with torch.inference_mode():
        expected = net(x)
    x.requires_grad_()
    out = net(x)
    out.sum().backward()  # would fail if an inference tensor were saved for backward
    assert torch.equal(out.detach(), expected) and x.grad is not None


def test_lora_conv_matches_an_explicitly_updated_conv():
    conv = LoRAConv2d(6, 9, 3, r=2, lora_alpha=3, padding=1, groups=3, bias=True)
    _randomize_(conv)
    weight = conv.conv.weight + (conv.lora_B @ conv.lora_A).view(conv.conv.weight.shape) * 1.5
    x = _rand(2, 6, 8, 8)
    expected = F.conv2d(x, weight, conv.conv.bias, padding=1, groups=3)
    for mode in (True, False):
        torch.testing.assert_close(conv.train(mode)(x), expected)
    plain = LoRAConv2d(6, 9, 1, r=0)
    assert list(plain.state_dict()) == ['conv.weight', 'conv.bias'] and not plain.merged


def test_lora_trains_only_the_low_rank_factors():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL}).train()
    _randomize_(net)
    net(_rand(1, 3, 16, 16)).mean().backward()
    conv = net.encoder_level1[0].attn.qkv
    assert conv.conv.weight.grad is None
    assert conv.lora_A.grad is not None and conv.lora_B.grad.abs().sum() > 0


def test_lora_merge_weights_false_never_caches():
    net = build_network({'type': 'LoRARestormer', **LORA_SMALL, 'merge_weights': False}).eval()
    with torch.no_grad():
        net(_rand(1, 3, 8, 8))
    assert not any(m.merged for m in net.modules() if isinstance(m, LoRAConv2d))


def test_lora_rejects_wrong_level_lists():
    with pytest.raises(ValueError, match='4 entries'):
        build_network({'type': 'LoRARestormer', **SMALL, 'r': [8, 8, 8]})


# ---------------------------------------------------------------------------- PromptIR
@pytest.mark.parametrize('rtype', ['PromptIR', 'PromptIR_MiOIR'])
def test_promptir_forward_shape(rtype):
    net = build_network({'type': rtype, **PROMPTIR_SMALL, 'decoder': True}).eval()
    with torch.no_grad():
        out = net(_rand(2, 3, 16, 24))
    assert out.shape == (2, 3, 16, 24)


def test_promptir_variants_differ_only_by_the_six_unused_convs():
    official = build_network({'type': 'PromptIR', **PROMPTIR_SMALL, 'decoder': True})
    mioir = build_network({'type': 'PromptIR_MiOIR', **PROMPTIR_SMALL})  # decoder=True by default
    extra = set(official.state_dict()) - set(mioir.state_dict())
    assert {k.rsplit('.', 1)[0] for k in extra} == {'chnl_reduce1', 'chnl_reduce2', 'chnl_reduce3',
                                                   'reduce_noise_channel_1', 'reduce_noise_channel_2',
                                                   'reduce_noise_channel_3'}
    assert set(mioir.state_dict()) < set(official.state_dict())
    mioir.load_state_dict({k: v for k, v in official.state_dict().items() if k not in extra})
    x = _rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(official.eval()(x), mioir.eval()(x))


def test_promptir_official_width_builds_and_runs():
    # the official channel arithmetic is written for dim=48; the generalised one must agree there
    net = build_network({'type': 'PromptIR_MiOIR', 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}).eval()
    assert net.noise_level3.norm1.body.weight.shape == (48 * 4 + 512,)
    assert net.reduce_chan_level3.weight.shape == (192, 48 * 2 + 192, 1, 1)
    with torch.no_grad():
        assert net(_rand(1, 3, 8, 16)).shape == (1, 3, 8, 16)


def test_promptir_clear_errors():
    net = build_network({'type': 'PromptIR', **PROMPTIR_SMALL})  # official default decoder=False
    assert not any(k.startswith('prompt') for k in net.state_dict())
    with pytest.raises(RuntimeError, match='decoder=True'):
        net(_rand(1, 3, 16, 16))
    net = build_network({'type': 'PromptIR', **PROMPTIR_SMALL, 'decoder': True})
    with pytest.raises(ValueError, match='multiples of 8'):
        net(_rand(1, 3, 20, 16))


# ---------------------------------------------------------------------------- DSRIR
def test_dsrir_returns_named_stage_and_variance_outputs():
    net = build_network({'type': 'DSRIR', **DSRIR_SMALL}).eval()
    with torch.no_grad():
        out = net(_rand(2, 3, 16, 24))
    assert isinstance(out, NamedOutputs)
    assert out.names == ('stage:3', 'stage:2', 'stage:1', 'var:3', 'var:2', 'var:1')
    assert main_output(out) is out['stage:3'] and out.pred is out[0]
    assert all(t.shape == (2, 3, 16, 24) for t in out)


def test_dsrir_needs_multiples_of_8():
    net = build_network({'type': 'DSRIR', **DSRIR_SMALL})
    with pytest.raises(ValueError, match='multiples of 8'):
        net(_rand(1, 3, 16, 20))
    with pytest.raises(TypeError, match='accepted: in_c'):
        build_network({'type': 'DSRIR', 'in_channels': 3})


@pytest.mark.parametrize('opt', [
    {'type': 'Restormer', **SMALL, 'inp_channels': 1, 'out_channels': 1},
    {'type': 'LoRARestormer', **LORA_SMALL, 'inp_channels': 1, 'out_channels': 1},
    {'type': 'PromptIR_MiOIR', **PROMPTIR_SMALL, 'inp_channels': 1, 'out_channels': 1},
    {'type': 'DSRIR', **DSRIR_SMALL, 'in_c': 1, 'out_c': 1},
], ids=lambda o: o['type'])
def test_gray_images(opt):
    net = build_network(opt).eval()
    with torch.no_grad():
        out = main_output(net(_rand(2, 1, 16, 24)))
    assert out.shape == (2, 1, 16, 24)


# ---------------------------------------------------------------------------- against ../shared
def _vectors():
    if not VECTORS.is_dir():
        return []
    return sorted(p for p in VECTORS.glob('*_small.pt') if p.name.split('__')[0] in MY_TYPES)


@pytest.mark.parametrize('path', _vectors(), ids=lambda p: p.stem)
def test_parity_vector(path):
    vec = torch.load(path, map_location='cpu', weights_only=True)
    net = build_network({'type': vec['type'], **vec['kwargs']})
    net.load_state_dict(vec['state_dict'], strict=True)
    net.eval()
    cases = [dict(inputs=vec['inputs'], outputs=vec['outputs'], atol=vec['atol'])] + list(vec['extra_cases'])
    for case in cases:
        with torch.no_grad():
            got = net(*case['inputs']['args'], **case['inputs']['kwargs'])
        ref = case['outputs']
        got_leaves = list(got) if isinstance(got, tuple) else [got]
        ref_leaves = [t for part in ref for t in part] if isinstance(ref, (list, tuple)) else [ref]
        assert len(got_leaves) == len(ref_leaves)
        for g, r in zip(got_leaves, ref_leaves):
            torch.testing.assert_close(g, r, rtol=0, atol=case.get('atol', vec['atol']))


def _manifests():
    if not MANIFESTS.is_dir():
        return []
    out = []
    for p in sorted(MANIFESTS.glob('*.json')):
        if json.loads(p.read_text())['registry_type'] in MY_TYPES:
            out.append(p)
    return out


def test_manifests_present_or_skip():
    if not MANIFESTS.is_dir():
        pytest.skip('../shared is not present')
    assert len(_manifests()) == 14  # 10 Restormer, LoRARestormer, PromptIR x2, DSRIR


@pytest.mark.parametrize('path', _manifests(), ids=lambda p: p.stem)
def test_full_configuration_matches_manifest(path):
    manifest = json.loads(path.read_text())
    with torch.device('meta'):
        net = build_network({'type': manifest['registry_type'], **manifest['kwargs']})
    got = [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in net.state_dict().items()]
    assert got == manifest['state_dict']
    assert sum(p.numel() for p in net.parameters()) == manifest['param_count']
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == manifest['trainable_param_count']
