"""load_pretrained / convert_checkpoint on random checkpoints written in the official file layouts."""
from collections import OrderedDict

import pytest
import torch

from basicsr.archs import build_network
from basicsr.archs.pretrained import CheckpointMismatchError, extract_state_dict, load_pretrained, read_state_dict
from data_helpers import load_script

SMALL = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 2, 'upscale': 4}


def _random_weights(opt, seed=1):
    torch.manual_seed(seed)
    net = build_network(opt)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    return net.state_dict()


def _same(net, sd):
    return all(torch.equal(v, sd[k]) for k, v in net.state_dict().items())


def _prefixed(sd, prefix):
    return OrderedDict((prefix + k, v) for k, v in sd.items())


LAYOUTS = {
    'raw': lambda sd: sd,
    'params': lambda sd: {'params': sd},
    'params_ema': lambda sd: {'params_ema': sd},
    'state_dict': lambda sd: {'state_dict': sd},
    'model': lambda sd: {'model': sd},
    'net': lambda sd: {'net': sd},
    'dataparallel': lambda sd: _prefixed(sd, 'module.'),
    'ddp_params': lambda sd: {'params': _prefixed(sd, 'module.')},
    'compiled_ddp': lambda sd: _prefixed(_prefixed(sd, '_orig_mod.'), 'module.'),
    # MPRNet / DSRIR training checkpoints: DataParallel weights next to the optimizer state
    'mprnet_training': lambda sd: {'epoch': 250, 'state_dict': _prefixed(sd, 'module.'),
                                   'optimizer': {'state': {0: {'step': torch.tensor(3.)}}, 'param_groups': []}},
}


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_official_layouts_load_strict(tmp_path, layout):
    sd = _random_weights(SMALL)
    path = tmp_path / f'{layout}.pth'
    torch.save(LAYOUTS[layout](sd), path)
    net = build_network(SMALL)
    assert load_pretrained(net, path) is net
    assert _same(net, sd)


def test_auto_prefers_params_ema_over_params(tmp_path):
    ema, plain = _random_weights(SMALL, 1), _random_weights(SMALL, 2)
    path = tmp_path / 'both.pth'
    torch.save({'params': plain, 'params_ema': ema}, path)
    net = load_pretrained(build_network(SMALL), path)
    assert _same(net, ema)
    net = load_pretrained(build_network(SMALL), path, key='params')
    assert _same(net, plain)


def test_swinir_checkpoint_with_buffers_loads_strict(tmp_path):
    opt = {'type': 'SwinIR', 'embed_dim': 8, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'img_size': 8,
           'upscale': 2, 'upsampler': 'pixelshuffle'}
    sd = _random_weights(opt)
    assert any(k.endswith('attn_mask') for k in sd) and any(k.endswith('relative_position_index') for k in sd)
    torch.save({'params': sd}, tmp_path / 'swinir.pth')
    assert _same(load_pretrained(build_network(opt), tmp_path / 'swinir.pth'), sd)


def test_other_configuration_names_first_mismatching_key_and_both_shapes(tmp_path):
    torch.save({'params': _random_weights(dict(SMALL, num_feat=16))}, tmp_path / 'wide.pth')
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(build_network(SMALL), tmp_path / 'wide.pth')
    message = str(info.value)
    assert "first mismatching key 'conv_first.weight'" in message
    assert 'checkpoint shape (16, 3, 3, 3), network shape (8, 3, 3, 3)' in message
    assert info.value.mismatched[0] == ('conv_first.weight', (16, 3, 3, 3), (8, 3, 3, 3))


def test_missing_and_unexpected_keys_are_named(tmp_path):
    torch.save({'params': _random_weights(dict(SMALL, num_block=3, upscale=2))}, tmp_path / 'deeper.pth')
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(build_network(SMALL), tmp_path / 'deeper.pth')
    assert 'upconv2.weight' in info.value.missing
    assert 'body.2.conv1.weight' in info.value.unexpected
    assert 'missing keys (2): upconv2.weight, upconv2.bias' in str(info.value)


def test_non_strict_loads_matching_entries(tmp_path):
    sd = _random_weights(dict(SMALL, num_block=3))
    torch.save(sd, tmp_path / 'deeper.pth')
    net = load_pretrained(build_network(SMALL), tmp_path / 'deeper.pth', strict=False)
    assert torch.equal(net.conv_first.weight, sd['conv_first.weight'])


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_pretrained(build_network(SMALL), tmp_path / 'nope.pth')


def test_unknown_key_lists_available_keys(tmp_path):
    torch.save({'params': _random_weights(SMALL)}, tmp_path / 'p.pth')
    with pytest.raises(KeyError, match="no key 'params_ema'.*'params'"):
        read_state_dict(tmp_path / 'p.pth', key='params_ema')


def test_no_state_dict_found_is_explained():
    with pytest.raises(ValueError, match='no state dict found.*epoch'):
        extract_state_dict({'epoch': 3, 'optimizer': {}}, 'auto', 'ckpt.pth')


def test_unreadable_file_is_reported(tmp_path):
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot be read'):
        read_state_dict(tmp_path / 'junk.pth')


def test_unknown_network_kwargs_list_accepted_ones():
    with pytest.raises(TypeError, match=r"'num_feats'.*accepted: num_in_ch, num_out_ch, num_feat, num_block, upscale"):
        build_network({'type': 'MSRResNet', 'num_feats': 8})


def test_convert_checkpoint_writes_params_file(tmp_path):
    sd = _random_weights(SMALL)
    torch.save(LAYOUTS['mprnet_training'](sd), tmp_path / 'official.pth')
    convert = load_script('convert_checkpoint').main
    rc = convert([str(tmp_path / 'official.pth'), str(tmp_path / 'out.pth'), '--type', 'MSRResNet',
                  '--kwargs', '{"num_feat": 8, "num_block": 2}'])
    assert rc == 0
    out = torch.load(tmp_path / 'out.pth', weights_only=True)
    assert list(out) == ['params'] and list(out['params']) == list(sd)
    assert _same(load_pretrained(build_network(SMALL), tmp_path / 'out.pth'), sd)


def test_convert_checkpoint_refuses_wrong_configuration(tmp_path, capsys):
    torch.save(_random_weights(SMALL), tmp_path / 'official.pth')
    convert = load_script('convert_checkpoint').main
    rc = convert([str(tmp_path / 'official.pth'), str(tmp_path / 'out.pth'), '--type', 'MSRResNet'])
    assert rc == 2  # a user mistake (basicsr/utils/cli.py)
    assert "first mismatching key 'conv_first.weight'" in capsys.readouterr().err
    assert not (tmp_path / 'out.pth').exists()
