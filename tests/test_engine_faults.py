"""Killed and faulted runs lose and duplicate nothing: logs rewound on resume, stale temp files removed, one
live trainer per experiment folder, workers stop with their launcher, "training done" says what this run did."""
import logging
import os
import socket
import subprocess

import pytest

from engine_helpers import PYTHON, tiny_options

from basicsr.engine.hooks import Hook
from basicsr.engine.run_guard import LOCK_NAME, RunLockedError
from basicsr.engine.trainer import Trainer
from basicsr.utils.logger import format_duration
from basicsr.utils.options import parse_options


class Interrupted(Exception):
    pass


def _trainer(opt_path, overrides=()):
    return Trainer(parse_options(opt_path, list(overrides), is_train=True))


def _interrupt_after(trainer, last_iter):
    """Make ``trainer`` fail at iteration ``last_iter + 1`` (as a kill would, without its last rows' rewind)."""
    class Stop(Hook):
        def before_iter(self, tr, batches):
            if tr.iter > last_iter:
                raise Interrupted(f'stopped at {tr.iter}')
            return batches
    trainer.hooks.append(Stop())


def _scalars(tb_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_resume_rewinds_losses_csv_and_tensorboard_to_the_checkpoint(tmp_path):
    extra = {'logger.use_tb_logger': True}
    straight = tiny_options(tmp_path / 'a', name='straight', total_iter=6, ckpt_freq=3, extra=extra)
    _trainer(straight).train()
    split = tiny_options(tmp_path / 'b', name='split', total_iter=6, ckpt_freq=3, extra=extra)
    first = _trainer(split)
    _interrupt_after(first, 5)  # rows 4 and 5 are logged after the checkpoint of iteration 3
    with pytest.raises(Interrupted):
        first.train()
    log_b = tmp_path / 'b' / 'experiments' / 'split' / 'log' / 'losses.csv'
    assert [line.split(',')[0] for line in log_b.read_text().splitlines()[1:]] == ['1', '2', '3', '4', '5']
    second = _trainer(split)
    assert second.iter == 3
    second.train()
    exp_a = tmp_path / 'a' / 'experiments' / 'straight'
    assert log_b.read_bytes() == (exp_a / 'log' / 'losses.csv').read_bytes()
    ref = _scalars(exp_a / 'tb_logger', 'losses/l_pixel')
    assert [s for s, _ in ref] == [1, 2, 3, 4, 5, 6]
    got = _scalars(tmp_path / 'b' / 'experiments' / 'split' / 'tb_logger', 'losses/l_pixel')
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    assert got == ref  # resume is bit-exact, so are the float32 events


def test_stale_temp_files_of_interrupted_writes_are_removed_at_start(tmp_path):
    opt = tiny_options(tmp_path, name='tmp', total_iter=2, ckpt_freq=2)
    exp = tmp_path / 'experiments' / 'tmp'
    stale = [exp / 'training_states' / '.ckpt_00000003.pth.tmp4242',
             exp / 'training_states' / '.ckpt_00000003.pth.sha256.tmp4242',
             exp / 'models' / '.net_g_latest.pth.tmp4242',
             exp / 'visualization' / 'val' / '00000002' / '.img00.png.k2j3h4.tmp']
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'x' * 100)
    keep = exp / 'training_states' / 'notes.tmp'
    keep.write_text('not a temp file of an atomic write')
    _trainer(opt)
    assert not [p for p in stale if p.exists()]
    assert keep.exists()


