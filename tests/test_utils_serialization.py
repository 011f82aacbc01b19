"""safetensors as the shared weight format, and training states that load with ``weights_only=True``."""
import json
import random

import numpy as np
import pytest
import torch

from basicsr.archs import build_network
from basicsr.archs.pretrained import load_pretrained, read_checkpoint
from basicsr.utils.serialization import (GROUPS_KEY, NETWORK_KEY, UnreadableFileError, pickled_globals, read_weights,
                                         write_weights)
from data_helpers import load_script
from engine_helpers import tiny_options

NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


def _weights(seed):
    torch.manual_seed(seed)
    return build_network(NET).state_dict()


def _equal(a, b):
    return list(sorted(a)) == list(sorted(b)) and all(torch.equal(a[k], b[k]) for k in a)


def test_grouped_weights_round_trip_and_load_the_ema_copy(tmp_path):
    params, ema = _weights(0), _weights(1)
    write_weights({'params': params, 'params_ema': ema}, tmp_path / 'w.safetensors', {'note': 'x'})
    state, meta = read_weights(tmp_path / 'w.safetensors')
    assert meta[GROUPS_KEY] == 'params,params_ema' and meta['note'] == 'x'
    assert _equal(state['params'], params) and _equal(state['params_ema'], ema)
    assert _equal(load_pretrained(build_network(NET), tmp_path / 'w.safetensors').state_dict(), ema)
    net = load_pretrained(build_network(NET), tmp_path / 'w.safetensors', key='params')
    assert _equal(net.state_dict(), params)


def test_raw_safetensors_state_dict_loads(tmp_path):
    from safetensors.torch import save_file
    sd = _weights(2)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / 'raw.safetensors'))
    assert _equal(load_pretrained(build_network(NET), tmp_path / 'raw.safetensors').state_dict(), sd)


def test_truncated_safetensors_is_reported(tmp_path):
    write_weights(_weights(0), tmp_path / 'w.safetensors')
    data = (tmp_path / 'w.safetensors').read_bytes()
    (tmp_path / 'w.safetensors').write_bytes(data[:len(data) // 2])
    with pytest.raises(UnreadableFileError, match='w.safetensors cannot be read as safetensors'):
        read_checkpoint(tmp_path / 'w.safetensors')


def test_convert_official_layout_to_safetensors_and_back(tmp_path, capsys):
    sd = _weights(3)
    torch.save({'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 7}, tmp_path / 'official.pth')
    script = load_script('convert_checkpoint')
    rc = script.main([str(tmp_path / 'official.pth'), str(tmp_path / 'm.safetensors'), '--type', 'NAFNet',
                      '--kwargs', json.dumps({k: v for k, v in NET.items() if k != 'type'})])
    assert rc == 0, capsys.readouterr().err
    state, meta = read_weights(tmp_path / 'm.safetensors')
    assert json.loads(meta[NETWORK_KEY]) == NET and _equal(state, sd)
    assert script.main([str(tmp_path / 'm.safetensors'), str(tmp_path / 'back.pth')]) == 0  # spec from the file
    back = torch.load(tmp_path / 'back.pth', weights_only=True)
    assert list(back) == ['params'] and _equal(back['params'], sd)


def test_pickled_globals_lists_what_a_torch_file_refers_to(tmp_path):
    torch.save({'w': torch.zeros(2)}, tmp_path / 'ok.pth')
    names = pickled_globals((tmp_path / 'ok.pth').read_bytes())
    assert 'torch._utils._rebuild_tensor_v2' in names and all(n.startswith(('torch.', 'collections.')) for n in names)


def test_rng_state_of_old_checkpoints_still_restores():
    from basicsr.engine.checkpoint import capture_rng_state, restore_rng_state
    state = capture_rng_state()
    state['numpy'] = np.random.get_state()  # the tuple with a numpy array that older checkpoints hold
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


@pytest.mark.slow
def test_training_states_load_weights_only_and_latest_network_as_safetensors(tmp_path):
    from basicsr.engine.checkpoint import list_checkpoints
    from basicsr.engine.trainer import Trainer
    from basicsr.utils.options import parse_options
    opt_file = tiny_options(tmp_path, name='st', total_iter=2, ckpt_freq=2, extra={'logger.save_format': 'safetensors'})
    opt = parse_options(opt_file, root=tmp_path)
    Trainer(opt).train()
    ckpt = list_checkpoints(opt['path']['training_states'])[0]
    state = torch.load(ckpt, weights_only=True)  # no pickled class: numpy RNG state, sampler position, ...
    assert state['iter'] == 2
    models = tmp_path / 'experiments' / 'st' / 'models'
    assert not (models / 'net_g_latest.pth').exists()
    latest, meta = read_weights(models / 'net_g_latest.safetensors')
    assert sorted(latest) == ['params', 'params_ema'] and json.loads(meta[NETWORK_KEY])['type'] == 'NAFNet'
    assert _equal(latest['params_ema'], state['model']['networks']['params_ema'])
