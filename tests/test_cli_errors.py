"""Every entry point turns the toolbox's errors into one line ``error: ...`` on stderr: exit status 2 for a user
mistake, 1 for a runtime failure, a traceback only with --debug / BASICSR_DEBUG=1 (basicsr/utils/cli.py)."""
import os
import signal
import subprocess

import numpy as np
import pytest
import torch
import yaml

from data_helpers import load_script
from engine_helpers import PYTHON, ROOT, run_script, tiny_options

from basicsr.utils.cli import run_cli
from basicsr.utils.img_util import write_image

TINY_NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


def run(main, argv, capsys):
    """(exit status, stderr) of ``main(argv)`` run as its command line runs it."""
    capsys.readouterr()
    code = run_cli(main, argv)
    return code, capsys.readouterr().err


def one_line(err: str, *parts: str) -> str:
    """The stderr of a failed command: one error line, the last, naming every part, and no traceback
    (the lines before it are the run's own log and warnings)."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if 'error' in line.lower() or 'Traceback' in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith('error: '), err
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]


@pytest.fixture(autouse=True)
def fresh_logger():
    """The package logger writes to the stderr of the test that created it: start each test without handlers."""
    import logging
    logger = logging.getLogger('basicsr')
    saved = logger.handlers[:]
    logger.handlers = []
    yield
    for handler in logger.handlers:
        handler.close()
    logger.handlers = saved


@pytest.fixture
def tiny_weights(tmp_path):
    from basicsr.archs import build_network
    torch.manual_seed(0)
    path = tmp_path / 'tiny.pth'
    torch.save({'params': build_network(TINY_NET).state_dict()}, path)
    opt = tmp_path / 'tiny.yml'
    opt.write_text(yaml.safe_dump({'network_g': TINY_NET}))
    return opt, path


def demo_main():
    from basicsr.demo import main
    return main


# ---------------------------------------------------------------------------------------------- demo.py
@pytest.mark.parametrize('content', [b'', b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00', b'plain text, not an image'],
                         ids=['empty', 'truncated', 'not_an_image'])
def test_demo_bad_image_file_is_one_line(tmp_path, tiny_weights, capsys, content):
    opt, weights = tiny_weights
    bad = tmp_path / 'bad.png'
    bad.write_bytes(content)
    code, err = run(demo_main(), ['--input', str(bad), '--output', str(tmp_path / 'out'), '--opt', str(opt),
                                  '--weights', str(weights)], capsys)
    assert code == 2
    one_line(err, 'bad.png')


def test_demo_checkpoint_of_another_network(tmp_path, tiny_weights, capsys):
    opt, _ = tiny_weights
    from basicsr.archs import build_network
    other = tmp_path / 'wide.pth'
    torch.save({'params': build_network(dict(TINY_NET, width=16)).state_dict()}, other)
    code, err = run(demo_main(), ['--opt', str(opt), '--weights', str(other), '--output', str(tmp_path / 'o')], capsys)
    assert code == 2
    one_line(err, 'wide.pth')


@pytest.mark.parametrize('kind', ['pickled_object', 'garbage', 'truncated', 'unreadable'])
def test_demo_refused_or_unreadable_weights(tmp_path, tiny_weights, capsys, kind):
    opt, good = tiny_weights
    weights = tmp_path / f'{kind}.pth'
    if kind == 'pickled_object':
        torch.save({'params': torch.load(good)['params'], 'args': ValueError('x')}, weights)
    elif kind == 'garbage':
        weights.write_bytes(os.urandom(256))
    elif kind == 'truncated':
        weights.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    else:
        weights.write_bytes(good.read_bytes())
        weights.chmod(0)
        if os.access(weights, os.R_OK):
            pytest.skip('running as root: permissions are not enforced')
    code, err = run(demo_main(), ['--opt', str(opt), '--weights', str(weights), '--output', str(tmp_path / 'o')],
                    capsys)
    assert code == 2
    one_line(err, f'{kind}.pth')


@pytest.mark.parametrize('name, text, words', [
    ('broken.yml', 'network_g:\n  type: NAFNet\n  width: [8\n', ['line']),
    ('nonet.yml', 'test: {pad_multiple: 8}\n', ["'network_g' is required"]),
    ('word.yml', yaml.safe_dump({'network_g': dict(TINY_NET, width='sixteen')}),
     ["'network_g.width'", 'must be int', "'sixteen'"]),
], ids=['yaml_error_names_the_line', 'missing_network_g', 'network_argument_of_wrong_type'])
def test_demo_bad_option_file_is_one_line_naming_it(tmp_path, capsys, name, text, words):
    opt = tmp_path / name
    opt.write_text(text)
    code, err = run(demo_main(), ['--opt', str(opt), '--output', str(tmp_path / 'o')], capsys)
    assert code == 2
    one_line(err, name, *words)


@pytest.mark.parametrize('flags, words', [
    (['--tile', '64', '--tile-overlap', '64'], ['--tile-overlap 64', '--tile 64']),
    (['--tile', '-5'], ['--tile', '-5']),
    (['--tile', 'big'], ['--tile', 'big'])])
def test_demo_bad_tile_arguments(tmp_path, capsys, flags, words):
    code, err = run(demo_main(), flags + ['--output', str(tmp_path / 'o')], capsys)
    assert code == 2
    one_line(err, *words)
    assert not (tmp_path / 'o').exists()


def test_debug_flag_and_environment_show_the_traceback(tmp_path, capsys, monkeypatch):
    opt = tmp_path / 'nonet.yml'
    opt.write_text('{}\n')
    argv = ['--opt', str(opt), '--output', str(tmp_path / 'o')]
    code, err = run(demo_main(), argv + ['--debug'], capsys)
    assert code == 2 and 'Traceback' in err and err.strip().splitlines()[-1].startswith('error: ')
    monkeypatch.setenv('BASICSR_DEBUG', '1')
    code, err = run(demo_main(), argv, capsys)
    assert code == 2 and 'Traceback' in err


# ---------------------------------------------------------------------------------------------- test.py
def _test_opt(tmp_path, weights, lq, gt):
    opt = {'name': 'pairs', 'num_gpu': 0, 'network_g': TINY_NET,
           'datasets': {'test': {'name': 'pairs', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt),
                                 'dataroot_lq': str(lq)}},
           'path': {'pretrain_network_g': str(weights), 'results_root': str(tmp_path / 'res')},
           'val': {'profile': 'basicsr_rgb', 'pbar': False}}
    path = tmp_path / 'pairs.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


@pytest.mark.parametrize('fault', ['size_mismatch', 'unpaired'])
def test_test_py_paired_data_problems(tmp_path, tiny_weights, capsys, fault):
    from basicsr.test import main
    _, weights = tiny_weights
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        write_image(tmp_path / 'gt' / f'{name}.png', rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        size = 24 if (fault == 'size_mismatch' and name == 'b') else 32
        lq_name = 'c' if (fault == 'unpaired' and name == 'b') else name
        write_image(tmp_path / 'lq' / f'{lq_name}.png', rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    opt = _test_opt(tmp_path, weights, tmp_path / 'lq', tmp_path / 'gt')
    code, err = run(main, ['-opt', str(opt)], capsys)
    assert code == 2
    one_line(err, 'b' if fault == 'size_mismatch' else 'c')
    assert not (tmp_path / 'res').exists()  # a failed test run leaves no partial results


def test_test_py_set_value_that_is_not_yaml_names_the_override(tmp_path, tiny_weights, capsys):
    from basicsr.test import main
    _, weights = tiny_weights
    opt = _test_opt(tmp_path, weights, tmp_path, tmp_path)
    code, err = run(main, ['-opt', str(opt), '--set', 'val.suffix=[unclosed'], capsys)
    assert code == 2
    one_line(err, '--set val.suffix=[unclosed', 'not valid YAML')


# ---------------------------------------------------------------------------------------------- scripts
def test_ensemble_table_for_another_number_of_models(tmp_path, capsys):
    from basicsr.ensemble.ensir import EnsIR
    rng = np.random.default_rng(0)
    models = []
    for m in range(3):
        write_image(tmp_path / f'm{m}' / 'x.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        models.append(str(tmp_path / f'm{m}'))
    write_image(tmp_path / 'gt' / 'x.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    preds = [torch.rand(2, 3, 16, 16) * 255]
    EnsIR(bin_width=64).fit(preds, [torch.rand(3, 16, 16) * 255]).save(tmp_path / 'two.pth')
    code, err = run(load_script('ensemble').main, ['apply', '--table', str(tmp_path / 'two.pth'), '--models', *models,
                                                   '--out', str(tmp_path / 'out')], capsys)
    assert code == 2
    one_line(err, 'two.pth', 'M = 2', 'M = 3')


def test_eval_inference_modes_wrong_checkpoint(tmp_path, tiny_weights, capsys):
    opt, _ = tiny_weights
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    code, err = run(load_script('eval_inference_modes').main, ['--opt', str(opt), '--weights', str(bad),
                                                               '--train-size', '16', '--modes', 'plain'], capsys)
    assert code == 2
    one_line(err, 'bad.pth')


def test_convert_checkpoint_missing_file(tmp_path, capsys):
    code, err = run(load_script('convert_checkpoint').main, [str(tmp_path / 'none.pth'), str(tmp_path / 'out.pth'),
                                                             '--type', 'MSRResNet'], capsys)
    assert code == 2
    one_line(err, 'none.pth')


def test_script_bad_flag_is_one_line(capsys):
    code, err = run(load_script('check_pairs').main, ['gt', 'lq', '--no-such-flag'], capsys)
    assert code == 2
    one_line(err, '--no-such-flag', '--help')


# ---------------------------------------------------------------------------------------------- training
def test_train_nan_loss_guard_is_a_runtime_failure_in_the_log(tmp_path, capsys):
    from basicsr.train import main
    opt = tiny_options(tmp_path, name='nan', total_iter=4, ckpt_freq=100)
    code, err = run(main, ['-opt', str(opt), '--set', 'train.optim_g.lr=1e30', 'train.scheduler.eta_min=1e30'],
                    capsys)
    assert code == 1
    line = one_line(err.split('\n', err.count('\n') - 1)[-1], 'loss is')
    logs = list((tmp_path / 'experiments' / 'nan' / 'log').glob('train_*.log'))
    assert logs and line in logs[0].read_text()


@pytest.mark.slow
def test_train_failed_checkpoint_write_names_the_file(tmp_path):
    """A file-size limit makes the checkpoint write fail with EFBIG ('File too large'): exit 1, the file named."""
    import resource
    opt = tiny_options(tmp_path, name='full', total_iter=2, ckpt_freq=2)

    def limit():  # the shell's `ulimit -f`: writes past 64 KiB fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT), 'PYTHONDONTWRITEBYTECODE': '1'}
    done = subprocess.run([PYTHON, 'basicsr/train.py', '-opt', str(opt)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)
    assert done.returncode == 1, done.stderr[-2000:]
    line = one_line(done.stderr.strip().splitlines()[-1], 'File too large', str(tmp_path / 'experiments' / 'full'))
    assert 'Traceback' not in done.stderr
    logs = list((tmp_path / 'experiments' / 'full' / 'log').glob('train_*.log'))
    assert logs and line in logs[0].read_text()


@pytest.mark.slow
def test_train_sh_option_error_is_one_line_without_torchrun_noise(tmp_path):
    opt = tiny_options(tmp_path, name='typo', extra={'train.totl_iter': 3})
    done = run_script(['bash', str(ROOT / 'train.sh'), str(opt)], cwd=tmp_path, env={'NGPU': '1'})
    assert done.returncode == 2
    one_line(done.stderr, "'train.totl_iter'", "did you mean 'train.total_iter'", str(opt))
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.slow
def test_train_sh_runtime_failure_in_the_worker_is_one_line(tmp_path):
    opt = tiny_options(tmp_path, name='nan2', total_iter=4, ckpt_freq=100)
    done = run_script(['bash', str(ROOT / 'train.sh'), str(opt), '--set', 'train.optim_g.lr=1e30',
                       'train.scheduler.eta_min=1e30'], cwd=tmp_path, env={'NGPU': '1'})
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'loss is' in errors[0], done.stderr[-3000:]
    assert 'Traceback' not in done.stderr and 'ChildFailedError' not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize('args', [['--help'], ['x.yml', '--help'], ['x.yml', '--set', 'name=a', '-h']])
def test_train_sh_help(args):
    """--help anywhere prints train.sh's help once (not train.py's from --check-only and again from torchrun)."""
    done = subprocess.run(['bash', str(ROOT / 'train.sh'), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'NGPU': '1'})
    assert done.returncode == 0 and 'NGPU' in done.stdout, done.stdout + done.stderr[-2000:]
    assert done.stdout.lower().count('usage:') == 1, done.stdout


def test_every_script_uses_the_shared_error_handling():
    """No command-line tool of scripts/ that imports the toolbox bypasses run_cli (a new one must use it too)."""
    for path in sorted((ROOT / 'scripts').glob('*.py')):
        text = path.read_text()
        if "if __name__ == '__main__':" not in text or 'from basicsr' not in text:
            continue
        assert 'sys.exit(run_cli(main))' in text, path.name
        assert 'argparse.ArgumentParser(' not in text, path.name
    for entry in ('demo.py', 'test.py', 'train.py'):
        assert 'run_cli(main)' in (ROOT / 'basicsr' / entry).read_text(), entry


def test_option_file_that_is_a_folder(tmp_path, capsys):
    from basicsr.train import main
    code, err = run(main, ['-opt', str(tmp_path)], capsys)
    assert code == 2
    one_line(err, str(tmp_path), 'is a folder')


@pytest.mark.parametrize('fault', ['empty_data', 'wrong_checkpoint'])
def test_train_that_cannot_start_leaves_no_run_folder(tmp_path, capsys, fault):
    """Bad data or a checkpoint of another network: one line, status 2, and the new run folder is gone again."""
    from basicsr.archs import build_network
    from basicsr.train import main
    opt = tiny_options(tmp_path, name='nostart', total_iter=2)
    if fault == 'empty_data':
        (tmp_path / 'empty').mkdir()
        extra = [f'datasets.train.dataroot_gt={tmp_path / "empty"}']
        name = 'empty'
    else:
        torch.save({'params': build_network(TINY_NET).state_dict()}, tmp_path / 'other.pth')
        extra = [f'path.pretrain_network_g={tmp_path / "other.pth"}']
        name = 'other.pth'
    code, err = run(main, ['-opt', str(opt), '--set', *extra], capsys)
    assert code == 2
    one_line(err, name)
    assert not (tmp_path / 'experiments' / 'nostart').exists()
    # an existing run folder is never removed
    (tmp_path / 'experiments' / 'nostart').mkdir(parents=True)
    code, err = run(main, ['-opt', str(opt), '--set', *extra], capsys)
    assert code == 2 and (tmp_path / 'experiments' / 'nostart' / 'log').is_dir()


def test_error_in_a_dataloader_worker_is_its_own_message(tmp_path, capsys):
    """torch re-raises a worker's error with the worker's traceback in the message: only the message is shown."""
    from basicsr.train import main
    opt = tiny_options(tmp_path, name='worker', total_iter=2)
    data = tmp_path / 'clean'
    (data / 'img05.png').write_bytes((data / 'img00.png').read_bytes()[:300])
    code, err = run(main, ['-opt', str(opt), '--set', 'datasets.train.num_worker_per_gpu=1'], capsys)
    assert code == 2
    line = one_line(err, 'img05.png', 'truncated')
    assert 'Traceback' not in line and 'File "' not in line


def test_basicsr_train_pipeline_reports_one_line(tmp_path, capsys, monkeypatch):
    """A BasicSR method's own train.py calls train_pipeline(root_path): its errors are one line and exit 2 too."""
    from basicsr.train import train_pipeline
    opt = tiny_options(tmp_path, name='plug', extra={'network_g.width': 'sixteen'})
    monkeypatch.setattr('sys.argv', ['train.py', '-opt', str(opt)])
    with pytest.raises(SystemExit) as info:
        train_pipeline(str(tmp_path))
    assert info.value.code == 2
    one_line(capsys.readouterr().err, "'network_g.width'")


def test_output_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / 'taken').write_text('x')
    code, err = run(demo_main(), ['--output', str(tmp_path / 'taken')], capsys)
    assert code == 2
    one_line(err, str(tmp_path / 'taken'), 'pass a folder path')
    assert (tmp_path / 'taken').read_text() == 'x'


def test_second_trainer_on_a_folder_in_use_is_a_user_mistake(tmp_path, capsys):
    import socket
    import sys

    from basicsr.engine.run_guard import LOCK_NAME
    from basicsr.train import main
    opt = tiny_options(tmp_path, name='busy', total_iter=2)
    exp = tmp_path / 'experiments' / 'busy'
    exp.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (exp / LOCK_NAME).write_text(f'{holder.pid} {socket.gethostname()}\n')
        code, err = run(main, ['-opt', str(opt)], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    one_line(err, f'PID {holder.pid}')
    assert (exp / LOCK_NAME).is_file()  # the folder in use is left alone
