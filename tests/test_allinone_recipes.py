"""All-in-one and MPRNet recipes: they parse, their epoch arithmetic matches the data they name, and the small
CPU recipes build on the data prepared from the shared images."""
import math
from pathlib import Path

import pytest

from basicsr.engine.epoch_schedulers import dsrir_epoch_changes, epoch_stage_plan
from basicsr.utils.options import parse_options

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'data'
TRAIN = sorted((ROOT / 'options' / 'train' / 'AllInOne').glob('*.yml')) + \
    sorted((ROOT / 'options' / 'train' / 'MPRNet').glob('*.yml')) + \
    sorted((ROOT / 'options' / 'train' / 'MiOIR').glob('*.yml'))
TEST = sorted((ROOT / 'options' / 'test' / 'AllInOne').glob('*.yml')) + \
    sorted((ROOT / 'options' / 'test' / 'MPRNet').glob('*.yml')) + [ROOT / 'options' / 'test' / 'MiOIR' /
                                                                     'SRResNet_AP_allinone_small.yml']


def _train(name: str) -> dict:
    return parse_options(ROOT / 'options' / 'train' / name, check_paths=False, root=ROOT)


def _stated(path: Path) -> dict:
    """What the file and its ``_base_`` files state, merged here (dicts merge, anything else replaces) without
    the toolbox's option machinery, so parsing is checked against the text."""
    from basicsr.utils.options import load_yaml
    data = load_yaml(path)
    bases = data.pop('_base_', None)
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else (bases or []):
        merged = _merge(merged, _stated(path.parent / base))
    return _merge(merged, data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and value.get('_delete_'):
            out[key] = {k: v for k, v in value.items() if k != '_delete_'}  # replaces instead of merging
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaves(tree: dict, prefix: str = ''):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


@pytest.mark.parametrize('path', TRAIN + TEST, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_recipe_parses_to_the_values_it_states(path):
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, SCHEDULER_REGISTRY
    is_train = 'train' in path.parts
    opt = parse_options(path, is_train=is_train, check_paths=False, root=ROOT)
    stated = _stated(path)
    for key, value in _leaves(stated):
        node = opt
        for part in key.split('.'):
            node = node[part]
        assert node == value, f'{key}: the file says {value!r}, parsing gave {node!r}'
    if opt.get('network_g'):
        ARCH_REGISTRY.get(opt['network_g']['type'])
    if not is_train:
        assert any(k.startswith(('test', 'val')) for k in opt['datasets'])
        return
    if 'train' not in stated:  # a shared base file (mioir_train_base.yml)
        return
    train, data = opt['train'], opt['datasets']['train']
    assert train['total_iter'] > 0 and train['optim_g']['lr'] > 0
    losses = {k: v for k, v in train.items() if k.endswith('_opt') and v}
    assert all(LOSS_REGISTRY.get(v['type']) for v in losses.values())
    assert losses or opt['model_type'] == 'ClassifierModel'  # the classifier's cross-entropy is built in
    if train.get('scheduler'):
        SCHEDULER_REGISTRY.get(train['scheduler']['type'])
    assert data['batch_size_per_gpu'] >= 1 and data['gt_size'] > 0


def test_dsrir_recipe_uses_the_official_change_points_and_stage_plan():
    opt = _train('AllInOne/DSRIR_allinone.yml')
    plan = epoch_stage_plan(15144, dsrir_epoch_changes(15144), [16, 14, 12, 8], [128, 160, 192, 256])
    train_ds = opt['datasets']['train']
    for key in ('mini_batch_sizes', 'gt_sizes', 'iters', 'batch_size_per_gpu', 'gt_size'):
        assert train_ds[key] == plan[key], key
    assert opt['train']['scheduler']['iters_per_epoch'] == plan['iters_per_epoch']
    assert opt['train']['scheduler']['total_epochs'] == 347
    assert opt['train']['total_iter'] == plan['total_iter']
    contrast = opt['train']['contrast_opt']
    assert contrast['loss_weight'] == 0.2 and contrast['outputs'][0]['negative'] == 'lq'


def test_small_dsrir_recipe_matches_its_scaled_plan():
    opt = _train('AllInOne/DSRIR_allinone_small.yml')
    changes = dsrir_epoch_changes(54, [160, 140, 120, 80], [8, 7, 6, 4])
    plan = epoch_stage_plan(54, changes, [8, 7, 6, 4], [32, 40, 48, 64])
    assert opt['datasets']['train']['iters'] == plan['iters']
    assert opt['train']['scheduler']['iters_per_epoch'] == plan['iters_per_epoch']
    assert opt['train']['total_iter'] == plan['total_iter']


@pytest.mark.parametrize('name, samples', [('PromptIR_3task.yml', 5144 * 9 + 200 * 120 + 72135),
                                           ('PromptIR_5task.yml', 5144 * 9 + 200 * 120 + 72135 + 2103 * 5 + 485 * 20)])
def test_promptir_epoch_length_follows_the_repetition_factors(name, samples):
    opt = _train(f'AllInOne/{name}')
    tasks = opt['datasets']['train']['tasks']
    assert [t['repeat'] for t in tasks[:5]] == [3, 3, 3, 120, 1]
    assert [t['degradation']['sigma'] for t in tasks[:3]] == [15, 25, 50]
    ipe = math.ceil(samples / 4) // 8  # 4 GPUs x batch 8, drop_last
    assert opt['train']['scheduler']['iters_per_epoch'] == ipe
    assert opt['train']['total_iter'] == 120 * ipe


@pytest.mark.parametrize('name, images, batch, epochs', [('Deblurring', 2103, 16, 3000), ('Deraining', 13712, 16, 250),
                                                         ('Denoising', 96000, 16, 80)])
def test_mprnet_recipes_count_epochs_of_their_datasets(name, images, batch, epochs):
    opt = _train(f'MPRNet/MPRNet_{name}.yml')
    sched = opt['train']['scheduler']
    assert opt['datasets']['train']['batch_size_per_gpu'] == batch
    # the official MPRNet loaders keep the last partial batch (drop_last=False)
    assert sched['iters_per_epoch'] == math.ceil(images / batch) and sched['total_epochs'] == epochs
    assert opt['train']['total_iter'] == epochs * math.ceil(images / batch)
    losses = {k: v for k, v in opt['train'].items() if k.endswith('_opt') and v}
    expected = {'char_opt'} if name == 'Denoising' else {'char_opt', 'edge_opt'}
    assert set(losses) == expected
    if 'edge_opt' in losses:
        assert losses['edge_opt']['loss_weight'] == 0.05


def test_dsrir_recipe_without_vgg_weights_says_where_to_put_them(tmp_path):
    from basicsr.models.loss_terms import build_loss_terms
    opt = _train('AllInOne/DSRIR_allinone.yml')
    train = dict(opt['train'])
    train['contrast_opt'] = {**train['contrast_opt'], 'vgg_weights_path': str(tmp_path / 'vgg19-dcbb9e9d.pth')}
    with pytest.raises(FileNotFoundError, match=r'train.contrast_opt .*VGG19 ImageNet weights .*put it at '
                                                r'experiments/pretrained_models/vgg19-dcbb9e9d.pth'):
        build_loss_terms(train)


@pytest.fixture(scope='module')
def small_data(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip('shared benchmark data not available')
    import importlib.util
    spec = importlib.util.spec_from_file_location('prepare_allinone', ROOT / 'scripts' / 'prepare_allinone_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp('allinone') / 'allinone_small'
    counts = module.prepare(SHARED, out)
    return out, counts, module


def test_prepared_split_keeps_held_out_images_out_of_training(small_data):
    out, counts, module = small_data
    assert counts == {'denoise_train': 24, 'denoise_test': 8, 'rain_train': 20, 'rain_test': 5, 'haze_train': 10,
                      'haze_test': 5}
    held = {p.name for p in (out / 'test' / 'derain' / 'input').iterdir()}
    trained = {p.name.replace('rain-', '') for p in (out / 'train' / 'Derain' / 'rainy').iterdir()}
    assert held == {'5.png', '10.png', '15.png', '20.png', '25.png'} and not held & trained
    before = {p: p.read_bytes() for p in out.rglob('*') if p.is_file()}
    module.prepare(SHARED, out)
    assert before == {p: p.read_bytes() for p in out.rglob('*') if p.is_file()}


@pytest.mark.parametrize('name', ['PromptIR_allinone_small.yml', 'DSRIR_allinone_small.yml'])
def test_small_recipes_build_their_data_and_network(small_data, name):
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    out, _, _ = small_data
    text = (ROOT / 'options' / 'train' / 'AllInOne' / name).read_text().replace('./datasets/allinone_small', str(out))
    path = out.parent / name
    path.write_text(text)
    opt = parse_options(path, root=ROOT)
    ds = build_dataset(opt['datasets']['train'])
    ds.set_seed(0)
    if name.startswith('PromptIR'):
        assert ds.task_counts() == {'denoise_15': 24, 'denoise_25': 24, 'denoise_50': 24, 'derain': 40, 'dehaze': 40}
        assert opt['train']['scheduler']['iters_per_epoch'] == len(ds) // opt['datasets']['train']['batch_size_per_gpu']
    else:
        assert len(ds) == 54
    sample = ds[(len(ds) - 1, 0)]
    assert sample['lq'].shape == sample['gt'].shape
    net = build_network(opt['network_g'])
    assert sum(p.numel() for p in net.parameters()) > 0


MIOIR_TEST = [p for p in sorted((ROOT / 'options' / 'test' / 'MiOIR').glob('*.yml'))
              if p.name == 'mioir_sets.yml' or 'mioir_sets.yml' in p.read_text()]


@pytest.mark.parametrize('path', MIOIR_TEST, ids=lambda p: p.name)
def test_mioir_test_recipes_parse_and_label_sets_with_the_prompt_ids(path):
    from basicsr.archs.prompt_blocks import MIOIR_TASKS
    opt = parse_options(path, is_train=False, check_paths=False, root=ROOT)
    sets = opt['datasets']
    labelled = [ds for ds in sets.values() if ds['type'] == 'MultiTaskDataset']
    assert len(sets) == 19 and len(labelled) == 14
    for ds in labelled:
        (task, ) = ds['tasks']
        assert MIOIR_TASKS[task['label']] == task['name']
        assert ds['name'].endswith(task['name']) and task['dataroot_lq'].split('/')[-1].startswith(task['name'])
