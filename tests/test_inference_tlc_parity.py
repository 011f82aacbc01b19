"""The official ``*Local`` type names against outputs recorded from the official classes (megvii-research/TLC
for HINet/MPRNet/Restormer, megvii-research/NAFNet for NAFNet/Baseline) by ``scripts/make_tlc_parity.py``.

Every recorded input is larger than the base size at some layer (where TLC changes the output; the script
records how much, ``max_abs_diff_to_plain_network``) and most are not multiples of the network's size factor
(the official classes zero-pad inside). The tolerance covers float32 rounding of the integral-image box
filter and of the batched patch processing; outputs are of order 1-5.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from basicsr.archs import build_network

DATA = Path(__file__).resolve().parent / 'data' / 'tlc_parity'
TYPES = ['HINetLocal', 'MPRNetLocal', 'RestormerLocal', 'NAFNetLocal', 'BaselineLocal']
ATOL = 1e-5


def _cases():
    for type_name in TYPES:
        with safe_open(str(DATA / f'{type_name}.safetensors'), 'pt') as f:
            for case in json.loads(f.metadata()['cases']):
                yield pytest.param(type_name, case, id=f"{type_name}-{case['key']}-"
                                   f"train{case['kwargs']['train_size'][-1]}-{case['size'][0]}x{case['size'][1]}"
                                   f"{'-fast' if case['kwargs']['fast_imp'] else ''}")


def _load(type_name: str):
    with safe_open(str(DATA / f'{type_name}.safetensors'), 'pt') as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        kwargs = json.loads(f.metadata()['base_kwargs'])
    state = {k[len('state.'):]: v for k, v in tensors.items() if k.startswith('state.')}
    return tensors, kwargs, state


@pytest.mark.parametrize('type_name, case', list(_cases()))
def test_local_type_matches_the_official_class(type_name, case):
    tensors, kwargs, state = _load(type_name)
    net = build_network({'type': type_name, **kwargs, **case['kwargs']})
    net.load_state_dict(state, strict=True)
    net.eval()
    x = tensors[f"{case['key']}.input"]
    with torch.no_grad():
        out = net(x)
    if case['structure'] == 'list':
        assert isinstance(out, (list, tuple)) and len(out) == case['num_outputs']
        outs = list(out)
    else:
        assert isinstance(out, torch.Tensor)
        outs = [out]
    for i, got in enumerate(outs):
        torch.testing.assert_close(got, tensors[f"{case['key']}.output{i}"], atol=ATOL, rtol=0)


@pytest.mark.parametrize('type_name', TYPES)
def test_vectors_record_sizes_where_tlc_changes_the_output(type_name):
    with safe_open(str(DATA / f'{type_name}.safetensors'), 'pt') as f:
        cases = json.loads(f.metadata()['cases'])
    assert max(c['max_abs_diff_to_plain_network'] for c in cases) > 1000 * ATOL
    assert any(c['size'][0] % 8 or c['size'][1] % 8 for c in cases)


def test_parity_vectors_stay_small():
    assert sum(p.stat().st_size for p in DATA.glob('*.safetensors')) < 2 * 1024 ** 2
