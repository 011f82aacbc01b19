"""Per-epoch schedules (MPRNet/DSRIR warm-up cosine, PromptIR linear warm-up cosine) and DSRIR's stage plan."""
import pytest
import torch

from basicsr.engine.epoch_schedulers import dsrir_epoch_changes, epoch_of_iteration, epoch_stage_plan
from basicsr.engine.schedulers import build_scheduler


def _lrs(opt: dict, n: int, lr: float = 2e-4) -> list:
    """Learning rate of iterations 1..n as the model sets them (scheduler stepped before iterations 2..n)."""
    optim = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(optim, opt)
    out = []
    for it in range(1, n + 1):
        if it > 1:
            optim.step()
            sched.step()
        out.append(optim.param_groups[0]['lr'])
    return out


def test_dsrir_epoch_changes_match_the_official_script_and_train_sh():
    # DSRIR train.sh: all-in-one 135 238 314 347; rain/haze 409 722 952 1054; noise (N = 5244) 390 689 908 1005
    assert dsrir_epoch_changes(15144) == [135, 238, 314, 347]
    assert dsrir_epoch_changes(5000) == [409, 722, 952, 1054]
    assert dsrir_epoch_changes(5244) == [390, 689, 908, 1005]


def test_stage_plan_gives_progressive_hook_iterations_and_epoch_segments():
    plan = epoch_stage_plan(15144, [135, 238, 314, 347], [16, 14, 12, 8], [128, 160, 192, 256])
    # iterations per epoch = floor(15144 / batch): 946, 1081, 1262, 1893
    assert plan['iters_per_epoch'] == [[135, 946], [103, 1081], [76, 1262], [33, 1893]]
    assert plan['iters'] == [135 * 946, 103 * 1081, 76 * 1262, 33 * 1893]
    assert plan['total_iter'] == sum(plan['iters']) and plan['total_epochs'] == 347
    assert plan['mini_batch_sizes'] == [16, 14, 12, 8] and plan['batch_size_per_gpu'] == 16
    two = epoch_stage_plan(15144, [135, 238, 314, 347], [16, 14, 12, 8], [128, 160, 192, 256], world_size=2)
    assert two['mini_batch_sizes'] == [8, 7, 6, 4]
    assert two['iters_per_epoch'][0] == [135, 7572 // 8]
    with pytest.raises(ValueError, match='not divisible by the 3 processes'):
        epoch_stage_plan(100, [1, 2], [16, 8], [64, 128], world_size=3)


def test_epoch_of_iteration_follows_segments():
    segs = [[2, 3], [1, 5]]
    assert [epoch_of_iteration(i, segs) for i in range(14)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3]


def test_promptir_lag_epochs_shifts_the_closed_form_by_whole_epochs():
    # the official values (Lightning's lag of one epoch) are checked in test_recipes_official.py
    ipe = 3
    opt = {'type': 'LinearWarmupCosineEpochLR', 'iters_per_epoch': ipe, 'warmup_epochs': 15, 'max_epochs': 150}
    lag1 = _lrs(opt, 40 * ipe)[::ipe]
    lag0 = _lrs({**opt, 'lag_epochs': 0}, 40 * ipe)[::ipe]
    assert lag1[0] == lag1[1] == lag0[0] == 0.0
    assert lag1[1:] == lag0[:-1]
    with pytest.raises(ValueError, match='lag_epochs must be >= 0'):
        _lrs({**opt, 'lag_epochs': -1}, 1)


def test_epoch_scheduler_state_resumes():
    opt = {'type': 'WarmupCosineEpochLR', 'iters_per_epoch': [[2, 3], [4, 2]], 'total_epochs': 6,
           'warmup_epochs': 1, 'eta_min': 0.0}
    optim = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(optim, opt)
    for _ in range(7):
        optim.step()
        sched.step()
    state = sched.state_dict()
    optim2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_scheduler(optim2, opt)
    sched2.load_state_dict(state)
    optim.step()
    sched.step()
    optim2.step()
    sched2.step()
    assert optim2.param_groups[0]['lr'] == pytest.approx(optim.param_groups[0]['lr'])


def test_bad_epoch_schedule_options_name_the_value():
    with pytest.raises(ValueError, match=r'iters_per_epoch must be a positive int or a list of \[num_epochs'):
        _lrs({'type': 'WarmupCosineEpochLR', 'iters_per_epoch': [5], 'total_epochs': 10}, 1)
    with pytest.raises(ValueError, match=r'warmup_epochs=15, max_epochs=10'):
        _lrs({'type': 'LinearWarmupCosineEpochLR', 'iters_per_epoch': 5, 'max_epochs': 10}, 1)


def test_dsrir_schedule_script_prints_the_recipe_values(capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'scripts' / 'dsrir_schedule.py'
    spec = importlib.util.spec_from_file_location('dsrir_schedule', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(['--num-images', '15144'])
    assert out['epoch_changes'] == [135, 238, 314, 347]
    assert out['train.total_iter'] == 397434
    assert 'iters_per_epoch' in capsys.readouterr().out
