"""Option files with the official repositories' keys and structure parse, build and run.

The files under ``tests/data/official_options/<family>/`` follow the official Restormer, NAFNet/NAFSSR, HINet,
BasicSR and MiOIR files (model types, dataset types and their keys, classifier blocks, unused keys), with tiny
networks and local paths; the test writes tiny data where they look for it and runs 2 training iterations with
validation, or a test. Upstream problems (null validation paths, unsupported EDSR / NIQE) are clear errors
raised before any run folder exists.
"""
import logging
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.archs import build_network
from basicsr.utils.options import OptionError, parse_options

FILES = Path(__file__).resolve().parent / 'data' / 'official_options'
MIOIR_TASKS = ('rain', 'haze', 'blur', 'noise', 'jpeg', 'dark', 'sr')


def _image(rng: np.random.Generator, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    low = rng.random((max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    img = np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    peak = 65535 if dtype == np.uint16 else 255
    return (img * peak).round().astype(dtype)


def _pairs(gt_dir: Path, lq_dir: Path, names, size: int, scale: int = 1, seed: int = 0, lq_tmpl: str = '{}') -> None:
    rng = np.random.default_rng(seed)
    gt_dir.mkdir(parents=True, exist_ok=True)
    lq_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        gt = _image(rng, size, size)
        lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_AREA) if scale > 1 else \
            np.clip(gt.astype(int) + rng.integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(gt_dir / name), gt)
        cv2.imwrite(str(lq_dir / (lq_tmpl.format(Path(name).stem) + '.png')), lq)


def _stereo(root: Path, gt_sub: str, lq_sub: str, h: int, w: int, scale: int) -> None:
    rng = np.random.default_rng(1)
    for scene in ('0001', '0002'):
        for view in (0, 1):
            hr = _image(rng, h, w)
            (root / gt_sub / scene).mkdir(parents=True, exist_ok=True)
            (root / lq_sub / scene).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / gt_sub / scene / f'hr{view}.png'), hr)
            cv2.imwrite(str(root / lq_sub / scene / f'lr{view}.png'),
                        cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_AREA))


def make_official_data(root: Path) -> None:
    """Tiny data at the paths of the files under tests/data/official_options (relative to ``root``)."""
    d = root / 'datasets'
    rng = np.random.default_rng(2)
    for split in ('train', 'test'):  # Restormer dual-pixel: 16-bit views and targets
        for sub in ('target_crops', 'inputL_crops', 'inputR_crops'):
            (d / 'DPDD' / split / sub).mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / 'DPDD' / split / sub / f'{i}.png'), _image(rng, 40, 40, np.uint16))
    _stereo(d / 'StereoSR', 'patches_x2', 'patches_x2', 32, 64, 2)
    for bench in ('Flickr1024', 'KITTI2012'):
        _stereo(d / 'StereoSR' / 'test' / bench, 'hr', 'lr_x2', 32, 48, 2)
    for split in ('train', 'val'):
        _pairs(d / 'SIDD' / split / 'gt_crops', d / 'SIDD' / split / 'input_crops', ['a.png', 'b.png'], 48)
    names = ['0001.png', '0002.png']
    for s in (2, 4):
        _pairs(d / 'DF2K' / 'DIV2K_train_HR_sub', d / 'DF2K' / f'DIV2K_train_LR_bicubic_X{s}_sub', names, 64, s, seed=s)
        _pairs(d / 'Set5' / f'GTmod12_x{s}', d / 'Set5' / f'LRbicx{s}', ['baby.png'], 48, s, seed=s)
    (d / 'DF2K' / 'meta_info_DIV2K800sub_GT.txt').write_text('0001.png (64,64,3)\n0002.png (64,64,3)\n')
    # BasicSR's Set5 has one GTmod12 folder for every scale: the x2 and x4 LR images come from the same HR
    shutil.copytree(d / 'Set5' / 'GTmod12_x2', d / 'Set5' / 'GTmod12')
    hr = cv2.imread(str(d / 'Set5' / 'GTmod12' / 'baby.png'))
    cv2.imwrite(str(d / 'Set5' / 'LRbicx4' / 'baby.png'), cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA))
    mio = d / 'MiOIR'
    lines = []
    for sub in ('LQ_sub', 'GT_sub'):
        (mio / sub).mkdir(parents=True)
    for i, task in enumerate(MIOIR_TASKS):
        gt = _image(rng, 40, 40)
        cv2.imwrite(str(mio / 'GT_sub' / f'GT_{i:04d}.png'), gt)
        cv2.imwrite(str(mio / 'LQ_sub' / f'{task}_{i:04d}.png'), (gt * 0.8).astype(np.uint8))
        lines.append(str((mio / 'LQ_sub' / f'{task}_{i:04d}.png').resolve()))
    (mio / 'meta_info').mkdir()
    (mio / 'meta_info' / 'MiO-meta-DF2K_300.txt').write_text('\n'.join(lines) + '\n')
    _pairs(mio / 'CL_test' / 'val' / 'GT', mio / 'CL_test' / 'val' / 'LQ', ['0801_r.png', '0802_n.png'], 40)
    _pairs(mio / 'CL_test' / 'original' / 'GT', mio / 'CL_test' / 'single_indis' / 'sr', ['0801.png'], 40)


