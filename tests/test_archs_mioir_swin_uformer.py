"""MiOIR prompt-learning SwinIR and Uformer (``SwinIR_EP/AP``, ``Uformer_EP/AP``): layout, calls, and that the
prompt modulation is the only difference from the plain networks."""
import json
from pathlib import Path

import warnings

import pytest
import torch
from torch import nn

from basicsr.archs import build_network
from basicsr.archs.conditions import network_conditions
from basicsr.archs.prompt_blocks import PROMPT_NF, PromptPool, explicit_prompt_maps
from basicsr.inference.tlc import to_local
from basicsr.inference.tlc_extra import LocalPromptPool

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
MANIFESTS = SHARED / 'reference' / 'arch_manifests'

TINY = {
    'SwinIR': dict(embed_dim=12, depths=[2, 1], num_heads=[2, 3], window_size=4, mlp_ratio=2, img_size=16,
                   upscale=1, upsampler='pixelshuffle'),
    'Uformer': dict(img_size=32, embed_dim=4, depths=[1, 2, 1, 1, 1, 1, 1, 2, 1], num_heads=[1] * 9, win_size=2,
                    modulator=True),
}
SHAPE = {'SwinIR': (2, 3, 16, 24), 'Uformer': (2, 3, 32, 64)}
VARIANTS = [(base, kind) for base in ('SwinIR', 'Uformer') for kind in ('EP', 'AP')]
TASKS = torch.tensor([3, 6])  # rain, sr


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _build(base, kind=None, **overrides):
    torch.manual_seed(0)
    name = base if kind is None else f'{base}_{kind}'
    return build_network({'type': name, **TINY[base], **overrides}).eval()


def _prompt_sites(base, embed_dim=12, depths=2):
    """(module path of the Linear owner, key, channels) of every official modulation site of a tiny config."""
    if base == 'SwinIR':
        return ([(f'layers.{i}.', '', embed_dim) for i in range(depths)]
                + [('', '_after_body', embed_dim), ('', '_before_upsample', 64), ('', '_last', 3)])
    e = 4
    return [('', str(k), c) for k, c in enumerate([16 * e, 16 * e, 8 * e, 4 * e, 2 * e, 3])]


def _randomize_prompt_linears(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'prompt_' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _call(net, x, kind):
    return net(x, task=TASKS[:x.shape[0]]) if kind == 'EP' else net(x)


# ------------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize('base,kind', VARIANTS)
def test_state_dict_is_the_plain_network_plus_prompt_modules(base, kind):
    plain = list(_build(base).state_dict())
    sd = _build(base, kind).state_dict()
    extractors = ['F_ext_net'] if base == 'SwinIR' else [f'F_ext_net{i}' for i in range(1, 6)]
    prompt_keys = [f'{e}.conv{j}.{p}' for e in extractors for j in (1, 2, 3) for p in ('weight', 'bias')]
    for owner, key, channels in _prompt_sites(base):
        for kind_ in ('scale', 'shift'):
            prompt_keys += [f'{owner}prompt_{kind_}{key}.weight', f'{owner}prompt_{kind_}{key}.bias']
            assert sd[f'{owner}prompt_{kind_}{key}.weight'].shape == (channels, PROMPT_NF)
    assert sorted(k for k in sd if k not in plain) == sorted(prompt_keys)
    assert [k for k in sd if k in plain] == plain  # the plain network's entries, in its order
    assert list(sd)[0] == f'{extractors[0]}.conv1.weight'  # official order: the extractors come first
    assert sd[f'{extractors[0]}.conv1.weight'].shape[1] == (1 if kind == 'EP' else 3)


@pytest.mark.parametrize('name', [f'{b}_{k}__mioir' for b in ('SRResNet', 'Restormer', 'SwinIR', 'Uformer')
                                  for k in ('EP', 'AP')])
def test_manifest_state_dict_matches_official(name):
    path = MANIFESTS / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    manifest = json.loads(path.read_text())
    with torch.device('meta'):
        net = build_network({'type': manifest['registry_type'], **manifest['kwargs']})
    got = [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in net.state_dict().items()]
    assert got == manifest['state_dict']
    assert sum(p.numel() for p in net.parameters()) == manifest['param_count']


# -------------------------------------------------------------------------------------------------- calls
@pytest.mark.parametrize('base,kind', VARIANTS)
def test_output_shape(base, kind):
    x = _rand(*SHAPE[base])
    with torch.no_grad():
        assert _call(_build(base, kind), x, kind).shape == x.shape


def test_swinir_prompt_variant_upscales():
    x = _rand(1, 3, 8, 12)
    with torch.no_grad():
        assert _call(_build('SwinIR', 'AP', upscale=2), x, 'AP').shape == (1, 3, 16, 24)


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_explicit_prompt_task_ids_equal_the_official_map_call(base):
    net = _build(base, 'EP')
    x = _rand(*SHAPE[base])
    maps = explicit_prompt_maps(TASKS)
    with torch.no_grad():
        by_task = net(x, task=TASKS)
        assert torch.equal(by_task, net([x, maps]))
        assert torch.equal(by_task, net([x, maps.unsqueeze(1)]))
        assert not torch.allclose(by_task[:1], net(x[:1], task=[0]), atol=1e-4)  # the task does matter


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_adaptive_prompt_tensor_call_equals_image_as_prompt(base):
    net = _build(base, 'AP')
    x = _rand(*SHAPE[base])
    with torch.no_grad():
        assert torch.equal(net(x), net([x, x]))


@pytest.mark.parametrize('base,kind', VARIANTS)
def test_only_explicit_prompt_networks_take_the_task_from_the_batch(base, kind):
    assert network_conditions(_build(base, kind)) == (('task',) if kind == 'EP' else ())


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_explicit_prompt_without_task_is_an_actionable_error(base):
    with pytest.raises(ValueError, match='task='):
        _build(base, 'EP')(_rand(*SHAPE[base]))


@pytest.mark.parametrize('upsampler', ['', 'pixelshuffledirect'])
def test_swinir_prompt_variants_need_the_pixelshuffle_path(upsampler):
    with pytest.raises(ValueError, match="upsampler='pixelshuffle' only"):
        _build('SwinIR', 'EP', upsampler=upsampler)


# ------------------------------------------------------------------------------- modulation vs plain network
def _plain_sharing_weights(base, net):
    plain = _build(base)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k in plain.state_dict()}, strict=True)
    return plain


