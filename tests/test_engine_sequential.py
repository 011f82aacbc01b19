"""MiOIR sequential learning: stage plan, stage-to-stage initialisation, fresh optimiser, skip/resume, errors."""
from pathlib import Path

import pytest
import torch
import yaml

from engine_helpers import make_clean_images

from basicsr.engine.checkpoint import list_checkpoints, verified_load
from basicsr.engine.sequential import plan_stages, train_sequential
from basicsr.utils.options import OptionError, parse_options

TASKS = {'light': 10, 'medium': 25, 'heavy': 50}   # task name -> Gaussian noise sigma
LR = 1e-3


def seq_options(root: Path, name: str = 'seq', order=('heavy', 'light', 'medium'), stage_iters=(2, 2, 3),
                extra: dict = None) -> Path:
    """A 3-task sequential option file: tiny NAFNet, 32 px images, Adam with cosine restarts, EMA."""
    data = make_clean_images(root / 'clean', n=4, size=32)
    tasks = [{'name': t, 'label': i, 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
              'degradation': {'type': 'GaussianNoise', 'sigma': s}} for i, (t, s) in enumerate(TASKS.items())]
    opt = {
        'name': name, 'model_type': 'ImageRestorationModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 5,
        'datasets': {'train': {'name': 'noise3', 'type': 'MultiTaskDataset', 'tasks': tasks, 'gt_size': 16,
                               'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                               'batch_size_per_gpu': 2}},
        'network_g': {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]},
        'path': {'experiments_root': str(root / 'experiments' / name)},
        'train': {'optim_g': {'type': 'Adam', 'lr': LR, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [100], 'restart_weights': [1],
                                'eta_min': 1e-6},
                  'total_iter': sum(stage_iters), 'ema_decay': 0.5,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False, 'keep_last': 5},
        'sequential': {'order': list(order), 'stage_iters': list(stage_iters)},
    }
    for key, value in (extra or {}).items():
        node = opt
        *parents, last = key.split('.')
        for p in parents:
            node = node[p]
        node[last] = value
    path = root / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def final_weights(stage_root: Path) -> dict:
    return torch.load(stage_root / 'models' / 'net_g_latest.pth', weights_only=True)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_stage_k_trains_on_the_first_k_tasks_with_their_own_labels(tmp_path):
    from basicsr.data import build_dataset
    stages = plan_stages(parse_options(seq_options(tmp_path), is_train=True))
    assert [s.tasks for s in stages] == [['heavy'], ['heavy', 'light'], ['heavy', 'light', 'medium']]
    for stage in stages:
        ds = build_dataset(stage.opt['datasets']['train'])
        assert ds.task_names == stage.tasks
        # labels are those of the full list (heavy = 2), not positions in the subset
        assert [t.label for t in ds.tasks] == [list(TASKS).index(t) for t in stage.tasks]
        assert stage.root == tmp_path / 'experiments' / 'seq' / f'stage{stage.index}_{stage.task}'
        assert stage.opt['train']['total_iter'] == [2, 2, 3][stage.index - 1]
        assert stage.opt['train']['scheduler']['periods'] == [stage.opt['train']['total_iter']]
        assert 'sequential' not in stage.opt
    assert stages[0].opt['path'].get('pretrain_network_g') is None
    assert stages[2].opt['path']['pretrain_network_g'] == str(stages[1].weights)
    assert stages[2].opt['path']['param_key_g_ema'] == 'params_ema'


def test_stage_periods_cut_stages_and_repeat_restart_weights(tmp_path):
    opt = parse_options(seq_options(tmp_path, stage_iters=(2, 2, 4), extra={'sequential.stage_periods': 2}))
    scheds = [s.opt['train']['scheduler'] for s in plan_stages(opt)]
    assert [s['periods'] for s in scheds] == [[2], [2], [2, 2]]
    assert scheds[2]['restart_weights'] == [1, 1]
    opt = parse_options(seq_options(tmp_path, stage_iters=(2, 2, 4),
                                    extra={'sequential.stage_periods': [[2], [1, 1], [3, 1]]}))
    assert [s.opt['train']['scheduler']['periods'] for s in plan_stages(opt)] == [[2], [1, 1], [3, 1]]
    # iteration counts written as floats (1e5) are whole numbers
    opt = parse_options(seq_options(tmp_path, stage_iters=(2.0, 2, 4.0), extra={'sequential.stage_periods': 2.0}))
    stages = plan_stages(opt)
    assert [s.opt['train']['total_iter'] for s in stages] == [2, 2, 4]
    assert stages[2].opt['train']['scheduler']['periods'] == [2, 2]
    assert all(type(p) is int for p in stages[2].opt['train']['scheduler']['periods'])


def test_each_stage_starts_from_the_previous_final_weights_with_a_fresh_optimiser(tmp_path):
    opt = parse_options(seq_options(tmp_path), is_train=True)
    runs = train_sequential(opt)
    assert [r.skipped for r in runs] == [False, False, False]
    for prev, cur in zip(runs, runs[1:]):
        end = final_weights(prev.stage.root)
        first = verified_load(cur.stage.root / 'training_states' / 'ckpt_00000001.pth')
        # one Adam step away from the previous stage's end: the first step of the new stage
        # uses a fresh optimiser (step count 1) and the initial learning rate
        (adam, ) = first['model']['optimizers']
        assert {int(s['step']) for s in adam['state'].values()} == {1}
        assert adam['param_groups'][0]['lr'] == pytest.approx(LR)
        assert first['model']['schedulers'][0]['last_epoch'] == 0
        # so the network moved by at most lr per parameter (Adam's step size bound) from the previous end
        params = first['model']['networks']['params']
        for k, v in end['params'].items():
            assert (params[k] - v).abs().max() <= LR * 1.01, k
        # and the EMA copy continues the previous EMA (not a copy of the network): ema = d * ema_prev + (1 - d) * net
        ema = first['model']['networks']['params_ema']
        for k, v in end['params_ema'].items():
            torch.testing.assert_close(ema[k], 0.5 * v + 0.5 * params[k], rtol=0, atol=1e-6)


def test_rerun_skips_finished_stages_and_resumes_to_the_straight_result(tmp_path):
    straight = train_sequential(parse_options(seq_options(tmp_path / 'a'), is_train=True))
    reference = final_weights(straight[-1].stage.root)

    opt_path = seq_options(tmp_path / 'b')
    first = train_sequential(parse_options(opt_path, is_train=True))
    stage3 = first[-1].stage.root
    # interrupted during stage 3: only its first checkpoint survived
    for ckpt in list_checkpoints(stage3 / 'training_states')[:-1]:
        ckpt.unlink()
    (stage3 / 'models' / 'net_g_latest.pth').unlink()
    done = {r.stage.index: sorted(p.name for p in (r.stage.root / 'training_states').iterdir()) for r in first[:2]}

    again = train_sequential(parse_options(opt_path, is_train=True))
    assert [r.skipped for r in again] == [True, True, False]
    assert {r.stage.index: sorted(p.name for p in (r.stage.root / 'training_states').iterdir())
            for r in again[:2]} == done
    assert_same(final_weights(stage3)['params'], reference['params'])
    assert_same(final_weights(stage3)['params_ema'], reference['params_ema'])
    assert [r.skipped for r in train_sequential(parse_options(opt_path, is_train=True))] == [True] * 3


def test_later_stages_trained_from_other_weights_are_refused(tmp_path):
    import shutil
    opt_path = seq_options(tmp_path, stage_iters=(1, 1, 1))
    first = train_sequential(parse_options(opt_path, is_train=True))
    shutil.rmtree(first[0].stage.root)   # stage 1 is retrained: stages 2 and 3 no longer follow from it
    with pytest.raises(RuntimeError, match=r'stage 2/3 .* has checkpoints in .*stage2_light.* delete'):
        train_sequential(parse_options(opt_path, is_train=True))


def test_each_stage_folder_holds_its_resolved_options(tmp_path):
    runs = train_sequential(parse_options(seq_options(tmp_path, stage_iters=(1, 1, 1)), is_train=True))
    for run in runs:
        written = yaml.safe_load((run.stage.root / 'options_resolved.yml').read_text())
        assert [t['name'] for t in written['datasets']['train']['tasks']] == run.stage.tasks
        assert written['train']['total_iter'] == 1
    assert (tmp_path / 'experiments' / 'seq' / 'options_resolved.yml').is_file()


@pytest.mark.parametrize('extra, message', [
    ({'sequential.order': ['heavy', 'lihgt', 'medium']}, "'sequential.order[1]': 'lihgt' is not a task"),
    ({'sequential.order': ['heavy', 'light']}, "leaves out the tasks ['medium']"),
    ({'sequential.order': ['heavy', 'light', 'light']}, 'more than once'),
    ({'sequential.stage_iters': [2, 2]}, "'sequential.stage_iters' has 2 entries"),
    ({'train.total_iter': 10}, "'train.total_iter' (10) must equal the sum"),
    ({'sequential.stage_periods': 3}, "does not divide sequential.stage_iters[0, 1]"),
    ({'sequential.stage_periods': [[2], [2], [2]]}, "'sequential.stage_periods[2]'"),
    ({'train.scheduler.restart_weights': [1, 0.5], 'train.scheduler.periods': [50, 50]},
     "'train.scheduler.restart_weights' must hold a single value"),
    ({'sequential.orders': ['heavy']}, "unknown key 'sequential.orders'"),
    ({'sequential.stage_iters': [2, 2.5, 3], 'train.total_iter': 7.5}, 'must be a list of positive integers'),
])
def test_bad_sequential_options_name_the_key(tmp_path, extra, message):
    with pytest.raises(OptionError) as exc:
        parse_options(seq_options(tmp_path, extra=extra), is_train=True)
    assert message in str(exc.value)


def test_sequential_needs_a_multitask_dataset(tmp_path):
    path = seq_options(tmp_path)
    opt = yaml.safe_load(path.read_text())
    opt['datasets']['train'] = {'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(tmp_path / 'clean'),
                                'degradation': {'type': 'GaussianNoise', 'sigma': 25}}
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionError, match="needs 'datasets.train' of type MultiTaskDataset"):
        parse_options(path, is_train=True)


