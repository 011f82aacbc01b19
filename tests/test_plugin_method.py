"""A method written the BasicSR way (tests/plugin_method) runs on the engine: plug-in registries, option files,
train_pipeline with an exact resume after SIGKILL, test_pipeline through the model's own test()/validation."""
import json
import shutil
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from engine_helpers import PYTHON, ROOT, read_losses, run_script

from basicsr.metrics import calculate_metric
from basicsr.utils.options import OptionError, parse_options
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY, RegistryError

PLUGIN = Path(__file__).resolve().parent / 'plugin_method'
TRAIN_OPT = PLUGIN / 'options' / 'train_tiny.yml'


def make_data(shared_dir: Path, root: Path) -> Path:
    """Crops of three Kodak images for training (48x48) and two odd-sized ones for validation/testing."""
    kodak = sorted((shared_dir / 'data' / 'Kodak24').glob('*.png'))
    for i, path in enumerate(kodak[:5]):
        img = cv2.imread(str(path))
        sub, crop = ('train', img[100:148, 200:248]) if i < 3 else ('val', img[50:94, 60:96 + 6 * (i - 3)])
        (root / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / sub / path.name), crop)
    return root


def copy_method(root: Path) -> Path:
    """The plug-in package inside ``root``: its train.py puts experiments/, tb_logger/ and results/ there."""
    shutil.copytree(PLUGIN, root / 'plugin_method', ignore=shutil.ignore_patterns('__pycache__'))
    return root


def run(root: Path, script: str, opt: str, force: list, env: dict = None):
    args = [PYTHON, f'plugin_method/{script}', '-opt', f'plugin_method/options/{opt}', '--launcher', 'none',
            '--force_yml', *force]
    return run_script(args, cwd=root, env={'PYTHONPATH': f'{root}:{ROOT}', **(env or {})})


def plugin_options(tmp_path: Path, extra: dict = None, drop: tuple = ()) -> Path:
    """The plug-in's train option file naming its modules under ``imports:`` (no train.py needed), with the
    top-level keys of ``extra`` set and those in ``drop`` removed."""
    opt = yaml.safe_load(TRAIN_OPT.read_text().replace('!!float ', ''))
    opt['imports'] = ['plugin_method.archs', 'plugin_method.models', 'plugin_method.data']
    for sub in ('train', 'val'):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        opt['datasets'][sub]['dataroot_gt'] = str(tmp_path / sub)
    opt.update(extra or {})
    for key in drop:
        del opt[key]
    path = tmp_path / 'opt.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def test_imports_key_registers_plugins_and_tolerates_their_keys(tmp_path):
    opt = parse_options(plugin_options(tmp_path), root=tmp_path)
    assert opt['imports'] == ['plugin_method.archs', 'plugin_method.models', 'plugin_method.data']
    assert MODEL_REGISTRY.is_plugin('TinyPadModel') and not MODEL_REGISTRY.is_plugin('SRModel')
    assert opt['pad_mode'] == 'reflect'  # a key only the plug-in model reads
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'tiny_plugin')
    with pytest.raises(RegistryError, match='closest: TinyWinSR'):  # did-you-mean covers plug-in names
        ARCH_REGISTRY.get('TinyWinSr')
    with pytest.raises(OptionError, match=r"opt.yml: 'imports'.*no_such_method"):
        parse_options(plugin_options(tmp_path, {'imports': ['no_such_method.archs']}), root=tmp_path)


def test_unknown_keys_stay_errors_for_toolbox_models(tmp_path):
    path = plugin_options(tmp_path, {'model_type': 'SRModel'})
    with pytest.raises(OptionError, match="unknown key 'pad_mode'"):
        parse_options(path, root=tmp_path)
    opt = parse_options(plugin_options(tmp_path, {'model_type': 'SRModel'}, drop=('pad_mode', )), root=tmp_path)
    # the plug-in dataset keeps its own keys
    assert opt['datasets']['train']['use_rot'] is True


def test_basicsr_parse_options_reads_the_command_line(tmp_path, monkeypatch):
    path = plugin_options(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(path), '--launcher', 'none', '--debug',
                                      '--local_rank', '0', '--force_yml', 'train:total_iter=4', 'val:val_freq=2'])
    opt, args = parse_options(str(tmp_path), is_train=True)  # BasicSR's call: the root folder, flags from argv
    assert args.opt == str(path) and opt['train']['total_iter'] == 4
    assert opt['name'] == 'debug_tiny_plugin' and opt['logger']['print_freq'] == 1 and opt['val']['val_freq'] == 8
    assert (opt['dist'], opt['rank'], opt['world_size']) == (False, 0, 1) and opt['root_path'] == str(tmp_path)


