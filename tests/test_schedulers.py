"""Learning-rate schedules against their closed forms."""
import math

import pytest
import torch

from basicsr.engine.schedulers import build_scheduler


def lrs(opt, n, lr=1.0):
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    s = build_scheduler(o, opt)
    out = []
    for _ in range(n):
        out.append(o.param_groups[0]['lr'])
        o.step()
        s.step()
    return out


def test_restormer_cyclic_cosine_two_cycles():
    out = lrs({'type': 'CosineAnnealingRestartCyclicLR', 'periods': [4, 8], 'restart_weights': [1, 1],
               'eta_mins': [1.0, 0.0]}, 12)
    assert out[:4] == [1.0] * 4  # first cycle anneals from 1.0 to eta_min 1.0: constant
    assert out[4] == pytest.approx(1.0) and out[8] == pytest.approx(0.5)
    assert out[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))


def test_true_cosine_and_multistep():
    out = lrs({'type': 'TrueCosineAnnealingLR', 'T_max': 10, 'eta_min': 0.0}, 11)
    assert out[5] == pytest.approx(0.5) and out[10] == pytest.approx(0.0, abs=1e-12)
    out = lrs({'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.5}, 6)
    assert out == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_linear_warmup_cosine():
    out = lrs({'type': 'LinearWarmupCosineLR', 'warmup_iters': 2, 'max_iters': 6, 'warmup_start_lr': 0.0}, 7)
    assert out[:3] == pytest.approx([0.0, 0.5, 1.0]) and out[6] == pytest.approx(0.0, abs=1e-12)


def test_mismatched_lengths_are_reported():
    with pytest.raises(ValueError, match='periods has 2.*restart_weights has 1'):
        lrs({'type': 'CosineAnnealingRestartLR', 'periods': [2, 2], 'restart_weights': [1]}, 1)