@pytest.fixture()
def official_root(tmp_path, monkeypatch):
    make_official_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _losses(exp: Path) -> dict:
    import csv
    with open(exp / 'log' / 'losses.csv') as fh:
        return {int(r['iter']): {k: float(v) for k, v in r.items() if k.startswith('l_')} for r in csv.DictReader(fh)}


TRAIN_FILES = ['restormer/DefocusDeblur_DualPixel_16bit_Restormer.yml', 'nafnet/NAFSSR-T_x2.yml',
               'nafnet/NAFNet-SIDD.yml', 'hinet/HINet-SIDD.yml', 'basicsr/train_MSRResNet_x4.yml',
               'basicsr/train_SwinIR_SRx2_scratch.yml', 'mioir/MiO_001_SRResNet_S_EP_s.yml',
               'mioir/train_SwinIR_M_AP.yml', 'mioir/train_classifier.yml']


@pytest.mark.slow
@pytest.mark.parametrize('rel', TRAIN_FILES)
def test_official_training_files_train_two_iterations(rel, official_root, caplog):
    from basicsr.engine.trainer import Trainer
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        opt = parse_options(FILES / rel, root=official_root)
    trainer = Trainer(opt)
    trainer.train()
    exp = official_root / 'experiments' / opt['name']
    losses = _losses(exp)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for row in losses.values() for v in row.values())
    assert any(exp.glob('training_states/*2.pth')) or any(exp.glob('training_states/*/*2.state'))
    scores = trainer.best or {'val': getattr(trainer.model, 'metric_results', {})}  # BasicSR-style models keep theirs
    values = [v if isinstance(v, float) else v['val'] for m in scores.values() for v in m.values()]
    assert scores and all(scores.values()) and all(math.isfinite(v) for v in values), f'no validation metric: {scores}'
    if 'NAFSSR' in rel:
        assert 'trans_num' not in opt['val'] and 'mixup' not in opt['train']
        assert "'val.trans_num'" in caplog.text and 'never read' in caplog.text
        assert set(trainer.best['Flickr1024-sr-test']) == {'psnr', 'ssim'}
    if 'NAFNet-SIDD' in rel:
        assert trainer.model.grad_clip == pytest.approx(0.01)  # NAFNet's model clips unless told otherwise
    if 'Restormer' in rel:  # the dual-pixel network reads both views stacked: 6 channels
        from basicsr.data import build_dataset
        assert build_dataset(opt['datasets']['val'])[0]['lq'].shape[0] == 6
    if 'MiO_001' in rel:
        assert opt['datasets']['val']['task_from_name'] == 'mioir' and opt['path']['param_key_g'] == 'params'
    if 'SwinIR_M_AP' in rel:
        assert opt['val']['pad_multiple'] == 8 and trainer.model.grad_clip == 0