def test_pretrained_ema_key_initialises_the_ema_copy(tmp_path):
    from basicsr.models.image_restoration_model import ImageRestorationModel
    from basicsr.archs import build_network
    net_opt = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}
    a, b = build_network(net_opt), build_network(net_opt)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    torch.save({'params': a.state_dict(), 'params_ema': b.state_dict()}, tmp_path / 'w.pth')
    base = {'network_g': net_opt, 'is_train': True, 'num_gpu': 0,
            'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'ema_decay': 0.9,
                      'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
            'path': {'pretrain_network_g': str(tmp_path / 'w.pth'), 'param_key_g': 'params'}}
    plain = ImageRestorationModel(base)
    assert_same(plain.net_g_ema.state_dict(), a.state_dict())   # default: EMA = copy of the loaded network
    base['path']['param_key_g_ema'] = 'params_ema'
    model = ImageRestorationModel(base)
    assert_same(model.net_g.state_dict(), a.state_dict())
    assert_same(model.net_g_ema.state_dict(), b.state_dict())
    base['train']['ema_decay'] = 0
    with pytest.raises(ValueError, match='param_key_g_ema'):
        ImageRestorationModel(base)


RECIPES = Path(__file__).resolve().parents[1] / 'options' / 'train' / 'MiOIR'