def test_second_trainer_on_a_live_experiment_folder_is_refused(tmp_path):
    opt = tiny_options(tmp_path, name='locked', total_iter=2, ckpt_freq=2)
    exp = tmp_path / 'experiments' / 'locked'
    exp.mkdir(parents=True)
    holder = subprocess.Popen([PYTHON, '-c', 'import time; time.sleep(60)'])
    try:
        (exp / LOCK_NAME).write_text(f'{holder.pid} {socket.gethostname()}\n')
        with pytest.raises(RunLockedError) as err:
            _trainer(opt)
        message = str(err.value)
        assert '\n' not in message
        assert f'PID {holder.pid} on {socket.gethostname()}' in message and str(exp) in message
    finally:
        holder.kill()
        holder.wait()
    assert not (exp / 'training_states').exists() or not list((exp / 'training_states').iterdir())


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    opt = tiny_options(tmp_path, name='stale', total_iter=2, ckpt_freq=2)
    exp = tmp_path / 'experiments' / 'stale'
    exp.mkdir(parents=True)
    dead = subprocess.Popen([PYTHON, '-c', 'pass'])
    dead.wait()
    (exp / LOCK_NAME).write_text(f'{dead.pid} {socket.gethostname()}\n')
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        trainer = _trainer(opt)
    assert 'stale lock' in caplog.text and f'PID {dead.pid}' in caplog.text
    assert (exp / LOCK_NAME).read_text().split() == [str(os.getpid()), socket.gethostname()]
    trainer.train()
    assert not (exp / LOCK_NAME).exists()  # released when the run ends


def test_training_done_reports_what_this_invocation_trained(tmp_path, caplog):
    opt = tiny_options(tmp_path, name='done', total_iter=4, ckpt_freq=2)
    _trainer(opt, ['train.total_iter=2']).train()
    with caplog.at_level(logging.INFO, logger='basicsr'):
        _trainer(opt).train()
    assert 'training done: this run trained iterations 3-4 (2 iterations' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='basicsr'):
        _trainer(opt).train()
    assert 'training done: nothing to train, the run is already at iteration 4 of 4' in caplog.text


def test_eta_counts_days_instead_of_wrapping_at_24_hours():
    assert format_duration(3 * 86400 + 4 * 3600 + 5 * 60 + 6) == '3d 04:05:06'
    assert format_duration(86399) == '23:59:59'
    assert format_duration(float('nan')) == '?'


def test_ranks_above_zero_stay_quiet_on_the_console(monkeypatch):
    from basicsr.utils.logger import get_logger
    monkeypatch.setenv('RANK', '1')  # torchrun's variable, before the process group exists
    try:
        assert get_logger().getEffectiveLevel() == logging.ERROR
        assert not get_logger().isEnabledFor(logging.WARNING)
    finally:
        monkeypatch.delenv('RANK')
        assert get_logger().getEffectiveLevel() == logging.INFO


def _state(pid):
    """'R', 'S', ... of a process; None when it is gone or a zombie (dead, not yet reaped)."""
    try:
        with open(f'/proc/{pid}/stat') as fh:
            state = fh.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError:
        return None
    return None if state in ('Z', 'X') else state


def _rows(csv_path):
    try:
        return len(csv_path.read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir('/proc'), reason='reads process states from /proc')
