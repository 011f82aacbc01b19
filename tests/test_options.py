"""Option files: _base_ inheritance, --set overrides, validation errors that name file, key and fix."""
import textwrap
from pathlib import Path

import pytest
import yaml

from basicsr.utils.options import OptionError, apply_overrides, load_with_bases, parse_options

MINIMAL = '''
name: tiny
model_type: ImageRestorationModel
scale: 1
num_gpu: 0
manual_seed: 0
network_g: {type: NAFNet, width: 8, enc_blk_nums: [1], middle_blk_num: 1, dec_blk_nums: [1]}
train:
  optim_g: {type: AdamW, lr: 1e-3}
  total_iter: 10
  pixel_opt: {type: L1Loss, loss_weight: 1.0}
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_base_inheritance_deep_merges(tmp_path):
    write(tmp_path, 'base.yml', MINIMAL)
    child = write(tmp_path, 'child.yml', '''
        _base_: base.yml
        name: child
        train: {total_iter: 20}
    ''')
    opt = load_with_bases(child)
    assert opt['name'] == 'child' and opt['train']['total_iter'] == 20
    assert opt['train']['optim_g'] == {'type': 'AdamW', 'lr': 1e-3}  # kept from the base


def test_scientific_notation_is_float_without_tags(tmp_path):
    opt = load_with_bases(write(tmp_path, 'a.yml', MINIMAL + 'val: {val_freq: 5e3}\n'))
    assert opt['train']['optim_g']['lr'] == pytest.approx(1e-3) and opt['val']['val_freq'] == 5000.0


def test_set_overrides_parse_values():
    opt = apply_overrides({'train': {'total_iter': 5}}, ['train.total_iter=10', 'datasets.train.gt_sizes=[64, 96]'])
    assert opt['train']['total_iter'] == 10 and opt['datasets']['train']['gt_sizes'] == [64, 96]
    with pytest.raises(OptionError, match='dotted.key=value'):
        apply_overrides({}, ['novalue'])


def test_typo_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, 'typo.yml', MINIMAL.replace('total_iter: 10', 'total_iter: 10\n  totl_iter: 3'))
    with pytest.raises(OptionError) as info:
        parse_options(path, is_train=True)
    msg = str(info.value)
    assert str(path) in msg and "'train.totl_iter'" in msg and "did you mean 'train.total_iter'" in msg


def test_wrong_type_and_missing_path_and_required(tmp_path):
    text = MINIMAL.replace('scale: 1', "scale: 'two'").replace('  total_iter: 10\n', '')
    text += 'path: {pretrain_network_g: /no/such/file.pth}\n'
    with pytest.raises(OptionError) as info:
        parse_options(write(tmp_path, 'bad.yml', text))
    msg = str(info.value)
    assert "'scale' must be int, got str 'two'" in msg
    assert "'path.pretrain_network_g': path '/no/such/file.pth' does not exist" in msg
    assert "'train.total_iter' is required" in msg


def test_network_kwargs_checked_before_building(tmp_path):
    path = write(tmp_path, 'net.yml', MINIMAL.replace('width: 8', 'widht: 8'))
    with pytest.raises(OptionError, match=r"'widht' \(did you mean 'width'\?\)"):
        parse_options(path)


def test_unknown_network_type_lists_closest(tmp_path):
    path = write(tmp_path, 'net.yml', MINIMAL.replace('type: NAFNet', 'type: NAFNett'))
    with pytest.raises(OptionError, match='closest: NAFNet'):
        parse_options(path)


def test_resolved_paths_and_defaults(tmp_path):
    opt = parse_options(write(tmp_path, 'ok.yml', MINIMAL), root=tmp_path)
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'tiny')
    assert opt['logger']['print_freq'] == 100 and opt['path']['strict_load_g'] is True
    test_opt = parse_options(write(tmp_path, 'ok.yml', MINIMAL), is_train=False, root=tmp_path)
    assert test_opt['path']['results_root'] == str(tmp_path / 'results' / 'tiny')


OFFICIAL = Path(__file__).resolve().parents[1] / 'options' / 'train' / 'official'


# only sizes, devices and logging change: types, losses, schedules, augmentation and data paths stay official
SHRINK = ['num_gpu=0', 'train.total_iter=2', 'logger.print_freq=1', 'logger.save_checkpoint_freq=2',
          'logger.use_tb_logger=false', 'val.val_freq=2', 'datasets.train.num_worker_per_gpu=0']
OFFICIAL_SHRINK = {
    'NAFNet-SIDD-width32.yml': ['network_g.width=8', 'network_g.enc_blk_nums=[1,1]', 'network_g.middle_blk_num=1',
                                'network_g.dec_blk_nums=[1,1]', 'datasets.train.gt_size=32',
                                'datasets.train.batch_size_per_gpu=2'],
    'Restormer-GaussianColorDenoising.yml': [
        'network_g.dim=8', 'network_g.num_blocks=[1,1,1,1]', 'network_g.num_refinement_blocks=1',
        'network_g.heads=[1,1,1,1]', 'datasets.train.gt_size=32', 'datasets.train.gt_sizes=[16,16,16,16,32,32]',
        'datasets.train.mini_batch_sizes=[2,2,2,2,1,1]', 'datasets.train.iters=[1,1,1,1,1,1]',
        'datasets.train.batch_size_per_gpu=2'],
}


def _official_data(root: Path, lmdb: bool) -> None:
    """Tiny images where the official files look for their data (./datasets/... relative to the run folder)."""
    import importlib.util

    import cv2
    import numpy as np

    from engine_helpers import make_clean_images
    if not lmdb:
        make_clean_images(root / 'datasets' / 'DFWB', n=4, size=48)
        make_clean_images(root / 'datasets' / 'denoise' / 'CBSD68', n=2, size=48, seed=1)
        return
    spec = importlib.util.spec_from_file_location('create_lmdb', OFFICIAL.parents[2] / 'scripts' / 'create_lmdb.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    for split, n in (('train', 4), ('val', 2)):
        gt = make_clean_images(root / 'png' / split / 'gt', n=n, size=48, seed=len(split))
        (root / 'png' / split / 'lq').mkdir()
        for p in sorted(gt.iterdir()):
            noisy = cv2.imread(str(p)).astype(np.float32) + rng.normal(0, 15, (48, 48, 3))
            cv2.imwrite(str(root / 'png' / split / 'lq' / p.name), np.clip(noisy, 0, 255).round().astype(np.uint8))
        module.create_lmdb(gt, root / 'datasets' / 'SIDD' / split / 'gt_crops.lmdb')
        module.create_lmdb(root / 'png' / split / 'lq', root / 'datasets' / 'SIDD' / split / 'input_crops.lmdb')


@pytest.mark.parametrize('name', sorted(OFFICIAL_SHRINK))
def test_official_option_files_build_and_train_two_iterations(name, tmp_path, monkeypatch):
    """The official files (under options/train/official) build their data, network, losses, schedule and
    hooks and train: 2 iterations on tiny data laid out at the files' own dataset paths, then validation."""
    import math

    from engine_helpers import read_losses

    from basicsr.engine.trainer import Trainer
    path = OFFICIAL / name
    official = yaml.safe_load(path.read_text())
    _official_data(tmp_path, lmdb=name.startswith('NAFNet'))
    monkeypatch.chdir(tmp_path)
    opt = parse_options(path, SHRINK + OFFICIAL_SHRINK[name], root=tmp_path)
    for key in ('scheduler', 'optim_g', 'pixel_opt'):
        assert opt['train'][key] == {k: v for k, v in official['train'][key].items()}, key
    trainer = Trainer(opt)
    trainer.train()
    assert trainer.model.net_g.__class__.__name__ == official['network_g']['type']
    losses = read_losses(tmp_path / 'experiments' / official['name'])
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    # iteration 2 runs at the official schedule's value after one step (NAFNet: cosine over T_max 200000)
    lr = trainer.model.get_current_learning_rate()[0]
    if name.startswith('NAFNet'):
        assert lr == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi / 200000)), rel=1e-12)
    else:
        assert lr == pytest.approx(3e-4, rel=1e-12)  # first cycle anneals 3e-4 -> eta_min 3e-4
    assert (tmp_path / 'experiments' / official['name'] / 'training_states' / 'ckpt_00000002.pth').is_file()
    assert trainer.best, 'validation at iteration 2 recorded no metric'


# ---------------------------------------------------------------------------------------------- parse-time checks
# every `type:` block is checked when the file is parsed: registered name (closest suggested), known arguments,
# value types; each case names the dotted key and what was expected
VALIDATION_CASES = {
    'val_metric_type': ("val: {metrics: {psnr: {type: calculate_psnrr, crop_border: 0}}}\n",
                        ["'val.metrics.psnr.type'", 'calculate_psnr']),
    'val_metric_argument': ("val: {metrics: {psnr: {type: calculate_psnr, crop_bordr: 0}}}\n",
                            ["'val.metrics.psnr'", "did you mean 'crop_border'"]),
    'val_profile': ("val: {profile: basicsr_rbg}\n", ["'val.profile'", "did you mean 'basicsr_rgb'"]),
    'model_type': ("model_type: ImageRestorationModl\n", ["'model_type'", 'ImageRestorationModel']),
    'dataset_type': ("datasets: {train: {name: t, type: PairedImageDatset, dataroot_gt: '.', dataroot_lq: '.'}}\n",
                     ["'datasets.train.type'", 'PairedImageDataset']),
    'degradation_type': ("datasets: {train: {name: t, type: SyntheticDegradationDataset, dataroot_gt: '.', "
                         "degradation: {type: GausianNoise, sigma: 25}}}\n",
                         ["'datasets.train.degradation.type'", 'GaussianNoise']),
    'degradation_value': ("datasets: {train: {name: t, type: SyntheticDegradationDataset, dataroot_gt: '.', "
                          "degradation: {type: GaussianNoise, sigma: high}}}\n",
                          ["'datasets.train.degradation.sigma'", 'must be a number', "'high'"]),
    'task_degradation': ("datasets: {train: {name: t, type: MultiTaskDataset, tasks: [{name: n, type: "
                         "SyntheticDegradationDataset, dataroot_gt: '.', degradation: {type: GaussianNoize}}]}}\n",
                         ["'datasets.train.tasks[0].degradation.type'", 'GaussianNoise']),
    'optimiser_type': ("train: {optim_g: {type: AdamWW, lr: 1.0e-3}}\n", ["'train.optim_g.type'", "'AdamW'"]),
    'optimiser_value': ("train: {optim_g: {type: AdamW, lr: fast}}\n",
                        ["'train.optim_g.lr' (AdamW) must be a number", "'fast'"]),
    'optimiser_argument': ("train: {optim_g: {type: AdamW, lr: 1.0e-3, weight_decy: 0}}\n",
                           ["'train.optim_g' (AdamW)", "did you mean 'weight_decay'"]),
    'scheduler_type': ("train: {scheduler: {type: TrueCosineAnealingLR, T_max: 10}}\n",
                       ["'train.scheduler.type'", 'TrueCosineAnnealingLR']),
    'scheduler_value': ("train: {scheduler: {type: TrueCosineAnnealingLR, T_max: long}}\n",
                        ["'train.scheduler.T_max'", 'must be int', "'long'"]),
    'network_value': ("network_g: {type: NAFNet, width: sixteen}\n",
                      ["'network_g.width' (NAFNet) must be int", "'sixteen'"]),
    'loss_value': ("train: {pixel_opt: {type: L1Loss, loss_weight: heavy}}\n", ["'train.pixel_opt.loss_weight'"]),
    'inference_tile': ("test: {tile: {size: 64, overlap: 64}}\n", ['test.tile.overlap (64)', 'test.tile.size']),
    'inference_padding': ("val: {pad_multiple: zero}\n", ["val.pad_multiple must be an int, 'auto' or null"]),
    'tlc_train_size': ("test: {tlc: {train_size: [3, 64, 64]}}\n",
                       ['test.tlc.train_size must be [N, C, H, W]', '[3, 64, 64]']),
    'tlc_train_size_scalar': ("val: {tlc: {train_size: 64}}\n", ['val.tlc.train_size must be [N, C, H, W]']),
    'tlc_base_size': ("test: {tlc: {train_size: [1, 3, 64, 64], base_size: big}}\n",
                      ["test.tlc.base_size must be a positive int or [H, W], got 'big'"]),
    'tlc_fast_imp': ("test: {tlc: {fast_imp: yes please}}\n", ["test.tlc.fast_imp must be true or false"]),
    'tlc_extra': ("val: {tlc: {extra: 1}}\n", ['val.tlc.extra must be true or false, got 1']),
    'tlc_key': ("test: {tlc: {train_sise: [1, 3, 64, 64]}}\n", ["'test.tlc.train_sise'", "'train_size'"]),
    'task_classifier_type': ("test: {task_classifier: {network: {type: Clasifier}, weights: c.pth}}\n",
                             ["'test.task_classifier.network.type'", 'closest: Classifier']),
    'task_classifier_kwargs': ("test: {task_classifier: {network: {type: Classifier, num_tasks: seven}, "
                               "weights: c.pth}}\n",
                               ["'test.task_classifier.network.num_tasks' (Classifier) must be int", "'seven'"]),
    'task_classifier_argument': ("test: {task_classifier: {network: {type: Classifier, num_task: 7}, "
                                 "weights: c.pth}}\n", ["'test.task_classifier.network' (Classifier)", 'num_tasks']),
    'task_classifier_layout': ("test: {task_classifier: {weights: c.pth}}\n",
                               ["test.task_classifier must be {network: {type: ...}, weights: FILE"]),
}


@pytest.mark.parametrize('case', list(VALIDATION_CASES))
def test_every_type_block_is_checked_at_parse_time(tmp_path, case):
    extra, expected = VALIDATION_CASES[case]
    base = write(tmp_path, 'base.yml', MINIMAL)
    path = write(tmp_path, f'{case}.yml', f'_base_: base.yml\n{extra}')
    with pytest.raises(OptionError) as info:
        parse_options(path, check_paths=False, root=tmp_path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for part in expected:
        assert part in msg, (part, msg)
    assert base.exists() and not (tmp_path / 'experiments').exists()


def test_task_classifier_weights_file_must_exist_at_parse_time(tmp_path):
    block = "test: {task_classifier: {network: {type: Classifier}, weights: '%s'}}\n"
    path = write(tmp_path, 'cls.yml', MINIMAL + block % (tmp_path / 'missing.pth'))
    with pytest.raises(OptionError) as info:
        parse_options(path, root=tmp_path)
    msg = str(info.value)
    assert str(path) in msg and f"'test.task_classifier.weights': path '{tmp_path / 'missing.pth'}' does not exist" \
        in msg, msg
    (tmp_path / 'here.pth').write_bytes(b'')
    parse_options(write(tmp_path, 'ok.yml', MINIMAL + block % (tmp_path / 'here.pth')), root=tmp_path)


def test_set_value_of_wrong_type_names_the_override(tmp_path):
    path = write(tmp_path, 'ok.yml', MINIMAL)
    with pytest.raises(OptionError) as info:
        parse_options(path, ['train.optim_g.lr=fast'], root=tmp_path)
    msg = str(info.value)
    assert "'train.optim_g.lr' (AdamW) must be a number (float), got str 'fast'" in msg
    assert '(set by --set train.optim_g.lr=fast)' in msg and str(path) in msg
    with pytest.raises(OptionError) as info:
        parse_options(path, ['test.tile.size=-5'], root=tmp_path)
    assert 'test.tile.size must be an int >= 1, got -5 (set by --set test.tile.size=-5)' in str(info.value)


def test_set_value_that_is_not_yaml_names_the_override():
    with pytest.raises(OptionError, match=r"--set val\.suffix=\[x: the value is not valid YAML"):
        apply_overrides({}, ['val.suffix=[x'])


def test_duplicate_yaml_key_names_file_key_and_lines(tmp_path):
    path = write(tmp_path, 'dup.yml', MINIMAL.replace('  total_iter: 10\n', '  total_iter: 10\n  total_iter: 20\n'))
    first = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if 'total_iter' in line][0]
    with pytest.raises(OptionError) as info:
        load_with_bases(path)
    msg = str(info.value)
    assert str(path) in msg and "duplicate key 'total_iter'" in msg
    assert f'first given at line {first}' in msg and f'at line {first + 1}' in msg


def test_yaml_syntax_error_is_one_line_with_its_position(tmp_path):
    path = write(tmp_path, 'syntax.yml', MINIMAL + 'val: {val_freq: [5\n')
    with pytest.raises(OptionError) as info:
        load_with_bases(path)
    msg = str(info.value)
    assert '\n' not in msg and str(path) in msg and 'line' in msg and 'column' in msg


def test_missing_data_folder_names_the_script_that_creates_it(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    text = MINIMAL + ("datasets: {val: {name: v, type: PairedImageDataset, "
                      "dataroot_gt: datasets/denoise/NoSuchSet, dataroot_lq: datasets/denoise/NoSuchSet}}\n")
    with pytest.raises(OptionError) as info:
        parse_options(write(tmp_path, 'data.yml', text), root=tmp_path)
    msg = str(info.value)
    assert "'datasets.val.dataroot_gt': path 'datasets/denoise/NoSuchSet' does not exist" in msg
    assert 'python scripts/prepare_denoise_data.py creates it' in msg
    tasks = MINIMAL + ("datasets: {train: {name: t, type: MultiTaskDataset, tasks: [{name: rain, type: "
                       "PairedImageDataset, dataroot_gt: datasets/allinone_small/nope, dataroot_lq: '.'}]}}\n")
    with pytest.raises(OptionError) as info:
        parse_options(write(tmp_path, 'tasks.yml', tasks), root=tmp_path)
    assert "'datasets.train.tasks[0].dataroot_gt': path 'datasets/allinone_small/nope' does not exist" in str(
        info.value) and 'python scripts/prepare_allinone_data.py creates it' in str(info.value)
    from basicsr.utils.option_checks import prepare_hint
    assert 'scripts/prepare_mioir_data.py' in prepare_hint('./datasets/MiOIR/DF2K/blur_sub300')
    other = MINIMAL + "datasets: {val: {name: v, type: SingleImageDataset, dataroot_lq: /no/such/folder}}\n"
    with pytest.raises(OptionError) as info:
        parse_options(write(tmp_path, 'other.yml', other), root=tmp_path)
    assert 'does not exist' in str(info.value) and 'prepare_' not in str(info.value)


def test_train_py_option_error_creates_no_run_folder(tmp_path, capsys):
    from basicsr.train import main
    from basicsr.utils.cli import run_cli
    path = write(tmp_path, 'bad.yml', MINIMAL.replace('width: 8', 'width: sixteen'))
    code = run_cli(main, ['-opt', str(path), '--set', f'path.experiments_root={tmp_path / "exp"}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'network_g.width' (NAFNet) must be int" in err[0]
    assert not (tmp_path / 'exp').exists()


def test_binary_file_given_as_option_file(tmp_path):
    path = tmp_path / 'weights.pth'
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(OptionError, match=r'weights\.pth: not an option file: not UTF-8 text'):
        load_with_bases(path)
