"""One LMDB read by several datasets of a process (train and val, several noise levels of one clean set), in
DataLoader workers too; the fixed test noise is the same for a folder and its LMDB copy."""
import pytest
import torch

from data_helpers import load_script
from engine_helpers import make_clean_images

from basicsr.data import build_dataset

pytest.importorskip('lmdb')


@pytest.fixture
def clean(tmp_path):
    folder = make_clean_images(tmp_path / 'clean', n=3, size=32)
    assert load_script('create_lmdb').create_lmdb(folder, tmp_path / 'clean.lmdb') == 3
    return folder, tmp_path / 'clean.lmdb'


def _noisy(root, phase, sigma=25, backend='lmdb', **extra):
    return {'name': f'{phase}{sigma}', 'type': 'SyntheticDegradationDataset', 'phase': phase,
            'dataroot_gt': str(root), 'io_backend': {'type': backend}, 'gt_size': 16,
            'degradation': {'type': 'GaussianNoise', 'sigma': sigma}, **extra}


def test_train_and_val_datasets_share_one_lmdb_also_in_workers(clean):
    _, db = clean
    train, val = build_dataset(_noisy(db, 'train')), build_dataset(_noisy(db, 'val'))
    assert train[(0, 0)]['gt'].shape == (3, 16, 16)
    assert val[0]['gt'].shape == (3, 32, 32)  # the second open of the same database in this process
    both = torch.utils.data.ConcatDataset([val, val])
    for workers in (0, 2):  # forked workers inherit this process's open environment
        batches = list(torch.utils.data.DataLoader(both, batch_size=3, num_workers=workers))
        assert [b['gt'].shape[0] for b in batches] == [3, 3]
        assert torch.equal(batches[0]['lq'], batches[1]['lq'])


def test_multitask_noise_levels_over_one_clean_lmdb(clean):
    _, db = clean
    tasks = [{'name': f'noise{s}', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(db),
              'degradation': {'type': 'GaussianNoise', 'sigma': s}} for s in (15, 25, 50)]
    ds = build_dataset({'name': 'mt', 'type': 'MultiTaskDataset', 'phase': 'val', 'io_backend': {'type': 'lmdb'},
                        'tasks': tasks})
    assert len(ds) == 9
    spread = [float(((ds[i]['lq'] - ds[i]['gt']) * 255).std()) for i in (0, 3, 6)]
    assert 10 < spread[0] < spread[1] < spread[2] < 60  # sigma 15 < 25 < 50 (clipped at 0 and 255)


def test_fixed_test_noise_is_the_same_for_a_folder_and_its_lmdb_copy(clean):
    folder, db = clean
    from_folder = build_dataset(_noisy(folder, 'val', backend='disk'))
    from_lmdb = build_dataset(_noisy(db, 'val'))
    for i in range(3):
        a, b = from_folder[i], from_lmdb[i]
        assert torch.equal(a['gt'], b['gt'])
        assert torch.equal(a['lq'], b['lq']), a['gt_path']
