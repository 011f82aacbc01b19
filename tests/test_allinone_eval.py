"""scripts/eval_all_in_one.py: one table row per task, per-set metric profiles, the centre-crop protocol and the
degraded-input baseline."""
import csv
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location('eval_all_in_one', ROOT / 'scripts' / 'eval_all_in_one.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


@pytest.fixture()
def option_file(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)  # not a multiple of 8: the protocol crops
        _write(tmp_path / 'clean' / f'{i}.png', clean)
        _write(tmp_path / 'rain' / 'target' / f'{i}.png', clean)
        _write(tmp_path / 'rain' / 'input' / f'{i}.png', (clean * 0.7 + 40).astype(np.uint8))
    opt = {
        'name': 'tiny_allinone_eval', 'num_gpu': 0,
        'datasets': {
            'test_noise': {'name': 'noise25', 'type': 'SyntheticDegradationDataset',
                           'dataroot_gt': str(tmp_path / 'clean'),
                           'degradation': {'type': 'GaussianNoise', 'sigma': 25, 'quantize': 'floor'}},
            'test_rain': {'name': 'rain', 'type': 'PairedImageDataset',
                          'dataroot_gt': str(tmp_path / 'rain' / 'target'),
                          'dataroot_lq': str(tmp_path / 'rain' / 'input'), 'metric_profile': 'dsrir_y'},
        },
        'network_g': {'type': 'DSRIR', 'sn1_feats': 8, 'sn2_feats': 8, 'sn3_feats': 8, 'feats_step1': 8,
                      'feats_step2': 8},
        'path': {'results_root': str(tmp_path / 'results')},
        'val': {'profile': 'skimage_float'},
        'test': {'center_crop_multiple': 8},
    }
    path = tmp_path / 'eval.yml'
    path.write_text(yaml.safe_dump(opt))
    return path, tmp_path


def test_table_has_a_row_per_task_the_input_baseline_and_an_average(option_file):
    from basicsr.metrics.profiles import compute_metrics
    from basicsr.utils.img_util import read_image
    path, tmp = option_file
    rows = _script().main(['-opt', str(path)])
    assert [r['task'] for r in rows] == ['noise25', 'rain', 'average']
    assert rows[0]['profile'] == 'skimage_float' and rows[1]['profile'] == 'dsrir_y'
    assert rows[0]['images'] == rows[1]['images'] == 2
    # input baseline of the rain set: the pair centre-cropped to 32 x 40, Y-channel float PSNR
    expected = []
    for i in range(2):
        gt = read_image(tmp / 'rain' / 'target' / f'{i}.png')[2:34, 2:42]
        lq = read_image(tmp / 'rain' / 'input' / f'{i}.png')[2:34, 2:42]
        expected.append(compute_metrics(lq, gt, 'dsrir_y')['psnr'])
    assert rows[1]['psnr_input'] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    assert rows[2]['psnr_model'] == pytest.approx((rows[0]['psnr_model'] + rows[1]['psnr_model']) / 2)
    assert rows[0]['psnr_gain'] == pytest.approx(rows[0]['psnr_model'] - rows[0]['psnr_input'])
    table = (tmp / 'results' / 'all_in_one.md').read_text()
    assert '| task | images | profile | psnr model | psnr input | psnr gain |' in table
    with open(tmp / 'results' / 'all_in_one.csv') as fh:
        assert [r['task'] for r in csv.DictReader(fh)] == ['noise25', 'rain', 'average']


def test_unknown_metric_profile_is_an_option_error(option_file):
    path, _ = option_file
    with pytest.raises(SystemExit) as info:  # a UsageError: run_cli prints it as one line, exit status 2
        _script().main(['-opt', str(path), '--set', 'datasets.test_rain.metric_profile=7'])
    assert info.value.code == 2 and "'datasets.test_rain.metric_profile' must be str" in str(info.value)