def test_srmodel_contract_state_round_trip(tmp_path):
    import plugin_method.archs  # noqa: F401
    from basicsr.models import build_model
    opt = parse_options(plugin_options(tmp_path, {'model_type': 'SRModel'}, drop=('pad_mode', )), root=tmp_path)
    opt['train']['warmup_iter'] = 4
    model = build_model(opt)
    assert hasattr(model, 'net_g_ema') and model.ema_decay == 0.9
    model.update_learning_rate(1, warmup_iter=4)
    assert model.get_current_learning_rate() == [pytest.approx(2e-3 / 4)]
    batch = {'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 32, 32)}
    losses = model.train_step([batch], 1)
    assert set(losses) == {'l_pix'} and model.log_dict['l_pix'] == pytest.approx(float(losses['l_pix']))
    state = model.state_dict()
    assert set(state['networks']) == {'net_g', 'net_g_ema'}
    other = build_model(opt)
    other.load_state_dict(state)
    for a, b in zip(model.net_g_ema.parameters(), other.net_g_ema.parameters()):
        assert torch.equal(a, b)
    assert other.optimizers[0].state_dict()['state'].keys() == model.optimizers[0].state_dict()['state'].keys()
    with pytest.raises(ValueError, match='accumulate_grad'):
        model.train_step([batch, batch], 2)


@pytest.mark.slow
def test_plugin_method_trains_resumes_exactly_after_sigkill_and_tests(tmp_path, shared_dir):
    data = make_data(shared_dir, tmp_path / 'data')
    force = [f"datasets:train:dataroot_gt={data / 'train'}", f"datasets:val:dataroot_gt={data / 'val'}"]
    straight = copy_method(tmp_path / 'a')
    done = run(straight, 'train.py', 'train_tiny.yml', force)
    assert done.returncode == 0, done.stderr[-3000:]
    exp_a = straight / 'experiments' / 'tiny_plugin'
    assert (straight / 'tb_logger' / 'tiny_plugin').is_dir()  # BasicSR's layout under the root path
    assert 'TinyPadModel: validated 2 images of tiny_val at 6' in done.stderr  # the model's own validation ran
    assert (exp_a / 'models' / 'net_g_3.pth').is_file()  # its save() at every checkpoint

    killed = copy_method(tmp_path / 'b')
    dead = run(killed, 'train.py', 'train_tiny.yml', force, env={'PLUGIN_METHOD_KILL_AT': '5'})
    assert dead.returncode == -signal.SIGKILL
    states = killed / 'experiments' / 'tiny_plugin' / 'training_states'
    assert sorted(p.name for p in states.glob('ckpt_*.pth')) == ['ckpt_00000003.pth']
    resumed = run(killed, 'train.py', 'train_tiny.yml', force)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stderr and 'at iteration 3' in resumed.stderr
    ref = read_losses(exp_a, 'l_pix')
    assert sorted(ref) == [1, 2, 3, 4, 5, 6]
    assert read_losses(killed / 'experiments' / 'tiny_plugin', 'l_pix') == ref  # bit-identical losses
    a = torch.load(exp_a / 'models' / 'net_g_latest.pth', weights_only=True)
    b = torch.load(killed / 'experiments' / 'tiny_plugin' / 'models' / 'net_g_latest.pth', weights_only=True)
    assert all(torch.equal(a[k][n], b[k][n]) for k in ('params', 'params_ema') for n in a[k])

    weights = exp_a / 'models' / 'net_g_latest.pth'
    tested = run(straight, 'test.py', 'test_tiny.yml',
                 [f"datasets:test_1:dataroot_gt={data / 'val'}", f'path:pretrain_network_g={weights}'])
    assert tested.returncode == 0, tested.stderr[-3000:]
    results = straight / 'results' / 'tiny_plugin_test'
    means = json.loads((results / 'metrics.json').read_text())['tiny_test']
    psnrs = []
    for gt_path in sorted((data / 'val').glob('*.png')):
        gt = cv2.imread(str(gt_path))
        gt = gt[:gt.shape[0] // 2 * 2, :gt.shape[1] // 2 * 2]
        out = cv2.imread(str(results / 'visualization' / 'tiny_test' / f'{gt_path.stem}_tiny_plugin_test.png'))
        assert out.shape == gt.shape  # the padded test() cropped back to scale x the input
        psnrs.append(calculate_metric({'img': out, 'img2': gt},
                                      {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}))
    assert means['psnr'] == pytest.approx(float(np.mean(psnrs)), abs=1e-9)


@pytest.mark.slow
def test_plugin_method_under_torchrun_matches_one_process(tmp_path, shared_dir):
    """Two gloo ranks with one sample each follow the one-process run with batch 2 (same samples, DDP-averaged
    gradients; the float sums differ in order only); validation runs on rank 0 through dist_validation."""
    data = make_data(shared_dir, tmp_path / 'data')
    force = [f"datasets:train:dataroot_gt={data / 'train'}", f"datasets:val:dataroot_gt={data / 'val'}",
             'train:total_iter=4']
    one = copy_method(tmp_path / 'one')
    assert run(one, 'train.py', 'train_tiny.yml', force).returncode == 0
    two = copy_method(tmp_path / 'two')
    args = [PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29763',
            'plugin_method/train.py', '-opt', 'plugin_method/options/train_tiny.yml', '--launcher', 'pytorch',
            '--force_yml', *force, 'datasets:train:batch_size_per_gpu=1']
    ddp = run_script(args, cwd=two, env={'PYTHONPATH': f'{two}:{ROOT}'})
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert 'TinyPadModel: validated 2 images of tiny_val at 3' in ddp.stderr
    ref, got = (read_losses(r / 'experiments' / 'tiny_plugin', 'l_pix') for r in (one, two))
    assert sorted(got) == [1, 2, 3, 4]
    assert all(abs(got[i] - ref[i]) < 1e-4 for i in ref)


def test_swinir_model_pads_tests_and_validates_like_basicsr(tmp_path):
    """SwinIRModel (BasicSR's SRModel + window padding) on odd-sized images: its test() pads by reflection and
    crops back; SRModel's own nondist_validation scores tensor2img outputs and saves BasicSR's file names."""
    import torch.nn.functional as F

    import plugin_method.data  # noqa: F401
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    opt = parse_options(plugin_options(tmp_path, {'model_type': 'SwinIRModel'}, drop=('pad_mode', )), root=tmp_path)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(20, 26), (18, 22)]):
        cv2.imwrite(str(tmp_path / 'val' / f'im{i}.png'), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    model = build_model(opt)
    lq = torch.rand(1, 3, 10, 13)
    model.feed_data({'lq': lq})
    model.test()
    want = model.net_g_ema(F.pad(lq, (0, 3, 0, 6), 'reflect'))[..., :20, :26]
    assert model.output.shape == (1, 3, 20, 26) and torch.allclose(model.output, want)
    loader = build_dataloader(build_dataset(opt['datasets']['val']), opt['datasets']['val'])
    model.validation(loader, 7, None, save_img=True)
    scores = []
    for i in range(2):
        saved = cv2.imread(str(tmp_path / 'experiments' / 'tiny_plugin' / 'visualization' / f'im{i}' / f'im{i}_7.png'))
        gt = cv2.imread(str(tmp_path / 'val' / f'im{i}.png'))
        scores.append(calculate_metric({'img': saved, 'img2': gt}, opt['val']['metrics']['psnr']))
    assert model.metric_results['psnr'] == pytest.approx(np.mean(scores), abs=1e-9)
    assert model.best_metric_results['tiny_val']['psnr'] == {'better': 'higher', 'val': model.metric_results['psnr'],
                                                            'iter': 7}


def test_import_flag_adds_modules_to_the_option_file_ones(tmp_path):
    from basicsr.utils.cli_options import build_parser, load_options
    path = plugin_options(tmp_path, {'imports': ['plugin_method.models', 'plugin_method.data']})
    args = build_parser(is_train=True).parse_args(['-opt', str(path), '--import', 'plugin_method.archs',
                                                   '--force_yml', 'logger:print_freq=5'])
    opt = load_options(args, is_train=True, root=tmp_path)
    assert opt['imports'] == ['plugin_method.models', 'plugin_method.data', 'plugin_method.archs']
    assert opt['logger']['print_freq'] == 5
    bad = build_parser(is_train=True).parse_args(['-opt', str(path), '--import', 'no_such_method'])
    with pytest.raises(SystemExit) as exc:
        load_options(bad, is_train=True, root=tmp_path)
    assert exc.value.code == 2
