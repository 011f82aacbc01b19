"""Learning-rate schedules against the official scheduler code and torch.

Reference values: the official ``lr_scheduler.py`` of XPixelGroup/BasicSR (MultiStepRestartLR,
CosineAnnealingRestartLR) and swz30/Restormer (CosineAnnealingRestartCyclicLR), NAFNet's TrueCosineAnnealingLR
(``torch.optim.lr_scheduler.CosineAnnealingLR``, as NAFNet's ``base_model.py`` builds it) and torch's
``SequentialLR(LinearLR(0.1 -> 1, 2 steps), CosineAnnealingLR(T_max 4))``, each driven by BasicSR's own
``BaseModel.update_learning_rate(current_iter, warmup_iter)`` for iterations 1..n (the lr read after the call), run
outside the project under torch 2.3.1 and 2.13 (identical values).
"""
import pytest
import torch

from basicsr.engine.schedulers import build_scheduler
from basicsr.models.image_restoration_model import ImageRestorationModel

REFERENCE = {
    # (scheduler options, base lr, warmup_iter) -> lr of iterations 1..n
    'restormer_cyclic': (
        {'type': 'CosineAnnealingRestartCyclicLR', 'periods': [4, 8], 'restart_weights': [1, 1],
         'eta_mins': [1.0, 0.0]}, 1.0, -1,
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5,
         0.30865828381745514, 0.14644660940672627, 0.03806023374435663]),
    'nafnet_true_cosine': (
        {'type': 'TrueCosineAnnealingLR', 'T_max': 10, 'eta_min': 0.0}, 1.0, -1,
        [1.0, 0.9755282581475768, 0.9045084971874737, 0.7938926261462366, 0.6545084971874737, 0.5,
         0.34549150281252633, 0.2061073738537635, 0.09549150281252633, 0.024471741852423234, 0.0]),
    'basicsr_multistep': (
        {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.5}, 1.0, -1, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]),
    'basicsr_multistep_restart': (
        {'type': 'MultiStepRestartLR', 'milestones': [2, 7, 9], 'gamma': 0.5, 'restarts': [0, 5],
         'restart_weights': [1, 0.5]}, 1.0, -1,
        [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.125]),
    'basicsr_cosine_restart': (
        {'type': 'CosineAnnealingRestartLR', 'periods': [4, 6], 'restart_weights': [1, 0.5], 'eta_min': 0.1}, 1.0,
        -1, [1.0, 0.8681980515339464, 0.55, 0.23180194846605365, 0.1, 0.5198557158514987, 0.4375, 0.325,
             0.21250000000000008, 0.1301442841485013]),
    # BasicSR warm-up: initial_lr * k / warmup_iter while k < warmup_iter, the schedule's value from warmup_iter on
    'basicsr_warmup_cosine': (
        {'type': 'CosineAnnealingRestartLR', 'periods': [10], 'restart_weights': [1], 'eta_min': 0.0}, 1.0, 4,
        [0.25, 0.5, 0.75, 0.7938926261462366, 0.6545084971874737, 0.5, 0.34549150281252633, 0.2061073738537635]),
    # ... and a chainable multi-step schedule keeps multiplying the warmed-up lr (BasicSR's behaviour)
    'basicsr_warmup_multistep': (
        {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5}, 2.0, 5,
        [0.4, 0.8, 1.2000000000000002, 1.6, 1.6, 1.6]),
    'torch_linear_then_cosine': (
        {'type': 'LinearWarmupCosineLR', 'warmup_iters': 2, 'max_iters': 6, 'warmup_start_lr': 0.1}, 1.0, -1,
        [0.1, 0.55, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0]),
}


def lrs_through_the_model(opt: dict, n: int, lr: float, warmup_iter: int) -> list:
    """lr of iterations 1..n as the trainer sets it: ``model.update_learning_rate(iter, warmup_iter)``."""
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    model = object.__new__(ImageRestorationModel)  # only the scheduling part of the model is exercised
    model.optimizers, model.schedulers = [o], [build_scheduler(o, opt)]
    out = []
    for it in range(1, n + 1):
        model.update_learning_rate(it, warmup_iter)
        out.append(o.param_groups[0]['lr'])
        o.step()
    return out


@pytest.mark.parametrize('case', sorted(REFERENCE))
def test_schedule_matches_the_official_code(case):
    opt, lr, warmup_iter, expected = REFERENCE[case]
    got = lrs_through_the_model(opt, len(expected), lr, warmup_iter)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_schedule_resumes_from_its_state():
    opt, lr, _, expected = REFERENCE['basicsr_multistep_restart']
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    s = build_scheduler(o, opt)
    for _ in range(6):
        o.step()
        s.step()
    o2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    s2 = build_scheduler(o2, opt)
    o2.load_state_dict(o.state_dict())
    s2.load_state_dict(s.state_dict())
    got = []
    for _ in range(5):
        o2.step()
        s2.step()
        got.append(o2.param_groups[0]['lr'])
    assert got == pytest.approx(expected[7:12])


def test_mismatched_lengths_are_reported():
    with pytest.raises(ValueError, match='periods has 2.*restart_weights has 1'):
        lrs_through_the_model({'type': 'CosineAnnealingRestartLR', 'periods': [2, 2], 'restart_weights': [1]}, 1,
                              1.0, -1)
