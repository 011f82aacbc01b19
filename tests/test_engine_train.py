"""Trainer: a real (tiny) training run, exact resume after a kill, validation outputs, bad options."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine_helpers import PYTHON, ROOT, read_losses, run_script, tiny_options

from basicsr.utils.options import parse_options


def train_in_process(opt_path: Path, overrides=()):
    from basicsr.engine.trainer import Trainer
    opt = parse_options(opt_path, list(overrides), is_train=True)
    return Trainer(opt).train()


def test_six_straight_equals_three_then_resume_three(tmp_path):
    straight = tiny_options(tmp_path / 'a', name='straight')
    train_in_process(straight)
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'straight')
    assert sorted(ref) == [1, 2, 3, 4, 5, 6]

    split = tiny_options(tmp_path / 'b', name='split')
    train_in_process(split, ['train.total_iter=3'])
    train_in_process(split)  # same command again: resumes automatically from iteration 3
    got = read_losses(tmp_path / 'b' / 'experiments' / 'split')
    assert got == ref  # bit-identical loss sequence


@pytest.mark.slow
def test_killed_run_resumes_where_it_stopped(tmp_path):
    opt = tiny_options(tmp_path / 'a', name='ref', total_iter=8, ckpt_freq=2, width=16, gt_size=64)
    run = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'ref')

    opt = tiny_options(tmp_path / 'b', name='killed', total_iter=8, ckpt_freq=2, width=16, gt_size=64)
    states = tmp_path / 'b' / 'experiments' / 'killed' / 'training_states'
    proc = subprocess.Popen([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (states / 'ckpt_00000002.pth').exists() and time.time() < deadline:
        time.sleep(0.005)
    assert (states / 'ckpt_00000002.pth').exists(), 'no checkpoint at iteration 2 within 240 s'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the kill must land mid-run, or resuming would check nothing
    assert proc.returncode == -signal.SIGKILL, f'the run exited by itself (status {proc.returncode}) before the kill'
    saved = sorted(int(p.name[5:13]) for p in states.glob('ckpt_*.pth'))
    assert saved and max(saved) < 8, f'the run reached total_iter 8 before the kill (checkpoints {saved})'
    resumed = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f'resumed from {states}' in resumed.stderr
    got = read_losses(tmp_path / 'b' / 'experiments' / 'killed')
    assert got == ref


def test_truncated_latest_checkpoint_resumes_from_previous(tmp_path):
    opt = tiny_options(tmp_path, name='trunc', total_iter=4, ckpt_freq=2)
    train_in_process(opt)
    states = tmp_path / 'experiments' / 'trunc' / 'training_states'
    latest = states / 'ckpt_00000004.pth'
    latest.write_bytes(latest.read_bytes()[:1000])
    from basicsr.engine.trainer import Trainer
    trainer = Trainer(parse_options(opt, ['train.total_iter=6'], is_train=True))
    assert trainer.iter == 2


def test_validation_writes_images_metrics_and_checkpoint_weights(tmp_path):
    opt = tiny_options(tmp_path, name='val', total_iter=2, ckpt_freq=2, val=True)
    train_in_process(opt)
    exp = tmp_path / 'experiments' / 'val'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'options_resolved.yml').is_file()
    results = list((exp / 'val_results').glob('metrics.json'))
    assert results and 'basicsr_rgb' in results[0].read_text()
    assert len(list((exp / 'visualization' / 'genval' / '00000002').glob('*.png'))) == 6
    log = '\n'.join(p.read_text() for p in (exp / 'log').glob('*.log'))
    assert 'validation genval @ 2 (' in log and 'scores the EMA weights (net_g_ema)' in log  # ema_decay is set


def test_stage_weights_must_match_outputs(tmp_path):
    opt = tiny_options(tmp_path, name='sw', extra={'train.pixel_opt.stage_weights': [1.0, 0.5]})
    with pytest.raises(ValueError, match=r'stage_weights has 2 entries but the loss scores 1 outputs'):
        train_in_process(opt)