@pytest.mark.parametrize('net, optim, order, stage, last_periods, batch', [
    # MiOIR exp 003 (options/gen_train.py): r->j->b->s->n->h->d, 6 x 100k + 400k (4 periods) = M's 1M
    ('Restormer_AP', 'AdamW', ['rain', 'jpeg', 'blur', 'sr', 'noise', 'haze', 'dark'], 100_000, 4, 4),
    # MiOIR exp 001: s->b->n->j->r->h->d, 6 x 250k + 1M (4 periods) = M's 2.5M
    ('SRResNet_AP', 'Adam', ['sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark'], 250_000, 4, 8),
])
def test_mioir_recipes_follow_the_official_stages(net, optim, order, stage, last_periods, batch):
    mixed = parse_options(RECIPES / f'{net}_M.yml', is_train=True, check_paths=False)
    assert mixed['train']['total_iter'] == 10 * stage and mixed['train']['scheduler']['periods'] == [stage] * 10
    assert sorted(t['label'] for t in mixed['datasets']['train']['tasks']) == list(range(7))
    stages = plan_stages(parse_options(RECIPES / f'{net}_S.yml', is_train=True, check_paths=False))
    assert [s.task for s in stages] == order
    assert [s.opt['train']['scheduler']['periods'] for s in stages] == [[stage]] * 6 + [[stage] * last_periods]
    for s in stages:
        assert s.opt['train']['optim_g'] == {'type': optim, 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
        assert s.opt['train']['ema_decay'] == 0.999 and s.opt['network_g']['type'] == net
        assert s.opt['datasets']['train']['batch_size_per_gpu'] == batch


@pytest.mark.slow
def test_two_ranks_through_train_sh_match_one_process_and_skip_on_rerun(tmp_path):
    import sys
    from engine_helpers import ROOT, run_script
    one = train_sequential(parse_options(seq_options(tmp_path / 'one', name='one',
                                                     extra={'datasets.train.batch_size_per_gpu': 4}), is_train=True))
    two = seq_options(tmp_path / 'two', name='two')   # 2 ranks x batch 2: the same global batch
    env = {'NGPU': '2', 'PYTHON': sys.executable, 'MASTER_PORT': '29743'}
    first = run_script([str(ROOT / 'train.sh'), str(two)], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    for run in one:
        got = final_weights(tmp_path / 'two' / 'experiments' / 'two' / run.stage.root.name)
        for k, v in final_weights(run.stage.root)['params'].items():
            torch.testing.assert_close(got['params'][k], v, rtol=0, atol=1e-5)
    again = run_script([str(ROOT / 'train.sh'), str(two)], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count('skipped') == 3


@pytest.mark.slow
def test_killed_during_stage_three_reruns_only_stage_three_to_the_straight_result(tmp_path):
    import os
    import signal
    import subprocess
    import time
    from engine_helpers import PYTHON, ROOT, run_script
    iters = (2, 2, 30)
    straight = train_sequential(parse_options(seq_options(tmp_path / 'a', stage_iters=iters), is_train=True))
    reference = final_weights(straight[-1].stage.root)

    opt = seq_options(tmp_path / 'b', stage_iters=iters)
    stage3 = tmp_path / 'b' / 'experiments' / 'seq' / 'stage3_medium'
    proc = subprocess.Popen([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (stage3 / 'training_states' / 'ckpt_00000002.pth').exists() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (stage3 / 'training_states' / 'ckpt_00000030.pth').exists(), 'the run ended before the kill'
    rerun = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert 'stage 1/3' in rerun.stderr and rerun.stderr.count('skipped') == 2
    assert f"resumed from {stage3 / 'training_states'}" in rerun.stderr
    got = final_weights(stage3)
    assert_same(got['params'], reference['params'])
    assert_same(got['params_ema'], reference['params_ema'])


def test_mioir_sequential_recipe_runs_all_seven_stages_on_a_miniature_of_its_data(tmp_path, monkeypatch):
    """The recipe's data layout (DF2K/<task>_sub300 beside GT_sub300, CL_test/val) loads and every stage trains."""
    import cv2
    import numpy as np
    root = tmp_path / 'datasets' / 'MiOIR'
    rng = np.random.default_rng(0)
    folders = ['DF2K/GT_sub300', 'CL_test/val/GT', 'CL_test/val/LQ'] + \
        [f'DF2K/{t}_sub300' for t in ('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark')]
    for folder in folders:
        (root / folder).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / folder / f'0{i}_s001.png'), rng.integers(0, 256, (130, 130, 3), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    opt = parse_options(RECIPES / 'SRResNet_AP_S.yml', [
        'network_g.num_feat=4', 'network_g.num_block=1', 'sequential.stage_iters=[1,1,1,1,1,1,1]',
        'sequential.stage_periods=null', 'train.total_iter=7', 'datasets.train.batch_size_per_gpu=1',
        'datasets.train.num_worker_per_gpu=0', 'logger.use_tb_logger=false', 'num_gpu=0'], is_train=True)
    runs = train_sequential(opt)
    assert [len(r.stage.tasks) for r in runs] == list(range(1, 8)) and not any(r.skipped for r in runs)
    assert (tmp_path / 'experiments' / 'MiOIR_SRResNet_AP_S' / 'stage7_dark' / 'models' / 'net_g_latest.pth').is_file()