def _random_release(spec: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({'params': build_network(spec).state_dict()}, path)


@pytest.mark.slow
def test_nafssr_test_file_saves_views_and_scores_stereo(official_root):
    from basicsr.test import main
    spec = yaml.safe_load((FILES / 'nafnet/NAFSSR-T_2x_test.yml').read_text())['network_g']
    _random_release(spec, official_root / 'experiments/pretrained_models/NAFSSR-T_2x.pth')
    summary = main(['-opt', str(FILES / 'nafnet/NAFSSR-T_2x_test.yml')], root=official_root)
    assert set(summary['KITTI2012']) == {'psnr', 'ssim'} and 0 < summary['KITTI2012']['ssim'] <= 1
    views = sorted(p.name for p in (official_root / 'results/NAFSSR-T_2x/visualization/KITTI2012').glob('*.png'))
    assert views == ['0001_L.png', '0001_R.png', '0002_L.png', '0002_R.png']


@pytest.mark.slow
def test_mioir_ep_class_test_file_uses_its_classifier_blocks(official_root):
    from basicsr.test import main
    opt = parse_options(FILES / 'mioir/test_SRResNet_S_EP.yml', is_train=False, check_paths=False,
                        root=official_root)
    assert 'network_c' not in opt and 'path_c' not in opt
    assert opt['test']['task_classifier'] == {'network': {'type': 'Classifier'}, 'param_key': 'params',
                                              'weights': 'experiments/pretrained_models/Classifier.pth'}
    _random_release(opt['network_g'], official_root / 'experiments/pretrained_models/SRResNet_S_EP.pth')
    _random_release({'type': 'Classifier'}, official_root / 'experiments/pretrained_models/Classifier.pth')
    summary = main(['-opt', str(FILES / 'mioir/test_SRResNet_S_EP.yml')], root=official_root)
    assert math.isfinite(summary['sr']['psnr'])


# ------------------------------------------------------------------ clear errors before any run folder exists
def _variant(tmp_path: Path, rel: str, edit) -> Path:
    opt = yaml.safe_load((FILES / rel).read_text())
    edit(opt)
    out = tmp_path / Path(rel).name
    out.write_text(yaml.safe_dump(opt, sort_keys=False))
    return out


@pytest.mark.parametrize('edit,message', [
    (None, r"'datasets\.val\.dataroot_gt' is required by PairedImageDataset .*got null"),
    (lambda o: o['network_g'].update(type='EDSR'), r"'network_g\.type': EDSR .* is not supported"),
    (lambda o: o['val']['metrics'].update(niqe={'type': 'calculate_niqe', 'crop_border': 4}),
     r"'val\.metrics\.niqe\.type': calculate_niqe is not supported"),
    (lambda o: o['train'].update(mixup=True), r"'train\.mixup': True is not supported"),
    (lambda o: o['val'].update(trans_nums=1), r"unknown key 'val\.trans_nums'"),  # a typo stays an error
    (lambda o: o.update(model_type='IRModel_XP'), r"'model_type': no model type 'IRModel_XP'"),
])
def test_upstream_problems_are_clear_errors_at_parse_time(edit, message, official_root):
    path = FILES / 'hinet/HINet-Rain13k-null-val.yml'
    if edit is not None:
        def fix_val(o):
            o['datasets']['val'].update(dataroot_gt='datasets/SIDD/val/gt_crops',
                                        dataroot_lq='datasets/SIDD/val/input_crops')
            edit(o)
        path = _variant(official_root, 'hinet/HINet-Rain13k-null-val.yml', fix_val)
    with pytest.raises(OptionError, match=message):
        parse_options(path, root=official_root)
    assert not (official_root / 'experiments').exists()


def test_mioir_meta_info_is_not_basicsr_meta_info_file(official_root):
    """``meta_info`` belongs to MiOIR's list datasets; on them it is no did-you-mean of ``meta_info_file``."""
    opt = parse_options(FILES / 'mioir/train_SwinIR_M_AP.yml', root=official_root)
    from basicsr.data import build_dataset
    ds = build_dataset(opt['datasets']['train'])
    assert len(ds) == 7
    sample = ds[0]
    assert sample['task_name'] == 'rain' and sample['lq'].shape == (3, 32, 32) and sample['gt'].shape == (3, 32, 32)


# ------------------------------------------------------------------ datasets and metrics of the official files
def test_stereo_dataset_layout_and_flips(official_root):
    from basicsr.data.stereo_dataset import PairedStereoImageDataset
    base = {'name': 's', 'type': 'PairedStereoImageDataset', 'dataroot_gt': 'datasets/StereoSR/patches_x2',
            'dataroot_lq': 'datasets/StereoSR/patches_x2', 'scale': 2}
    val = PairedStereoImageDataset({**base, 'phase': 'val'})[0]
    left = cv2.cvtColor(cv2.imread('datasets/StereoSR/patches_x2/0001/hr0.png'), cv2.COLOR_BGR2RGB)
    assert val['gt'].shape == (6, 32, 64) and val['lq'].shape == (6, 16, 32)
    assert torch.allclose(val['gt'][:3], torch.from_numpy(left).permute(2, 0, 1).float() / 255)
    train = PairedStereoImageDataset({**base, 'phase': 'train', 'gt_size_h': 32, 'gt_size_w': 64, 'use_hflip': True,
                                      'use_vflip': False, 'use_rot': False, 'flip_RGB': False})
    flipped = 0
    for i in range(16):
        s = train[(0, i)]
        if not torch.equal(s['gt'], val['gt']):  # the whole image is the patch: only the mirror changes it
            # mirrored: the new left view is the old right view, flipped
            assert torch.equal(s['gt'][:3], val['gt'][3:].flip(-1)) and torch.equal(s['lq'][3:], val['lq'][:3].flip(-1))
            flipped += 1
    assert 0 < flipped < 16


def test_dual_pixel_dataset_reads_16_bit_views(official_root):
    from basicsr.data import build_dataset
    ds = build_dataset({'name': 'dp', 'type': 'Dataset_DefocusDeblur_DualPixel_16bit', 'phase': 'val', 'scale': 1,
                        'dataroot_gt': 'datasets/DPDD/test/target_crops',
                        'dataroot_lqL': 'datasets/DPDD/test/inputL_crops',
                        'dataroot_lqR': 'datasets/DPDD/test/inputR_crops', 'io_backend': {'type': 'disk'}})
    s = ds[1]
    right = cv2.imread('datasets/DPDD/test/inputR_crops/1.png', cv2.IMREAD_UNCHANGED)
    assert right.dtype == np.uint16 and s['lq'].shape == (6, 40, 40) and s['gt'].shape == (3, 40, 40)
    expected = torch.from_numpy(right[..., ::-1].astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.allclose(s['lq'][3:], expected, atol=1e-7)


def test_sidd_dataset_augments_as_hinet(official_root):
    from basicsr.data import build_dataset
    ds = build_dataset({'name': 'sidd', 'type': 'PairedImageDataset_SIDD', 'phase': 'train', 'scale': 1, 'gt_size': 64,
                        'use_flip': False, 'use_rot': False, 'dataroot_gt': 'datasets/SIDD/train/gt_crops',
                        'dataroot_lq': 'datasets/SIDD/train/input_crops', 'io_backend': {'type': 'disk'}})
    plain = torch.from_numpy(np.pad(cv2.cvtColor(cv2.imread('datasets/SIDD/train/gt_crops/a.png'), cv2.COLOR_BGR2RGB),
                                    ((0, 16), (0, 16), (0, 0)), mode='symmetric')).permute(2, 0, 1).float() / 255
    same = sum(torch.equal(ds[(0, e)]['gt'], plain) for e in range(200))  # padded 48 -> 64, so the crop is fixed
    assert 70 < same < 130  # HINet: unchanged with probability 1/2 (use_flip/use_rot ignored), binomial(200, 1/2)


def test_stereo_psnr_is_the_mean_of_the_views_and_use_image_scores_the_output():
    from basicsr.metrics.profiles import compute_metrics
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_skimage_ssim, calculate_ssim_float
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 24, 6)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 3, a.shape) * np.r_[np.ones(3), 4 * np.ones(3)], 0, 255).round()
    views = [calculate_psnr(a[..., v:v + 3], b[..., v:v + 3]) for v in (0, 3)]
    assert calculate_psnr(a, b) == pytest.approx(np.mean(views), rel=1e-12) and views[0] - views[1] > 6
    assert calculate_skimage_ssim(a, b) == pytest.approx(calculate_ssim_float(a, b, data_range=255.0), rel=1e-12)
    pred = torch.full((1, 3, 16, 16), 0.5 + 0.3 / 255)  # 127.8 -> rounds to 128 in the saved image
    gt = torch.full((1, 3, 16, 16), 128 / 255)
    spec = {'psnr': {'type': 'calculate_psnr'}}
    assert math.isinf(compute_metrics(pred, gt, spec)['psnr'])
    unrounded = compute_metrics(pred, gt, spec, use_image=False)['psnr']
    assert unrounded == pytest.approx(20 * math.log10(255 / abs(127.5 + 0.3 - 128)), rel=1e-5)


