"""Past one machine: two torchrun "nodes" on localhost (c10d rendezvous), a worker killed under
``--max-restarts``, a resume on another number of ranks, bounded checkpoint waits, per-rank data shards."""
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import PYTHON, ROOT, read_losses, run_script, tiny_options

from basicsr.engine.checkpoint import sampler_state_for_rank, save_checkpoint
from basicsr.engine.run_guard import LOCK_NAME, RunLock, RunLockedError
from basicsr.engine.trainer import Trainer
from basicsr.utils.options import parse_options

TOTAL, CKPT = 6, 2  # 6 images x enlarge 2 = 12 samples: 3 iterations per epoch with a global batch of 4

# test plug-in (--import killer): the worker of rank KILL_RANK SIGKILLs itself when it first loads a sample of
# epoch 1 (iteration 4, after the checkpoint of iteration 2), once per job (KILL_MARK)
KILLER = textwrap.dedent('''
    import os
    import signal
    from pathlib import Path

    from basicsr.data.synthetic_dataset import SyntheticDegradationDataset

    MARK = Path(os.environ.get('KILL_MARK', '/nonexistent/mark'))
    if 'KILL_RANK' in os.environ and os.environ.get('RANK') == os.environ['KILL_RANK']:
        original = SyntheticDegradationDataset.__getitem__

        def getitem(self, key):
            if isinstance(key, tuple) and key[1] >= 1 and not MARK.exists():
                MARK.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, key)
        SyntheticDegradationDataset.__getitem__ = getitem
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def two_nodes(opt: Path, tmp: Path, job: str, extra_env=None, args=()) -> list:
    """Two ``./train.sh`` "nodes" (NNODES=2, one process each) joined by a c10d rendezvous on 127.0.0.1."""
    (tmp / 'killer.py').write_text(KILLER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHON': PYTHON, 'PYTHONPATH': f'{ROOT}:{tmp}', 'NGPU': '1',
           'NNODES': '2', 'RDZV_ENDPOINT': f'127.0.0.1:{free_port()}', 'RDZV_ID': job, **(extra_env or {})}
    cmd = [str(ROOT / 'train.sh'), str(opt), '--import', 'killer', *args]
    nodes = [subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    try:
        outs = [n.communicate(timeout=420)[0] for n in nodes]
    finally:
        for n in nodes:
            if n.poll() is None:
                n.kill()
    assert [n.returncode for n in nodes] == [0, 0], '\n'.join(o[-3000:] for o in outs)
    return outs


def net(exp: Path) -> dict:
    return torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """One process with batch 4, and two localhost nodes with batch 2 each (the same global batch)."""
    tmp = tmp_path_factory.mktemp('elastic')
    one = tiny_options(tmp / 'one', name='one', total_iter=TOTAL, batch=4, ckpt_freq=CKPT)
    done = run_script([PYTHON, 'basicsr/train.py', '-opt', str(one)], cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    two = tiny_options(tmp / 'two', name='two', total_iter=TOTAL, batch=2, ckpt_freq=CKPT)
    two_nodes(two, tmp / 'two', 'straight')
    return {'tmp': tmp, 'one': tmp / 'one' / 'experiments' / 'one', 'two': tmp / 'two' / 'experiments' / 'two'}


@pytest.mark.slow
def test_two_localhost_nodes_train_like_one_process_with_the_same_global_batch(runs):
    ref, got = read_losses(runs['one']), read_losses(runs['two'])
    assert sorted(got) == sorted(ref) == list(range(1, TOTAL + 1))
    for it in ref:  # the same samples; only the summation order of the gradients differs
        assert got[it] == pytest.approx(ref[it], abs=1e-5), (it, got[it], ref[it])
    a, b = net(runs['one']), net(runs['two'])
    for group in ('params', 'params_ema'):
        for key in a[group]:
            torch.testing.assert_close(b[group][key], a[group][key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, 'fork'), reason='SIGKILL of a torchrun worker')
def test_a_killed_worker_restarts_the_group_and_ends_like_the_straight_run(runs):
    tmp = runs['tmp'] / 'kill'
    opt = tiny_options(tmp, name='two', total_iter=TOTAL, batch=2, ckpt_freq=CKPT)
    # rank 0 holds train.lock and writes the checkpoints: the restarted group's rank 0 must take both over
    env = {'KILL_RANK': '0', 'KILL_MARK': str(tmp / 'killed')}
    outs = two_nodes(opt, tmp, 'killed', env, args=['--max-restarts', '1'])
    assert (tmp / 'killed').exists(), 'the worker was never killed'
    exp = tmp / 'experiments' / 'two'
    log = ''.join(p.read_text() for p in sorted((exp / 'log').glob('train_*.log')))
    assert f'resumed from {exp}/training_states/ckpt_00000002.pth at iteration 2' in log, outs
    assert 'taking over the stale lock' in ''.join(outs)  # logged before the run's log file is opened
    assert read_losses(exp) == read_losses(runs['two'])  # bit-identical: same ranks, same samples, same RNGs
    a, b = net(runs['two']), net(exp)
    for group in ('params', 'params_ema'):
        for key in a[group]:
            assert torch.equal(a[group][key], b[group][key]), (group, key)


def _copy_at_iteration(src: Path, dst: Path, iteration: int) -> None:
    """The run folder ``src`` as it was after the checkpoint of ``iteration``."""
    shutil.copytree(src, dst)
    for path in (dst / 'training_states').glob('ckpt_*'):
        if int(path.name[5:13]) > iteration:
            path.unlink()
    (dst / LOCK_NAME).unlink(missing_ok=True)


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_on_one_rank_with_the_same_global_batch(runs, tmp_path):
    exp = tmp_path / 'experiments' / 'two'
    _copy_at_iteration(runs['two'], exp, 2)
    opt = tiny_options(tmp_path, name='two', total_iter=TOTAL, batch=4, ckpt_freq=CKPT)
    trainer = Trainer(parse_options(opt, [], is_train=True))
    assert trainer.iter == 2 and trainer.stream.sampler.consumed == 8  # 2 iterations x 4 samples on one rank
    trainer.train()
    ref, got = read_losses(runs['one']), read_losses(exp)
    for it in range(3, TOTAL + 1):
        assert got[it] == pytest.approx(ref[it], abs=1e-5), (it, got[it], ref[it])


def test_another_global_batch_after_a_world_size_change_is_refused():
    state = {'_path': 'ckpt_00000002.pth', 'world_size': 2, 'global_batch': 4,
             'sampler': [{'epoch': 0, 'consumed': 4, 'num_replicas': 2}] * 2}
    assert sampler_state_for_rank(state, 1, 2, 2) is state['sampler'][1]  # the same world size: its own state
    assert sampler_state_for_rank(state, 0, 1, 4)['consumed'] == 4  # the sampler maps it (x2 / 1)
    assert sampler_state_for_rank(state, 0, 1, 2, accumulate=2)['consumed'] == 4
    with pytest.raises(ValueError, match=r'2 rank\(s\) with a global batch of 4 .* 1 rank\(s\) with 2 .*'
                                         r'--set datasets.train.batch_size_per_gpu=4'):
        sampler_state_for_rank(state, 0, 1, 2)


def test_keep_last_never_deletes_the_checkpoint_just_written(tmp_path):
    # a run resumed from ckpt 2 (path.resume_state) finds ckpt 4 and 6 of the abandoned run beside it
    for it in (2, 4, 6):
        save_checkpoint({'iter': it}, tmp_path, it, keep_last=0)
    save_checkpoint({'iter': 3}, tmp_path, 3, keep_last=1)
    assert sorted(p.name for p in tmp_path.glob('ckpt_*.pth')) == ['ckpt_00000003.pth', 'ckpt_00000006.pth']


def test_the_lock_of_an_earlier_attempt_of_the_same_elastic_job_is_taken_over(tmp_path, monkeypatch, caplog):
    import logging
    import basicsr.engine.run_guard as run_guard
    monkeypatch.setattr(run_guard, 'get_logger', lambda: logging.getLogger('test_engine_elastic'))
    lock = tmp_path / LOCK_NAME
    monkeypatch.setenv('TORCHELASTIC_RUN_ID', 'job7')
    lock.write_text('4242 another-node job7\n')  # rank 0 of the group torchrun stopped ran on another node
    RunLock(tmp_path).acquire()
    assert lock.read_text().split() == [str(os.getpid()), socket.gethostname(), 'job7']
    assert 'earlier attempt of job job7' in caplog.text
    lock.write_text('4242 another-node job8\n')  # another job's live trainer
    with pytest.raises(RunLockedError, match='PID 4242 on another-node'):
        RunLock(tmp_path).acquire()


BARRIER_WORKER = """import os, sys, time
os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=sys.argv[2], RANK=sys.argv[1], WORLD_SIZE='2')
from basicsr.utils.dist import bounded_barrier, init_dist_from_env
init_dist_from_env('gloo')
bounded_barrier(0.05, 'the first barrier')
if sys.argv[1] == '0':  # rank 0 hangs in its save
    time.sleep(30)
    os._exit(0)
start = time.time()
try:
    bounded_barrier(0.05, 'rank 0 to write the checkpoint of iteration 7')
except RuntimeError as exc:
    print(f'{time.time() - start:.1f}s', exc)
"""


@pytest.mark.slow
def test_ranks_waiting_for_a_save_give_up_after_the_timeout_with_a_clear_message(tmp_path):
    port = str(free_port())
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    hung = subprocess.Popen([PYTHON, '-c', BARRIER_WORKER, '0', port], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([PYTHON, '-c', BARRIER_WORKER, '1', port], env=env, capture_output=True, text=True,
                             timeout=120).stdout
    finally:
        hung.kill()
    assert 'rank 1 waited for rank 0 to write the checkpoint of iteration 7 and gave up' in out, out
    assert float(out.split('s ', 1)[0]) < 15  # 3 s timeout, not the 30 s rank 0 hangs


@pytest.mark.slow
def test_a_resumed_run_with_loader_workers_sees_the_same_samples(tmp_path):
    extra = {'datasets.train.num_worker_per_gpu': 2}
    straight = tiny_options(tmp_path / 'a', name='a', total_iter=5, batch=2, ckpt_freq=5, extra=extra)
    Trainer(parse_options(straight, [], is_train=True)).train()
    split = tiny_options(tmp_path / 'b', name='b', total_iter=5, batch=2, ckpt_freq=5, extra=extra)
    Trainer(parse_options(split, ['train.total_iter=3'], is_train=True)).train()  # the workers prefetched more
    resumed = Trainer(parse_options(split, [], is_train=True))
    assert resumed.iter == 3 and resumed.stream.sampler.consumed == 6  # mid-epoch (6 iterations per epoch)
    resumed.train()
    assert read_losses(tmp_path / 'b' / 'experiments' / 'b') == read_losses(tmp_path / 'a' / 'experiments' / 'a')


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_each_rank_reads_only_the_images_of_its_shard(tmp_path, monkeypatch, backend):
    from basicsr.data import build_dataset
    from basicsr.data.image_source import ImageSource
    from basicsr.data.loader import build_dataloader
    from basicsr.data.sampler import EnlargedSampler
    from engine_helpers import make_clean_images
    root = make_clean_images(tmp_path / 'clean', n=8, size=32)
    if backend == 'lmdb':
        pytest.importorskip('lmdb')
        from data_helpers import load_script
        assert load_script('create_lmdb').create_lmdb(root, tmp_path / 'clean.lmdb') == 8
        root = tmp_path / 'clean.lmdb'
    opened = []
    read = ImageSource.read

    def recording_read(self, name, *args, **kwargs):
        opened.append(name)
        return read(self, name, *args, **kwargs)
    monkeypatch.setattr(ImageSource, 'read', recording_read)
    opt = {'name': 'shard', 'type': 'SyntheticDegradationDataset', 'phase': 'train', 'dataroot_gt': str(root),
           'io_backend': {'type': backend}, 'gt_size': 16, 'degradation': {'type': 'GaussianNoise', 'sigma': 25},
           'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}
    shards = []
    for rank in (0, 1):
        opened.clear()
        dataset = build_dataset(opt)  # lists the images, reads none
        assert opened == []
        sampler = EnlargedSampler(len(dataset), num_replicas=2, rank=rank, seed=5)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            batches = list(build_dataloader(dataset, opt, num_gpu=0, sampler=sampler, seed=5))
            assert len(batches) == 2
            shard = {dataset.sample_name(i) for i in sampler.global_order(epoch)[rank::2]}
            assert set(opened) == shard and len(shard) == 4
            opened.clear()
        shards.append(shard)
    assert not shards[0] & shards[1]


def test_slurm_script_starts_one_train_sh_per_node_with_a_rendezvous_from_slurm_variables(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    hosts = '[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] && printf "gpu07\\ngpu08\\n"'
    (bin_dir / 'scontrol').write_text(f'#!/bin/sh\n{hosts}\n')
    (bin_dir / 'srun').write_text('#!/bin/sh\necho "$NNODES $RDZV_ENDPOINT $RDZV_ID $RDZV_BACKEND | $*"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, 'PATH': f"{bin_dir}:{os.environ['PATH']}", 'SLURM_JOB_ID': '4711',
           'SLURM_JOB_NODELIST': 'gpu[07-08]', 'SLURM_JOB_NUM_NODES': '2', 'SLURM_SUBMIT_DIR': str(ROOT)}
    done = subprocess.run(['bash', str(ROOT / 'scripts' / 'slurm_train.sh'), 'x.yml', '--max-restarts', '2'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['2', 'gpu07:29500', '4711', 'c10d', '|', '--nodes=2', '--ntasks=2',
                                   '--ntasks-per-node=1', '--kill-on-bad-exit=1', str(ROOT / 'train.sh'), 'x.yml',
                                   '--max-restarts', '2']
    outside = {k: v for k, v in env.items() if not k.startswith('SLURM_')}
    done = subprocess.run(['bash', str(ROOT / 'scripts' / 'slurm_train.sh'), 'x.yml'], env=outside,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and 'submit with sbatch' in done.stderr


def test_train_sh_refuses_a_multi_node_launch_without_its_variables(tmp_path):
    opt = tiny_options(tmp_path, name='multi', total_iter=1)
    env = {'NNODES': '2', 'PYTHON': PYTHON, 'RDZV_ENDPOINT': '', 'NODE_RANK': '1', 'MASTER_PORT': '29500'}
    done = run_script([str(ROOT / 'train.sh'), str(opt)], cwd=tmp_path, env={**env, 'MASTER_ADDR': ''})
    assert done.returncode == 2 and 'NNODES=2 needs MASTER_ADDR' in done.stderr
    done = run_script([str(ROOT / 'train.sh'), str(opt), '--max-restarts', 'many'], cwd=tmp_path, env=env)
    assert done.returncode == 2 and 'must be a whole number' in done.stderr
    done = run_script([str(ROOT / 'train.sh'), str(opt), '--max-restarts', '1'], cwd=tmp_path,
                      env={**env, 'MASTER_ADDR': 'node0'})
    assert done.returncode == 2 and 'needs the c10d rendezvous' in done.stderr
    done = run_script([str(ROOT / 'train.sh'), str(opt)], cwd=tmp_path, env={**env, 'RDZV_ENDPOINT': 'h:1'})
    assert done.returncode == 2 and 'RDZV_ENDPOINT needs RDZV_ID' in done.stderr
