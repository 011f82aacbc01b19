"""test.py with an ``ensemble:`` block: base models (option file + weights, or stored predictions) fused."""
import json

import pytest
import torch
import yaml

from engine_helpers import PYTHON, ROOT, make_clean_images, run_script

TINY_NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


def run_test(tmp_path, opt):
    path = tmp_path / 'ens.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    run = run_script([PYTHON, 'basicsr/test.py', '-opt', str(path)], cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((tmp_path / 'res' / 'metrics.json').read_text())


def test_official_table_on_stored_predictions_scores_members_and_ensemble(tmp_path, shared_dir):
    ref = shared_dir / 'data' / 'ensir_reference' / 'deraining'
    table = shared_dir / 'data' / 'ensir_reference' / 'luts' / 'weight_Rain100L_MPRNet_MAXIM_Restormer_b32_rgb.pth'
    opt = {'name': 'ens', 'num_gpu': 0,
           'datasets': {'test': {'name': 'derain', 'type': 'PairedImageDataset', 'dataroot_gt': str(ref / 'gt'),
                                 'dataroot_lq': str(ref / 'lq')}},
           'path': {'results_root': str(tmp_path / 'res')},
           'val': {'save_img': False, 'profile': 'basicsr_y'},
           'ensemble': {'method': 'EnsIR', 'table': str(table), 'bin_width': 32,
                        'members': [{'predictions': str(ref / m)} for m in ('MPRNet', 'MAXIM', 'Restormer')]}}
    mean = run_test(tmp_path, opt)['derain']['mean']
    members = [mean[f'psnr@{m}'] for m in ('MPRNet', 'MAXIM', 'Restormer')]
    assert mean['psnr'] > max(members) - 0.1 and mean['psnr'] > min(members) + 0.5


def test_model_members_run_their_own_pipelines_and_average(tmp_path):
    from basicsr.archs import build_network
    torch.manual_seed(0)
    weights = tmp_path / 'tiny.pth'
    torch.save({'params': build_network(TINY_NET).state_dict()}, weights)
    member = tmp_path / 'member.yml'
    member.write_text(yaml.safe_dump({'network_g': TINY_NET, 'test': {'pad_multiple': 'auto', 'self_ensemble': True}}))
    data = make_clean_images(tmp_path / 'clean', n=2, size=40)
    opt = {'name': 'ens2', 'num_gpu': 0,
           'datasets': {'test': {'name': 'gen', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
                                 'degradation': {'type': 'GaussianNoise', 'sigma': 25}}},
           'path': {'results_root': str(tmp_path / 'res')},
           'val': {'save_img': True, 'profile': 'basicsr_rgb'},
           'ensemble': {'method': 'average', 'members': [{'opt': str(member), 'weights': str(weights)}] * 2}}
    mean = run_test(tmp_path, opt)['gen']['mean']
    assert mean['psnr'] == pytest.approx(mean['psnr@member'], abs=1e-9)  # two identical members average to one


def test_member_count_must_match_the_table(tmp_path, shared_dir):
    from basicsr.ensemble.pipeline import build_ensemble_pipeline
    ref = shared_dir / 'data' / 'ensir_reference' / 'deraining'
    table = shared_dir / 'data' / 'ensir_reference' / 'luts' / 'weight_Rain100L_MPRNet_MAXIM_Restormer_b32_rgb.pth'
    with pytest.raises(ValueError, match='3'):
        build_ensemble_pipeline({'method': 'EnsIR', 'table': str(table),
                                 'members': [{'predictions': str(ref / 'MPRNet')}] * 2}, torch.device('cpu'))
    with pytest.raises(ValueError, match=r'members\[0\]'):
        build_ensemble_pipeline({'method': 'average', 'members': [{'nope': 1}]}, torch.device('cpu'))
