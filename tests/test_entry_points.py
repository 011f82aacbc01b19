"""test.py, demo.py and train.sh as a user runs them."""
import csv
import json
import subprocess

import torch
import yaml

from engine_helpers import PYTHON, ROOT, make_clean_images, run_script

BUNDLED = ROOT / 'experiments' / 'pretrained_models' / 'NAFNet_w16_denoise_color_sigma25.safetensors'
TINY_NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


def test_test_py_writes_images_metrics_csv_and_comparisons(tmp_path):
    from basicsr.archs import build_network
    torch.manual_seed(0)
    weights = tmp_path / 'tiny.pth'
    torch.save({'params': build_network(TINY_NET).state_dict()}, weights)
    data = make_clean_images(tmp_path / 'clean', n=3, size=40)
    opt = {'name': 'tinytest', 'num_gpu': 0,
           'datasets': {'test': {'name': 'gen', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
                                 'degradation': {'type': 'GaussianNoise', 'sigma': 25}}},
           'network_g': TINY_NET, 'path': {'pretrain_network_g': str(weights), 'results_root': str(tmp_path / 'res')},
           'val': {'save_img': True, 'save_comparison': True, 'profile': 'basicsr_rgb'},
           'test': {'pad_multiple': 'auto', 'self_ensemble': True}}
    opt_path = tmp_path / 'test.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    run = run_script([PYTHON, 'basicsr/test.py', '-opt', str(opt_path)], cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    res = tmp_path / 'res'
    metrics = json.loads((res / 'metrics.json').read_text())
    assert metrics['gen']['num_images'] == 3 and 'basicsr_rgb' in metrics['gen']['metrics']
    assert 0 < metrics['gen']['mean']['psnr'] < 60
    rows = list(csv.DictReader(open(res / 'gen_per_image.csv')))
    assert [r['name'] for r in rows] == ['img00', 'img01', 'img02']
    assert len(list((res / 'visualization' / 'gen').glob('*.png'))) == 3
    assert len(list((res / 'visualization' / 'gen' / 'comparison').glob('*.png'))) == 3


def test_test_py_reports_option_errors_before_work(tmp_path):
    opt_path = tmp_path / 'bad.yml'
    opt_path.write_text(yaml.safe_dump({'name': 'x', 'network_g': TINY_NET, 'val': {'save_imgs': True}}))
    run = run_script([PYTHON, 'basicsr/test.py', '-opt', str(opt_path)], cwd=ROOT)
    assert run.returncode == 2
    assert "unknown key 'val.save_imgs'; did you mean 'val.save_img'?" in run.stderr and str(opt_path) in run.stderr


def test_demo_restores_bundled_samples_with_bundled_model(tmp_path):
    assert BUNDLED.is_file(), 'the bundled model must be committed'
    from basicsr.demo import main
    records = main(['--output', str(tmp_path)])
    assert len(records) == len(list((ROOT / 'datasets' / 'samples').glob('*_noisy.png'))) >= 3
    for rec in records:
        assert rec['psnr_output'] > rec['psnr_input'] + 5, rec
    assert len(list(tmp_path.glob('*_restored.png'))) == len(records)
    assert len(list(tmp_path.glob('*_side_by_side.png'))) == len(records)


def test_demo_tiled_and_tlc_flags_run(tmp_path):
    from basicsr.demo import main
    sample = sorted((ROOT / 'datasets' / 'samples').glob('*_noisy.png'))[0]
    plain = main(['--input', str(sample), '--output', str(tmp_path / 'a')])[0]
    tiled = main(['--input', str(sample), '--output', str(tmp_path / 'b'), '--tile', '128', '--tile-overlap', '32'])[0]
    tlc = main(['--input', str(sample), '--output', str(tmp_path / 'c'), '--tlc', '--tlc-train-size', '64'])[0]
    assert abs(tiled['psnr_output'] - plain['psnr_output']) < 0.3
    assert tlc['psnr_output'] > tlc['psnr_input'] + 5


def test_demo_missing_weights_is_a_clear_error(tmp_path):
    run = run_script([PYTHON, 'basicsr/demo.py', '--weights', str(tmp_path / 'none.pth')], cwd=ROOT)
    assert run.returncode != 0 and 'none.pth not found' in run.stderr


def test_train_sh_usage():
    out = subprocess.run(['bash', str(ROOT / 'train.sh')], capture_output=True, text=True)
    assert out.returncode == 2 and 'usage' in out.stderr


def test_repeated_set_flags_accumulate():
    """``--set a=1 --set b=2`` keeps both overrides (argparse's default would keep only the last)."""
    from basicsr.train import parse_args
    args = parse_args(['-opt', 'x.yml', '--set', 'name=a', 'train.total_iter=4', '--set', 'manual_seed=3'])
    assert args.set == ['name=a', 'train.total_iter=4', 'manual_seed=3']
    assert parse_args(['-opt', 'x.yml']).set == []
