"""Datasets: folder / meta-info / LMDB modes, filename_tmpl, seeding, bad data, skip_bad, patch size."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr.data import DATASET_REGISTRY, build_dataset
from basicsr.data.data_util import DataError
from basicsr.utils.img_util import ImageReadError, read_image
from data_helpers import load_script, make_pair_folders, random_image, save, shared_data


def _paired(gt, lq, phase='train', **extra):
    opt = {'type': 'PairedImageDataset', 'name': 'pairs', 'phase': phase, 'dataroot_gt': str(gt),
           'dataroot_lq': str(lq), 'io_backend': {'type': 'disk'}}
    if phase == 'train':
        opt.update(gt_size=16, use_hflip=True, use_rot=True)
    opt.update(extra)
    return build_dataset(opt)


def _to_uint8(t):
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


# ---------------------------------------------------------------- PairedImageDataset
def test_registered_names_include_restormer_aliases():
    for name in ('PairedImageDataset', 'Dataset_PairedImage', 'SingleImageDataset', 'SyntheticDegradationDataset',
                 'Dataset_GaussianDenoising'):
        assert name in DATASET_REGISTRY.keys()


def test_folder_mode_val_returns_whole_aligned_pairs(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'c'])
    ds = _paired(gt_dir, lq_dir, phase='val')
    assert len(ds) == 3
    s = ds[1]
    assert set(s) == {'lq', 'gt', 'lq_path', 'gt_path'}
    assert s['gt'].shape == (3, 32, 40) and s['gt'].dtype == torch.float32
    assert s['gt_path'].endswith('gt/b.png') and s['lq_path'].endswith('lq/b.png')
    assert torch.equal(s['gt'], s['lq'])  # the fixture's LQ equals GT at scale 1
    np.testing.assert_array_equal(_to_uint8(s['gt']), read_image(gt_dir / 'b.png', float32=False))


def test_filename_tmpl_and_scale_pair_sr_style_names(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['baby', 'bird'], gt_hw=(32, 32), scale=2, tmpl='{}x2')
    ds = _paired(gt_dir, lq_dir, scale=2, filename_tmpl='{}x2', gt_size=16)
    s = ds[0]
    assert s['lq_path'].endswith('babyx2.png') and s['gt'].shape == (3, 16, 16) and s['lq'].shape == (3, 8, 8)
    torch.testing.assert_close(s['gt'][:, ::2, ::2], s['lq'])  # crop and flips kept the pair aligned


def test_pairs_across_extensions(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['0004'], lq_ext='.bmp')
    assert _paired(gt_dir, lq_dir, phase='val')[0]['lq_path'].endswith('0004.bmp')


def test_real_set14_x4_pairs_with_floor_sizes():
    hr = shared_data('Set14/HR')
    ds = _paired(hr, hr.parent / 'LR_bicubic' / 'X4', phase='val', scale=4, filename_tmpl='{}x4')
    assert len(ds) == 14
    for i in range(len(ds)):
        s = ds[i]
        assert s['gt'].shape[1:] == tuple(4 * n for n in s['lq'].shape[1:]) and s['gt'].shape[0] == 3


def test_meta_info_mode_uses_listed_subset_in_order(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'c'])
    meta = tmp_path / 'meta.txt'
    meta.write_text('c.png (32,40,3) 1\na.png (32,40,3) 1\n')
    ds = _paired(gt_dir, lq_dir, phase='val', meta_info_file=str(meta))
    assert [Path(ds[i]['gt_path']).name for i in range(len(ds))] == ['c.png', 'a.png']


def test_meta_info_listing_a_missing_file_is_an_error(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'])
    meta = tmp_path / 'meta.txt'
    meta.write_text('a.png\nzzz.png\n')
    with pytest.raises(DataError, match="zzz.png"):
        _paired(gt_dir, lq_dir, phase='val', meta_info_file=str(meta))


def test_lmdb_round_trip_matches_folder_mode(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'sub/c'.replace('/', '_')], scale=1)
    create = load_script('create_lmdb').create_lmdb
    assert create(gt_dir, tmp_path / 'gt.lmdb') == 3
    create(lq_dir, tmp_path / 'lq.lmdb')
    meta_line = (tmp_path / 'gt.lmdb' / 'meta_info.txt').read_text().splitlines()[0]
    assert meta_line == 'a.png (32,40,3) 1'
    from_lmdb = _paired(tmp_path / 'gt.lmdb', tmp_path / 'lq.lmdb', io_backend={'type': 'lmdb'})
    from_disk = _paired(gt_dir, lq_dir)
    for i in range(3):
        x, y = from_lmdb[(i, 4)], from_disk[(i, 4)]
        assert torch.equal(x['gt'], y['gt']) and torch.equal(x['lq'], y['lq'])
    assert from_lmdb[0]['gt_path'].endswith('gt.lmdb/a')


def test_lmdb_dataset_survives_pickling_into_workers(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'])
    create = load_script('create_lmdb').create_lmdb
    create(gt_dir, tmp_path / 'gt.lmdb')
    create(lq_dir, tmp_path / 'lq.lmdb')
    ds = _paired(tmp_path / 'gt.lmdb', tmp_path / 'lq.lmdb', phase='val', io_backend={'type': 'lmdb'})
    ds[0]  # opens the environment in this process
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    batch = next(iter(loader))
    assert batch['gt'].shape == (2, 3, 32, 40)


def test_missing_dataroot_names_the_option_and_path(tmp_path):
    gt_dir, _ = make_pair_folders(tmp_path, ['a'])
    with pytest.raises(DataError, match=r"'dataroot_lq' = '.*nowhere' does not exist"):
        _paired(gt_dir, tmp_path / 'nowhere')


def test_unpaired_files_are_listed(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'c'])
    (lq_dir / 'b.png').rename(lq_dir / 'bb.png')
    with pytest.raises(DataError, match=r"1 GT file\(s\).*: b.png;.*1 LQ file\(s\).*: bb.png"):
        _paired(gt_dir, lq_dir, phase='val')


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'], bad_size='b')
    ds = _paired(gt_dir, lq_dir, phase='val')
    ds[0]
    with pytest.raises(DataError, match=r"GT '.*gt/b.png' is 32x40.*LQ '.*lq/b.png' is 30x40"):
        ds[1]


def test_corrupt_image_error_names_the_file(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'])
    data = (lq_dir / 'a.png').read_bytes()
    (lq_dir / 'a.png').write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageReadError, match=r"lq/a.png.*truncated"):
        _paired(gt_dir, lq_dir)[0]


def test_skip_bad_logs_and_returns_the_next_good_sample_deterministically(tmp_path, caplog):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'c'], bad_size='b')
    (gt_dir / 'c.png').write_bytes(b'')
    ds = _paired(gt_dir, lq_dir, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        s1 = ds[(1, 0)]
    assert s1['gt_path'].endswith('a.png')  # b (size) and c (empty) skipped, wrapped around to a
    assert 'b.png' in caplog.text and 'c.png' in caplog.text
    assert torch.equal(s1['gt'], ds[(1, 0)]['gt'])


def test_skip_bad_gives_up_when_everything_is_bad(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'])
    for p in gt_dir.iterdir():
        p.write_bytes(b'x')
    with pytest.raises(DataError, match='skip_bad gave up'):
        _paired(gt_dir, lq_dir, skip_bad=True)[0]


def test_train_phase_requires_gt_size(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'])
    with pytest.raises(DataError, match="'gt_size'"):
        _paired(gt_dir, lq_dir, gt_size=None)


def test_samples_depend_only_on_seed_epoch_and_index(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'], gt_hw=(64, 64))
    ds = _paired(gt_dir, lq_dir)
    ds.set_seed(3)
    first = ds[(5, 2)]['gt']
    other = _paired(gt_dir, lq_dir)
    other.set_seed(3)
    other[(0, 0)]
    assert torch.equal(other[(5, 2)]['gt'], first)
    assert not torch.equal(other[(5, 3)]['gt'], first)  # next epoch, new crop
    ds.set_epoch(2)
    assert torch.equal(ds[5]['gt'], first)  # a plain index uses the dataset's epoch


def test_set_patch_size_changes_training_crops(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'], gt_hw=(64, 64))
    ds = _paired(gt_dir, lq_dir)
    assert ds[0]['gt'].shape == (3, 16, 16)
    ds.set_patch_size(24)
    assert ds[0]['gt'].shape == (3, 24, 24) and ds.gt_size == 24
    with pytest.raises(DataError, match='multiple of scale'):
        ds.set_patch_size(0)


def test_set_patch_size_reaches_persistent_workers(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'], gt_hw=(64, 64))
    ds = _paired(gt_dir, lq_dir)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True)
    assert next(iter(loader))['gt'].shape[-1] == 16
    ds.set_patch_size(32)
    assert next(iter(loader))['gt'].shape[-1] == 32


def test_in_ch_1_gives_gray_tensors(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'])
    assert _paired(gt_dir, lq_dir, phase='val', in_ch=1)[0]['lq'].shape == (1, 32, 40)


def test_color_y_gives_bt601_luma_in_studio_range(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'])
    y = _paired(gt_dir, lq_dir, phase='val', color='y')[0]['gt']
    rgb = read_image(gt_dir / 'a.png').astype(np.float64)
    expect = (16 + rgb @ np.array([65.481, 128.553, 24.966])) / 255  # MATLAB rgb2ycbcr Y, in [0, 1] units
    assert y.shape == (1, 32, 40)
    np.testing.assert_allclose(y[0].numpy(), expect, atol=1e-6)
    with pytest.raises(DataError, match="'color'"):
        _paired(gt_dir, lq_dir, phase='val', color='ycbcr')


def test_cache_images_decodes_each_file_once(tmp_path):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a'], gt_hw=(48, 48))
    cached = _paired(gt_dir, lq_dir, cache_images=True)
    plain = _paired(gt_dir, lq_dir)
    first = cached[(0, 0)]
    for p in list(gt_dir.iterdir()) + list(lq_dir.iterdir()):
        p.unlink()  # later reads must come from memory
    again = cached[(0, 1)]
    assert again['gt'].shape == (3, 16, 16) and not torch.equal(again['gt'], first['gt'])
    with pytest.raises(ImageReadError):
        plain[0]


# ---------------------------------------------------------------- SingleImageDataset
def test_single_image_dataset_lists_sorted_images(tmp_path):
    for name in ('b', 'a'):
        save(tmp_path / f'{name}.png', random_image(8, 9))
    ds = build_dataset({'type': 'SingleImageDataset', 'name': 's', 'dataroot_lq': str(tmp_path)})
    assert [Path(ds[i]['lq_path']).name for i in range(2)] == ['a.png', 'b.png']
    assert set(ds[0]) == {'lq', 'lq_path'} and ds[0]['lq'].shape == (3, 8, 9)


# ---------------------------------------------------------------- SyntheticDegradationDataset
def _synthetic(roots, phase='val', **extra):
    opt = {'type': 'SyntheticDegradationDataset', 'name': 'noise', 'phase': phase, 'dataroot_gt': roots,
           'degradation': {'type': 'GaussianNoise', 'sigma': 25}}
    if phase == 'train':
        opt.update(gt_size=32, geometric_augs=True)
    opt.update(extra)
    return build_dataset(opt)


def test_synthetic_val_noise_is_fixed_per_image_name(tmp_path):
    for i, name in enumerate(('x', 'y', 'z')):
        save(tmp_path / 'clean' / f'{name}.png', random_image(40, 40, seed=i))
    full = _synthetic(str(tmp_path / 'clean'))
    again = _synthetic(str(tmp_path / 'clean'))
    assert torch.equal(full[2]['lq'], again[2]['lq'])
    (tmp_path / 'clean' / 'x.png').unlink()  # a different subset: z still gets the same noise
    subset = _synthetic(str(tmp_path / 'clean'))
    assert torch.equal(subset[1]['lq'], full[2]['lq'])
    other_seed = _synthetic(str(tmp_path / 'clean'), noise_seed=1)
    assert not torch.equal(other_seed[1]['lq'], full[2]['lq'])


def test_synthetic_real_cbsd68_sigma25_statistics():
    ds = _synthetic(str(shared_data('CBSD68')))
    assert len(ds) == 68
    s = ds[0]
    residual = (s['lq'] - s['gt']) * 255
    assert abs(residual.std().item() - 25) < 0.3 and s['lq_path'] == s['gt_path']
    psnr = 10 * torch.log10(1 / ((s['lq'].clamp(0, 1) - s['gt']) ** 2).mean())
    assert 20.0 < psnr.item() < 21.0  # the noisy-input PSNR the issue quotes, about 20.2 dB


def test_synthetic_train_from_several_folders_crops_then_degrades(tmp_path):
    save(tmp_path / 'k' / 'a.png', random_image(48, 48, seed=1))
    save(tmp_path / 'm' / 'a.tif', random_image(40, 50, seed=2))
    ds = _synthetic([str(tmp_path / 'k'), str(tmp_path / 'm')], phase='train')
    assert len(ds) == 2
    s = ds[(1, 0)]
    assert s['gt'].shape == (3, 32, 32) and s['lq'].shape == (3, 32, 32) and s['gt_path'].endswith('a.tif')
    assert torch.equal(ds[(1, 0)]['lq'], s['lq']) and not torch.equal(ds[(1, 1)]['lq'], s['lq'])


def test_small_images_are_padded_for_restormer_types_and_rejected_otherwise(tmp_path):
    save(tmp_path / 'a.png', random_image(20, 40))
    base = {'name': 'r', 'phase': 'train', 'dataroot_gt': str(tmp_path), 'gt_size': 32,
            'degradation': {'type': 'GaussianNoise', 'sigma': 5}}
    padded = build_dataset({**base, 'type': 'Dataset_GaussianDenoising'})
    assert padded[0]['gt'].shape == (3, 32, 32)
    with pytest.raises(DataError, match=r"'.*a.png' is 20x40.*gt_size=32"):
        build_dataset({**base, 'type': 'SyntheticDegradationDataset'})[0]
    assert build_dataset({**base, 'type': 'SyntheticDegradationDataset', 'pad_to_gt_size': True})[0]['gt'].shape[1] == 32


def test_restormer_gaussian_denoising_keys_are_understood(tmp_path):
    save(tmp_path / 'a.png', random_image(40, 40))
    base = {'type': 'Dataset_GaussianDenoising', 'name': 'r', 'dataroot_gt': str(tmp_path), 'dataroot_lq': 'none',
            'in_ch': 3}
    train = build_dataset({**base, 'phase': 'train', 'sigma_type': 'random', 'sigma_range': [0, 50],
                           'gt_size': 16, 'geometric_augs': True})
    assert train.degrade.steps[0].sigma_range == [0.0, 50.0]
    val = build_dataset({**base, 'phase': 'val', 'sigma_test': 15})
    assert val.degrade.steps[0].sigma == 15.0
    with pytest.raises(DataError, match='sigma_type'):
        build_dataset({**base, 'phase': 'train', 'gt_size': 16, 'sigma_type': 'gauss', 'sigma_range': 5})


def test_synthetic_rejects_a_stored_lq_folder(tmp_path):
    save(tmp_path / 'a.png', random_image(8, 8))
    with pytest.raises(DataError, match="'dataroot_lq'"):
        _synthetic(str(tmp_path), dataroot_lq=str(tmp_path))
