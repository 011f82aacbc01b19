"""All-in-one data: list-file pairs, the multi-task dataset (repeats, labels, balance) and its sampling."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.data import build_dataset
from basicsr.data.data_util import DataError
from basicsr.data.sampler import EnlargedSampler


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def _img(seed: int, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture()
def roots(tmp_path):
    """PromptIR-like training root (clean, rain pairs, haze pairs), a DSRIR CSV and a SOTS-like test folder."""
    root = tmp_path / 'train'
    for i in range(3):
        _write(root / 'Denoise' / f'c{i}.png', _img(i))
        _write(root / 'Derain' / 'gt' / f'norain-{i + 1}.png', _img(10 + i))
        _write(root / 'Derain' / 'rainy' / f'rain-{i + 1}.png', 255 - _img(10 + i))
    for k in ('0001', '0002'):
        _write(root / 'Dehaze' / 'original' / f'{k}.png', _img(int(k)))
        _write(root / 'Dehaze' / 'synthetic' / 'part1' / f'{k}_0.8_0.2.png', _img(int(k)) // 2 + 100)
    lists = tmp_path / 'lists'
    lists.mkdir()
    (lists / 'denoise.txt').write_text('c0.png\nc1.png\nc2.png\n')
    (lists / 'rain.txt').write_text('rainy/rain-1.png\nrainy/rain-2.png\nrainy/rain-3.png')  # no final newline
    (lists / 'haze.txt').write_text('synthetic/part1/0001_0.8_0.2.png\nsynthetic/part1/0002_0.8_0.2.png\n')
    (lists / 'all.csv').write_text('Denoise/c0.png,Denoise/c0.png\nDerain/gt/norain-1.png,Derain/rainy/rain-1.png\n'
                                   'Derain/gt/norain-1.png,Derain/rainy/rain-1.png\n')
    test = tmp_path / 'sots'
    _write(test / 'input' / '0007_0.9_0.1.png', _img(7))
    _write(test / 'target' / '0007.png', _img(8))
    return {'root': root, 'lists': lists, 'test': test}


NOISE = {'type': 'GaussianNoise', 'sigma': 25, 'quantize': 'floor'}
RAIN_RULE = ['rainy/rain-(\\d+)', 'gt/norain-\\1']
HAZE_RULE = ['^synthetic/[^/]+/(\\d+)_[^/]*$', 'original/\\1.png']


def _tasks(r, **extra):
    return [
        {'name': 'denoise', 'label': 0, 'type': 'ListPairDataset', 'dataroot_lq': str(r['root'] / 'Denoise'),
         'list_file': str(r['lists'] / 'denoise.txt'), 'degradation': NOISE, 'repeat': 2},
        {'name': 'derain', 'label': 3, 'type': 'ListPairDataset', 'dataroot_lq': str(r['root'] / 'Derain'),
         'list_file': str(r['lists'] / 'rain.txt'), 'gt_from_lq': RAIN_RULE, 'repeat': 3, **extra},
        {'name': 'dehaze', 'label': 4, 'type': 'ListPairDataset', 'dataroot_lq': str(r['root'] / 'Dehaze'),
         'list_file': str(r['lists'] / 'haze.txt'), 'gt_from_lq': HAZE_RULE},
    ]


def _multi(r, **opt):
    base = {'name': 'mt', 'type': 'MultiTaskDataset', 'phase': 'train', 'gt_size': 16, 'use_hflip': True,
            'use_rot': True, 'tasks': _tasks(r)}
    ds = build_dataset({**base, **opt})
    ds.set_seed(5)
    return ds


# ---------------------------------------------------------------------------------------------- list pairs
def test_promptir_rain_list_pairs_rainy_with_gt_by_rule(roots):
    ds = build_dataset({'name': 'r', 'type': 'ListPairDataset', 'phase': 'val',
                        'dataroot_lq': str(roots['root'] / 'Derain'), 'list_file': str(roots['lists'] / 'rain.txt'),
                        'gt_from_lq': RAIN_RULE})
    assert len(ds) == 3
    s = ds[1]
    assert s['lq_path'].endswith('rainy/rain-2.png') and s['gt_path'].endswith('gt/norain-2.png')
    assert torch.allclose(s['lq'], 1 - s['gt'], atol=1e-6)


def test_dsrir_csv_synthesises_noise_for_rows_naming_one_file_and_keeps_repeats(roots):
    ds = build_dataset({'name': 'c', 'type': 'ListPairDataset', 'phase': 'val', 'dataroot_lq': str(roots['root']),
                        'list_file': str(roots['lists'] / 'all.csv'), 'list_format': 'csv', 'degradation': NOISE})
    assert len(ds) == 3  # the repeated rain row is kept
    noisy = ds[0]
    assert noisy['lq_path'] == noisy['gt_path']
    diff = (noisy['lq'] - noisy['gt']) * 255
    assert 15 < float(diff.std()) < 30
    assert torch.allclose(noisy['lq'] * 255, torch.round(noisy['lq'] * 255), atol=1e-3)  # truncated to uint8 levels
    assert ds[1]['lq_path'].endswith('rain-1.png')


def test_folder_scan_with_sots_rule(roots):
    ds = build_dataset({'name': 's', 'type': 'ListPairDataset', 'phase': 'test',
                        'dataroot_lq': str(roots['test'] / 'input'), 'dataroot_gt': str(roots['test'] / 'target'),
                        'gt_from_lq': ['^(\\d+)_[^/]*$', '\\1.png']})
    assert len(ds) == 1 and ds[0]['gt_path'].endswith('target/0007.png')


def test_list_errors_name_the_option_and_value(roots):
    base = {'name': 'r', 'type': 'ListPairDataset', 'phase': 'val', 'dataroot_lq': str(roots['root'] / 'Derain')}
    with pytest.raises(DataError, match=r"gt_from_lq' pattern .* does not match the LQ name 'rainy/rain-1.png'"):
        build_dataset({**base, 'list_file': str(roots['lists'] / 'rain.txt'), 'gt_from_lq': ['^x(\\d)', 'y']})
    with pytest.raises(DataError, match=r"give 'degradation'"):
        build_dataset({**base, 'list_file': str(roots['lists'] / 'rain.txt')})
    (roots['lists'] / 'bad.txt').write_text('rainy/rain-9.png\n')
    with pytest.raises(DataError, match=r"missing under dataroot_gt.*gt/norain-9.png"):
        build_dataset({**base, 'list_file': str(roots['lists'] / 'bad.txt'), 'gt_from_lq': RAIN_RULE})
    (roots['lists'] / 'bad.csv').write_text('a.png,b.png,c.png\n')
    with pytest.raises(DataError, match=r"bad.csv' line 1: expected 'target,degraded'"):
        build_dataset({**base, 'list_file': str(roots['lists'] / 'bad.csv'), 'list_format': 'csv'})


# ---------------------------------------------------------------------------------------------- multi-task
def test_epoch_is_the_concatenation_of_repeated_tasks_with_labels(roots):
    ds = _multi(roots)
    assert ds.task_counts() == {'denoise': 6, 'derain': 9, 'dehaze': 2}
    assert len(ds) == 17
    labels = [ds[(i, 0)]['task'] for i in range(len(ds))]
    assert labels == [0] * 6 + [3] * 9 + [4] * 2
    s = ds[(7, 0)]
    assert s['task_name'] == 'derain' and s['lq'].shape == s['gt'].shape == (3, 16, 16)


def test_repeats_of_an_image_are_different_samples_and_seeding_is_exact(roots):
    ds = _multi(roots)
    a, b = ds[(0, 0)], ds[(3, 0)]  # the same clean image, first and second repeat
    assert a['gt_path'] == b['gt_path']
    assert not torch.equal(a['lq'], b['lq'])
    again = _multi(roots)[(0, 0)]
    assert torch.equal(a['lq'], again['lq']) and torch.equal(a['gt'], again['gt'])
    assert not torch.equal(ds[(0, 1)]['lq'], a['lq'])  # another epoch, another crop/noise


def test_shared_options_are_inherited_and_patch_size_reaches_every_task(roots):
    ds = _multi(roots)
    ds.set_patch_size(24)
    assert all(t.dataset.gt_size == 24 for t in ds.tasks)
    assert ds[(16, 0)]['gt'].shape[-1] == 24


def test_balance_tasks_gives_every_task_the_same_share_per_epoch(roots):
    ds = _multi(roots, balance_tasks=True)
    assert ds.task_counts() == {'denoise': 9, 'derain': 9, 'dehaze': 9}
    sampler = EnlargedSampler(len(ds), seed=3)
    labels = [ds.locate(i)[0].label for i, _ in sampler]
    assert sorted(labels) == [0] * 9 + [3] * 9 + [4] * 9
    # the small task cycles through all its images
    assert {ds.locate(i)[1] for i in range(18, 27)} == {0, 1}


def test_sampler_resumes_and_shards_a_multitask_epoch_exactly(roots):
    ds = _multi(roots, balance_tasks=True)
    full = [k for k in EnlargedSampler(len(ds), seed=9)]
    s = EnlargedSampler(len(ds), seed=9)
    it = iter(s)
    first = [next(it) for _ in range(10)]
    s.record(10)
    resumed = EnlargedSampler(len(ds), seed=9)
    resumed.load_state_dict(s.state_dict())
    assert first + list(resumed) == full
    shards = [list(EnlargedSampler(len(ds), num_replicas=3, rank=r, seed=9)) for r in range(3)]
    interleaved = [shards[r][i] for i in range(len(shards[0])) for r in range(3)]
    assert interleaved[:len(full)] == full
    assert [ds[k]['task'] for k in full[:4]] == [ds[k]['task'] for k in interleaved[:4]]


# ---------------------------------------------------------------------------------------------- bad input
def test_a_task_with_no_samples_names_the_task(roots, tmp_path):
    (tmp_path / 'empty').mkdir()
    tasks = _tasks(roots)
    tasks[1] = {'name': 'derain', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'empty'),
                'dataroot_lq': str(tmp_path / 'empty')}
    with pytest.raises(DataError, match=r"option 'tasks\[1\] \(derain\)'.*dataroot_gt' = '.*empty' contains no images"):
        _multi(roots, tasks=tasks)
    (roots['lists'] / 'empty.txt').write_text('# nothing listed\n')
    tasks[1] = {**_tasks(roots)[1], 'list_file': str(roots['lists'] / 'empty.txt')}
    with pytest.raises(DataError, match=r"tasks\[1\] \(derain\).*empty.txt' names no images"):
        _multi(roots, tasks=tasks)
    with pytest.raises(DataError, match=r"tasks\[0\] \(denoise\).repeat' must be a positive integer.*got 0.*"
                                        r"no samples"):
        _multi(roots, tasks=[{**_tasks(roots)[0], 'repeat': 0}])


def test_a_label_outside_the_networks_task_prompts_is_rejected(roots):
    with pytest.raises(DataError, match=r"'tasks\[2\].label' = 4 \(task 'dehaze'\) is outside the range 0..3 .*"
                                        r"num_task_prompts: 4"):
        _multi(roots, num_task_prompts=4)
    assert len(_multi(roots, num_task_prompts=5)) == 17


def test_task_blocks_are_checked_like_dataset_blocks(roots):
    with pytest.raises(DataError, match=r"unknown option 'tasks\[1\] \(derain\).gt_from_lqq'; "
                                        r"did you mean 'gt_from_lq'"):
        _multi(roots, tasks=[_tasks(roots)[0], {**_tasks(roots)[1], 'gt_from_lqq': RAIN_RULE}])
    with pytest.raises(DataError, match=r"'tasks\[0\] \(denoise\).batch_size_per_gpu' belongs to the multi-task block"):
        _multi(roots, tasks=[{**_tasks(roots)[0], 'batch_size_per_gpu': 2}])
    with pytest.raises(DataError, match=r'task names must be unique'):
        _multi(roots, tasks=[_tasks(roots)[0], _tasks(roots)[0]])
