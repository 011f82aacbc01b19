"""ClassifierModel: MiOIR's degradation classifier trained through the engine on two synthetic tasks."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from engine_helpers import ROOT, make_clean_images, read_losses

from basicsr.utils.options import OptionError, parse_options

# two clearly different degradations of the same clean images: strong colour noise vs strong darkening
TASKS = [{'name': 'noise', 'label': 0, 'type': 'SyntheticDegradationDataset',
          'degradation': {'type': 'GaussianNoise', 'sigma': 50}},
         {'name': 'dark', 'label': 1, 'type': 'SyntheticDegradationDataset',
          'degradation': {'type': 'LowLight', 'gamma_range': [2.5, 3.0]}}]
NETWORK = {'type': 'Classifier', 'num_tasks': 2, 'return_logits': True}


def classifier_options(root: Path, name: str = 'cls', total_iter: int = 30, ckpt_freq: int = 15,
                       **train: object) -> Path:
    """A tiny classifier run: 48 px crops of six 72 px images, each under both degradations."""
    clean = str(make_clean_images(root / 'clean'))
    tasks = [{**t, 'dataroot_gt': clean} for t in TASKS]
    opt = {
        'name': name, 'model_type': 'ClassifierModel', 'num_gpu': 0, 'manual_seed': 5,
        'datasets': {
            'train': {'name': 'two', 'type': 'MultiTaskDataset', 'tasks': tasks, 'gt_size': 48, 'use_hflip': True,
                      'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 8,
                      'dataset_enlarge_ratio': 4},
            'val': {'name': 'twoval', 'type': 'MultiTaskDataset', 'tasks': tasks}},
        'network_g': dict(NETWORK),
        'path': {'experiments_root': str(root / 'experiments' / name)},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter],
                                'restart_weights': [1], 'eta_min': 1e-7},
                  'total_iter': total_iter, 'ema_decay': 0.5, **train},
        'val': {'val_freq': total_iter, 'pbar': False},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': ckpt_freq, 'use_tb_logger': False},
    }
    path = root / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def train(opt_path: Path, overrides=()):
    from basicsr.engine.trainer import Trainer
    trainer = Trainer(parse_options(opt_path, list(overrides), is_train=True))
    trainer.train()
    return trainer


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One 30-iteration run shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp('cls')
    trainer = train(classifier_options(root), ['logger.use_tb_logger=true'])
    return root / 'experiments' / 'cls', trainer


def test_cross_entropy_decreases(trained):
    exp, _ = trained
    losses = read_losses(exp, 'l_ce')
    assert sorted(losses) == list(range(1, 31))
    first, last = sum(losses[i] for i in range(1, 6)) / 5, sum(losses[i] for i in range(26, 31)) / 5
    assert first > 0.5 and last < 0.5 * first, (first, last)


def test_validation_writes_overall_and_per_task_accuracy(trained):
    exp, trainer = trained
    metrics = json.loads((exp / 'val_results' / 'metrics.json').read_text())
    mean = metrics['twoval_00000030']['mean']
    assert set(mean) == {'accuracy', 'accuracy_noise', 'accuracy_dark'}
    assert mean['accuracy'] == pytest.approx((mean['accuracy_noise'] + mean['accuracy_dark']) / 2)
    assert mean['accuracy'] == 1.0
    assert metrics['twoval_00000030']['num_images'] == 12
    assert trainer.best['twoval']['accuracy'] == {'val': 1.0, 'iter': 30}
    log = next((exp / 'log').glob('train_cls_*.log')).read_text()
    assert 'validation twoval @ 30 (task accuracy (whole-image argmax); scores the EMA weights (net_g_ema)):' in log
    assert 'accuracy_dark: 1.0000  (best 1.0000 @ 30)' in log
    rows = (exp / 'val_results' / 'twoval_00000030_per_image.csv').read_text().splitlines()
    assert rows[0].split(',') == ['name', 'task_name', 'task', 'pred', 'correct'] and len(rows) == 13


def test_validation_accuracy_reaches_tensorboard(trained):
    event_accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')
    exp, _ = trained
    events = event_accumulator.EventAccumulator(str(exp / 'tb_logger'))
    events.Reload()
    assert {'metrics/twoval/accuracy', 'metrics/twoval/accuracy_noise', 'metrics/twoval/accuracy_dark',
            'losses/l_ce'} <= set(events.Tags()['scalars'])
    assert [(e.step, e.value) for e in events.Scalars('metrics/twoval/accuracy')] == [(30, 1.0)]


def test_saved_weights_predict_the_task_through_task_classifier(trained):
    from basicsr.data import build_dataset
    from basicsr.inference.task_classifier import build_task_classifier
    exp, _ = trained
    weights = exp / 'models' / 'net_g_latest.pth'
    # the official probability-returning network (return_logits false) loads the same weights
    classify = build_task_classifier({'network': {'type': 'Classifier', 'num_tasks': 2}, 'weights': str(weights)},
                                     where='test.task_classifier')
    val = build_dataset({'name': 'check', 'type': 'MultiTaskDataset', 'phase': 'val',
                         'tasks': [{**t, 'dataroot_gt': str(exp.parents[1] / 'clean'), 'noise_seed': 9}
                                   for t in TASKS]})
    lq = torch.stack([val[i]['lq'] for i in range(len(val))])
    labels = torch.tensor([val[i]['task'] for i in range(len(val))])
    assert torch.equal(classify(lq), labels)


def test_resume_continues_the_same_run(tmp_path):
    """Three iterations then three more after a restart give the losses of six straight iterations."""
    straight = classifier_options(tmp_path / 'a', name='straight', total_iter=6, ckpt_freq=3,
                                  label_smoothing=0.1)
    train(straight)
    split = classifier_options(tmp_path / 'b', name='split', total_iter=6, ckpt_freq=3, label_smoothing=0.1)
    first = train(split, ['train.total_iter=3'])
    second = train(split)
    assert second.iter == 6 and first.iter == 3
    assert read_losses(tmp_path / 'b' / 'experiments' / 'split', 'l_ce') == \
        read_losses(tmp_path / 'a' / 'experiments' / 'straight', 'l_ce')
    a = torch.load(tmp_path / 'a' / 'experiments' / 'straight' / 'models' / 'net_g_latest.pth')
    b = torch.load(tmp_path / 'b' / 'experiments' / 'split' / 'models' / 'net_g_latest.pth')
    assert set(a) == {'params', 'params_ema'}
    for key in a:
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_probability_output_is_refused(tmp_path):
    from basicsr.models import build_model
    opt = parse_options(classifier_options(tmp_path), ['network_g.return_logits=false'], is_train=True)
    with pytest.raises(ValueError, match='return_logits: true'):
        build_model(opt)


def test_restoration_losses_are_refused(tmp_path):
    from basicsr.models import build_model
    opt = parse_options(classifier_options(tmp_path), ['train.pixel_opt={type: L1Loss}'], is_train=True)
    with pytest.raises(ValueError, match=r"remove train.\['pixel_opt'\]"):
        build_model(opt)


def test_batches_without_task_labels_are_refused(tmp_path):
    from basicsr.models import build_model
    model = build_model(parse_options(classifier_options(tmp_path), is_train=True))
    with pytest.raises(KeyError, match='MultiTaskDataset'):
        model.optimize_parameters([{'lq': torch.rand(2, 3, 48, 48)}], 1)


def test_label_smoothing_must_be_a_number():
    with pytest.raises(OptionError, match='train.label_smoothing'):
        from basicsr.utils.options import validate_options
        validate_options({'name': 'x', 'train': {'total_iter': 1, 'label_smoothing': 'a'}}, 'inline',
                         check_paths=False)


def test_mioir_recipe_parses():
    opt = parse_options(ROOT / 'options' / 'train' / 'MiOIR' / 'Classifier.yml', is_train=True,
                        check_paths=False, root=ROOT)
    assert opt['model_type'] == 'ClassifierModel'
    assert opt['network_g'] == {'type': 'Classifier', 'num_tasks': 7, 'return_logits': True}
    train_set, val_set = opt['datasets']['train'], opt['datasets']['val']
    assert train_set['gt_size'] == 256 and train_set['batch_size_per_gpu'] == 16
    assert sorted(t['label'] for t in train_set['tasks']) == list(range(7))
    assert sorted(t['label'] for t in val_set['tasks']) == list(range(7))
    assert opt['train']['total_iter'] == 1_000_000 and opt['train']['scheduler']['periods'] == [250000] * 4
    assert opt['val']['val_freq'] == 25000
    assert not any(k.endswith('_opt') for k in opt['train'])


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_shard_validation(tmp_path):
    from engine_helpers import PYTHON, run_script
    one = classifier_options(tmp_path / 'one', name='one', total_iter=4, ckpt_freq=4)
    r1 = run_script([PYTHON, 'basicsr/train.py', '-opt', str(one)], cwd=ROOT)
    assert r1.returncode == 0, r1.stderr[-3000:]
    two = classifier_options(tmp_path / 'two', name='two', total_iter=4, ckpt_freq=4)
    r2 = run_script([PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29737',
                     'basicsr/train.py', '-opt', str(two), '--set', 'datasets.train.batch_size_per_gpu=4'], cwd=ROOT)
    assert r2.returncode == 0, r2.stderr[-3000:]
    ref, got = read_losses(tmp_path / 'one' / 'experiments' / 'one', 'l_ce'), \
        read_losses(tmp_path / 'two' / 'experiments' / 'two', 'l_ce')
    assert sorted(got) == sorted(ref) == [1, 2, 3, 4]
    for it in ref:
        assert got[it] == pytest.approx(ref[it], abs=1e-5), (it, got[it], ref[it])
    metrics = [json.loads((tmp_path / n / 'experiments' / n / 'val_results' / 'metrics.json').read_text())
               for n in ('one', 'two')]
    assert metrics[1]['twoval_00000004']['num_images'] == 12  # each image scored once over the two ranks
    assert metrics[1]['twoval_00000004']['mean'] == pytest.approx(metrics[0]['twoval_00000004']['mean'])
