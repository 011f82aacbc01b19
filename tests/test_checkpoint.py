"""Atomic checkpoints: round trip, pruning, corruption detected and the previous one used."""
import random

import numpy as np
import pytest
import torch

from basicsr.engine.checkpoint import (capture_rng_state, list_checkpoints, load_latest_checkpoint, restore_rng_state,
                                       save_checkpoint, verified_load)


def test_round_trip_and_keep_last(tmp_path):
    for it in (1, 2, 3, 4):
        save_checkpoint({'iter': it, 'w': torch.full((3, ), float(it))}, tmp_path, it, keep_last=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ['ckpt_00000004.pth', 'ckpt_00000003.pth']
    assert not list(tmp_path.glob('.*tmp*'))
    state = load_latest_checkpoint(tmp_path)
    assert state['iter'] == 4 and torch.equal(state['w'], torch.full((3, ), 4.0))


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, caplog):
    save_checkpoint({'iter': 1}, tmp_path, 1)
    path = save_checkpoint({'iter': 2, 'blob': torch.randn(1000)}, tmp_path, 2)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with caplog.at_level('WARNING', logger='basicsr'):
        state = load_latest_checkpoint(tmp_path)
    assert state['iter'] == 1
    assert 'ckpt_00000002.pth' in caplog.text and 'corrupt or truncated' in caplog.text


def test_bitflip_detected_by_checksum(tmp_path):
    path = save_checkpoint({'iter': 5, 'w': torch.zeros(100)}, tmp_path, 5)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        verified_load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        raise AssertionError('a corrupted checkpoint loaded silently')


def test_rng_state_round_trip():
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


def test_a_kill_between_the_two_writes_never_leaves_a_checkpoint_without_its_digest(tmp_path, monkeypatch):
    """Seen in a random-kill run: the checkpoint renamed into place, the .sha256 not yet written."""
    import basicsr.engine.checkpoint as ckpt
    real, calls = ckpt.atomic_write_bytes, []

    def killed_after_first(data, path):
        if calls:
            raise KeyboardInterrupt('killed')  # stands in for SIGKILL between the two renames
        calls.append(path)
        return real(data, path)

    save_checkpoint({'iter': 3}, tmp_path, 3)
    monkeypatch.setattr(ckpt, 'atomic_write_bytes', killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'iter': 6, 'w': torch.ones(2)}, tmp_path, 6)
    for pth in tmp_path.glob('ckpt_*.pth'):
        assert pth.with_name(pth.name + '.sha256').exists(), pth.name
    monkeypatch.setattr(ckpt, 'atomic_write_bytes', real)
    assert load_latest_checkpoint(tmp_path)['iter'] == 3
    save_checkpoint({'iter': 6}, tmp_path, 6)  # the next save of that iteration rewrites both
    assert load_latest_checkpoint(tmp_path)['iter'] == 6