def _zero_prompt_linears(net):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'prompt_' in name:
                p.zero_()


@pytest.mark.parametrize('base,kind', VARIANTS)
def test_zero_modulation_gives_exactly_the_plain_network(base, kind):
    net = _build(base, kind)
    _randomize_prompt_linears(net)
    plain = _plain_sharing_weights(base, net)
    x = _rand(*SHAPE[base])
    with torch.no_grad():
        assert not torch.allclose(_call(net, x, kind), plain(x), atol=1e-4)
        _zero_prompt_linears(net)
        assert torch.equal(_call(net, x, kind), plain(x))


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_every_official_site_modulates(base):
    net = _build(base, 'AP')
    plain = _plain_sharing_weights(base, net)
    x = _rand(*SHAPE[base])
    with torch.no_grad():
        expected = plain(x)
        for owner, key, channels in _prompt_sites(base):
            _zero_prompt_linears(net)
            net.get_submodule(f'{owner}prompt_shift{key}'.strip('.')).bias.copy_(_rand(channels) - 0.5)
            assert not torch.allclose(net(x), expected, atol=1e-4), f'site {owner}{key} has no effect'


class _ConstantMapPool(nn.Module):
    """The global mean spread over an (h, w) grid, channel-last, as a TLC-converted pool returns it."""

    def forward(self, x):
        return x.mean(dim=(2, 3))[:, None, None, :].expand(-1, x.shape[2], x.shape[3], -1)


@pytest.mark.parametrize('base,kind', VARIANTS)
def test_spatial_prompt_map_of_the_global_vector_equals_the_vector(base, kind):
    net = _build(base, kind)
    _randomize_prompt_linears(net)
    x = _rand(*SHAPE[base])
    with torch.no_grad():
        expected = _call(net, x, kind)
        for module in net.modules():
            if hasattr(module, 'pool') and type(module).__name__ == 'PromptExtractor':
                module.pool = _ConstantMapPool()
        torch.testing.assert_close(_call(net, x, kind), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('base,overrides', [('Uformer', {}), ('SwinIR', dict(depths=[1], num_heads=[2]))])
def test_one_image_one_window_high_and_several_wide(base, overrides):
    """Window partition of (1, win, k*win, C) tokens (Uformer's bottleneck on a 32x64 input here) must not
    rely on a view of a non-contiguous tensor."""
    net = _build(base, 'EP', **overrides)
    x = _rand(1, 3, 32, 64) if base == 'Uformer' else _rand(1, 3, 4, 8)
    with torch.no_grad():
        assert net(x, task=[1]).shape == x.shape


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_tlc_extra_makes_adaptive_prompts_local_through_the_token_sites(base):
    net = _build(base, 'AP')
    _randomize_prompt_linears(net)
    local = to_local(net, train_size=(1, 3, 32, 32), extra=True)
    extractor = local.F_ext_net if base == 'SwinIR' else local.F_ext_net1
    assert isinstance(extractor.pool, LocalPromptPool)
    small, large = _rand(1, 3, 32, 32), _rand(1, 3, 96, 128, seed=1)
    with torch.no_grad():
        assert torch.equal(local(small), net(small))  # the window covers the whole map: the global prompt
        assert (local(large) - net(large)).abs().max() > 1e-4


@pytest.mark.parametrize('base', ['SwinIR', 'Uformer'])
def test_tlc_calibrates_explicit_prompt_networks_with_a_task_and_keeps_their_prompt(base):
    net = _build(base, 'EP')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # nothing to convert: TLC says so
        local = to_local(net, train_size=(1, 3, 32, 32), extra=True)
    extractor = local.F_ext_net if base == 'SwinIR' else local.F_ext_net1
    assert type(extractor.pool) is PromptPool
    x = _rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(local(x, task=[5]), net(x, task=[5]))


def test_uformer_sites_read_the_official_extractors():
    """Site 0 (bottleneck) and 1 (decoder 0) read F_ext_net1, sites 2-5 read F_ext_net2-5."""
    net = _build('Uformer', 'AP')
    x = _rand(1, 3, 32, 32)
    feeds = {'0': 1, '1': 1, '2': 2, '3': 3, '4': 4, '5': 5}
    with torch.no_grad():
        for key, source in feeds.items():
            _zero_prompt_linears(net)
            getattr(net, f'prompt_scale{key}').weight.normal_(0, 0.5)
            before = net(x)
            for i in range(1, 6):  # another extractor's output must not matter, the site's own must
                bias = getattr(net, f'F_ext_net{i}').conv3.bias
                saved = bias.clone()
                bias += 1.0
                changed = not torch.equal(net(x), before)
                bias.copy_(saved)
                assert changed == (i == source), f'site {key} and F_ext_net{i}'
