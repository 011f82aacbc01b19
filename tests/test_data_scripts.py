"""Data scripts: check_pairs exit status and report, create_lmdb layout, prepare_denoise_data."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from basicsr.utils.img_util import read_image
from data_helpers import load_script, make_pair_folders, random_image, save, shared_data


@pytest.fixture
def run(capsys):
    """Run scripts/<name>.py's main() in this process (a subprocess would re-import torch each time)."""
    def _run(script, *args):
        main = load_script(script.replace('.py', '')).main
        message = ''
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # scripts exit with a message string on user errors
            code, message = (exc.code, '') if isinstance(exc.code, int) else (1, str(exc.code))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err + message)
    return _run


def test_check_pairs_ok_exits_zero(tmp_path, run):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b'], gt_hw=(33, 41), scale=2, tmpl='{}x2')
    res = run('check_pairs.py', gt_dir, lq_dir, '--scale', 2, '--filename-tmpl', '{}x2')
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'OK' in res.stdout


def test_check_pairs_reports_unpaired_mismatched_and_corrupt_files(tmp_path, run):
    gt_dir, lq_dir = make_pair_folders(tmp_path, ['a', 'b', 'c', 'd'], bad_size='b')
    (lq_dir / 'c.png').unlink()
    (gt_dir / 'd.png').write_bytes(b'garbage')
    res = run('check_pairs.py', gt_dir, lq_dir)
    assert res.returncode == 1
    assert '1 GT file(s)' in res.stdout and 'c.png' in res.stdout
    assert 'b.png 32x40 vs b.png 30x40' in res.stdout
    assert 'd.png' in res.stdout and 'unreadable' in res.stdout


def test_check_pairs_real_rain100h_is_clean(run):
    rain = shared_data('Rain100H')
    res = run('check_pairs.py', rain / 'target', rain / 'input')
    assert res.returncode == 0, res.stdout


def test_create_lmdb_refuses_to_overwrite(tmp_path, run):
    save(tmp_path / 'in' / 'a.png', random_image(8, 8))
    assert run('create_lmdb.py', '--input', tmp_path / 'in', '--output', tmp_path / 'x.lmdb').returncode == 0
    res = run('create_lmdb.py', '--input', tmp_path / 'in', '--output', tmp_path / 'x.lmdb')
    assert res.returncode != 0 and 'already holds' in res.stderr


def test_prepare_denoise_data_layout_and_samples(tmp_path, run):
    shared = tmp_path / 'shared'
    save(shared / 'Kodak24' / 'kodim01.png', random_image(40, 40, seed=1))
    save(shared / 'McMaster' / '1.tif', random_image(40, 40, seed=2))
    save(shared / 'Set14' / 'HR' / 'bridge.png', random_image(40, 40, c=1, seed=3)[:, :, 0])
    save(shared / 'Set5' / 'HR' / 'baby.png', random_image(40, 40, seed=4))
    for i, name in enumerate(('101085', '119082', '163085', '253027', '3096')):
        save(shared / 'CBSD68' / f'{name}.png', random_image(300, 280, seed=10 + i))
    out = tmp_path / 'datasets'
    res = run('prepare_denoise_data.py', '--shared', shared, '--out', out)
    assert res.returncode == 0, res.stderr
    train = sorted(p.name for p in (out / 'denoise' / 'train').iterdir())
    assert train == ['kodak24_kodim01.png', 'mcmaster_1.png', 'set14_bridge.png']
    assert read_image(out / 'denoise' / 'train' / 'set14_bridge.png', channels=None).shape == (40, 40, 3)
    assert np.array_equal(read_image(out / 'denoise' / 'train' / 'mcmaster_1.png', float32=False),
                          read_image(shared / 'McMaster' / '1.tif', float32=False))  # lossless
    assert len(list((out / 'denoise' / 'CBSD68').iterdir())) == 5
    assert (out / 'denoise' / 'Set5' / 'baby.png').read_bytes() == (shared / 'Set5' / 'HR' / 'baby.png').read_bytes()
    clean = read_image(out / 'samples' / '101085_clean.png')
    noisy = read_image(out / 'samples' / '101085_noisy.png')
    assert clean.shape == noisy.shape == (256, 256, 3)
    assert abs((noisy - clean).std() * 255 - 25) < 1.5  # clipping at 0/1 lowers it a little
    first = (out / 'samples' / '101085_noisy.png').read_bytes()
    assert run('prepare_denoise_data.py', '--shared', shared, '--out', out).returncode == 0
    assert (out / 'samples' / '101085_noisy.png').read_bytes() == first  # fixed seed: identical file


def test_prepare_mioir_data_degrades_full_images_then_cuts_sub_images(tmp_path):
    import cv2

    mod = load_script('prepare_mioir_data')
    assert mod.sub_positions(400, 300, 150, 48) == [0, 100]  # 100 px left out > 48: a flush last crop
    assert mod.sub_positions(340, 300, 150, 48) == [0]       # 40 px left out: dropped, as gen_sub.py does
    assert mod.sub_positions(299, 300, 150, 48) == []
    gt = tmp_path / 'gt'
    gt.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        low = rng.random((20, 18, 3)).astype(np.float32)
        cv2.imwrite(str(gt / f'im{i}.png'), (cv2.resize(low, (360, 400)) * 255).round().astype(np.uint8))
    counts = mod.prepare(gt, tmp_path / 'a', ['blur', 'dark', 'sr'])
    assert counts == {'GT': 8, 'blur': 8, 'dark': 8, 'sr': 8}
    mod.prepare(gt, tmp_path / 'b', ['dark'])  # another task set: same files for the shared task
    full = cv2.imread(str(tmp_path / 'a' / 'dark' / 'im1.png'))
    assert np.array_equal(full, cv2.imread(str(tmp_path / 'b' / 'dark' / 'im1.png')))
    assert full.mean() < cv2.imread(str(gt / 'im1.png')).mean()  # darkened
    sub = cv2.imread(str(tmp_path / 'a' / 'dark_sub300' / 'im1_s004.png'))
    assert np.array_equal(sub, full[100:400, 60:360])  # row-major: 4th crop = (100, 60)
    with pytest.raises(SystemExit, match='--depth-dir'):
        mod.prepare(gt, tmp_path / 'c', ['haze'])