@pytest.mark.parametrize('target', ['script', 'process group'])
def test_kill_9_of_train_sh_stops_its_worker(tmp_path, target):
    import signal
    import time
    from engine_helpers import ROOT
    opt = tiny_options(tmp_path, name='orphan', total_iter=100000, ckpt_freq=100000)
    exp = tmp_path / 'experiments' / 'orphan'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'NGPU': '1', 'MASTER_PORT': '29757', 'PYTHONPATH': str(ROOT)}
    launcher = subprocess.Popen([str(ROOT / 'train.sh'), str(opt)], cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.time() + 120
        while _rows(exp / 'log' / 'losses.csv') < 2 and time.time() < deadline and launcher.poll() is None:
            time.sleep(0.1)
        assert _rows(exp / 'log' / 'losses.csv') >= 2, 'the run did not start training'
        worker = int((exp / LOCK_NAME).read_text().split()[0])
        assert worker != launcher.pid and _state(worker) is not None
        os.kill(launcher.pid if target == 'script' else -launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.time() + 15
        while _state(worker) is not None and time.time() < deadline:
            time.sleep(0.1)
        assert _state(worker) is None, 'the worker kept training after its launcher was killed'
        rows = _rows(exp / 'log' / 'losses.csv')
        time.sleep(1)
        assert _rows(exp / 'log' / 'losses.csv') == rows
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if worker is not None and _state(worker) is not None:
            os.kill(worker, signal.SIGKILL)


SLOW_SAVES = """import os, runpy, sys, time
fsync = os.fsync
def slow_fsync(fd):  # a checkpoint's temp file stays long enough to be killed while it is written
    if '.ckpt_' in os.readlink(f'/proc/self/fd/{fd}'):
        time.sleep(0.3)
    fsync(fd)
os.fsync = slow_fsync
sys.argv = ['basicsr/train.py', '-opt', sys.argv[1]]
runpy.run_path('basicsr/train.py', run_name='__main__')
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir('/proc'), reason='finds the file being fsync\'ed in /proc')
def test_random_sigkills_including_one_during_a_save_end_identical_to_the_straight_run(tmp_path):
    import random
    import signal
    import time
    from engine_helpers import ROOT, run_script
    total, freq = 24, 3
    extra = {'logger.keep_last': 10}
    opt = tiny_options(tmp_path, name='run', total_iter=total, ckpt_freq=freq, extra=extra)
    exp, ref = tmp_path / 'experiments' / 'run', tmp_path / 'straight'
    done = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    exp.rename(ref)  # the same options (and paths) again for the killed run, so checkpoints compare by bytes
    states, csv_path = exp / 'training_states', exp / 'log' / 'losses.csv'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}

    def last_logged():
        lines = csv_path.read_text().splitlines()[1:] if csv_path.exists() else []
        return int(lines[-1].split(',')[0]) if lines else 0

    rng = random.Random(11)
    # each killed session waits for a logged iteration after its resume point (then a random delay), for the
    # temp file of the checkpoint it is writing, or a random time after its start (possibly still starting);
    # it is killed at once when it logs the iteration of the last checkpoint before the end
    for session, kind in enumerate(['iter', 'save', 'iter', 'time', 'iter']):
        resumed = max((int(p.name[5:13]) for p in states.glob('ckpt_*.pth')), default=0)
        log = tmp_path / f'session{session}.log'
        proc = subprocess.Popen([PYTHON, '-c', SLOW_SAVES, str(opt)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(log, 'w'))

        def wait_for(ready, poll=0.01, seconds=120.0):
            """Until ``ready()``; False when the run came near its end first (or stopped, or timed out)."""
            deadline = time.time() + seconds
            while time.time() < deadline and proc.poll() is None:
                if ready():
                    return True
                if f'iter:{total - freq:8,d},' in log.read_text():
                    return False
                time.sleep(poll)
            return False

        if kind == 'iter':
            target = f'iter:{resumed + freq + rng.randint(1, freq - 1):8,d},'  # after a checkpoint
            if wait_for(lambda: target in log.read_text()):
                wait_for(lambda: False, seconds=rng.uniform(0, 0.3))
        elif kind == 'save':
            target = states / f'.ckpt_{resumed + freq:08d}.pth.tmp{proc.pid}'
            assert wait_for(target.exists, poll=0.002), 'no checkpoint save to kill'
        else:
            wait_for(lambda: False, seconds=rng.uniform(1, 5))
        assert proc.poll() is None, f'session {session} ended before the kill ({kind})'
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (states / f'ckpt_{total:08d}.pth').exists(), 'the run finished before the kill'
        if kind == 'save':
            # killed while the checkpoint's temp file was being written: the checkpoint itself is not there
            assert target.exists() and not (states / f'ckpt_{resumed + freq:08d}.pth').exists()
    final = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT)
    assert final.returncode == 0, final.stderr[-2000:]
    assert 'resumed from' in final.stderr

    assert csv_path.read_bytes() == (ref / 'log' / 'losses.csv').read_bytes()
    names = sorted(p.name for p in states.iterdir())
    assert names == sorted(p.name for p in (ref / 'training_states').iterdir())
    assert len([n for n in names if n.endswith('.pth')]) == total // freq  # no temp files left
    for name in names:
        assert (states / name).read_bytes() == (ref / 'training_states' / name).read_bytes(), name
    for path in (ref / 'models').iterdir():
        assert (exp / 'models' / path.name).read_bytes() == path.read_bytes(), path.name
    assert not list(exp.rglob('.*.tmp*'))
