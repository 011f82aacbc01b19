"""Two gloo processes started through torchrun train exactly like one process with the same global batch."""
import pytest

from engine_helpers import PYTHON, ROOT, read_losses, run_script, tiny_options


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_resume(tmp_path):
    one = tiny_options(tmp_path / 'one', name='one', total_iter=4, batch=4, ckpt_freq=2)
    r1 = run_script([PYTHON, 'basicsr/train.py', '-opt', str(one)], cwd=ROOT)
    assert r1.returncode == 0, r1.stderr[-3000:]

    two = tiny_options(tmp_path / 'two', name='two', total_iter=2, batch=2, ckpt_freq=2)
    torchrun = [PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29731',
                'basicsr/train.py', '-opt', str(two)]
    r2 = run_script(torchrun, cwd=ROOT)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r3 = run_script(torchrun + ['--set', 'train.total_iter=4'], cwd=ROOT)  # resumes at iteration 2
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert 'resumed from' in r3.stderr

    ref = read_losses(tmp_path / 'one' / 'experiments' / 'one')
    got = read_losses(tmp_path / 'two' / 'experiments' / 'two')
    assert sorted(got) == sorted(ref) == [1, 2, 3, 4]
    for it in ref:
        assert got[it] == pytest.approx(ref[it], abs=1e-5), (it, got[it], ref[it])