RELEASE_FILES = sorted((Path(__file__).resolve().parents[1] / 'options/test/official').glob('*/*.yml'))


@pytest.mark.slow
@pytest.mark.parametrize('path', RELEASE_FILES, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_official_release_test_files_build_and_load_their_layout(path, tmp_path):
    """Each options/test/official file parses (paths aside), builds its network and loads a checkpoint in the
    release's ``params`` layout strictly (meta tensors: names and shapes only)."""
    from basicsr.archs.pretrained import load_pretrained
    opt = parse_options(path, is_train=False, check_paths=False, root=tmp_path)
    with torch.device('meta'):
        net = build_network(opt['network_g'])
    torch.save({'params': dict(net.state_dict())}, tmp_path / 'release.pth')
    load_pretrained(net, tmp_path / 'release.pth', key=opt['path']['param_key_g'], strict=True)
    assert Path(opt['path']['pretrain_network_g']).parts[:2] == ('experiments', 'pretrained_models')


@pytest.mark.slow
def test_check_official_options_script_reports_each_file(tmp_path):
    """scripts/check_official_options.py over the HINet files of the suite: SIDD runs, Rain13k's null paths fail."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / 'scripts/check_official_options.py'), str(FILES / 'hinet'),
                           '--work', str(tmp_path / 'work')], capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'OMP_NUM_THREADS': '1'})
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(('OK', 'FAIL'))]
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert lines[0].startswith('FAIL HINet-Rain13k-null-val.yml')
    assert "'datasets.val.dataroot_gt' is required" in lines[0]
    assert lines[1].startswith('OK   HINet-SIDD.yml') and done.stdout.rstrip().endswith('1 of 2 files ran')
