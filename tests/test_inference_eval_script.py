"""scripts/eval_inference_modes.py on a tiny random NAFNet and two small images (the real run needs the
bundled model's weights)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location('eval_inference_modes', ROOT / 'scripts' / 'eval_inference_modes.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_script_reports_every_mode(tmp_path, capsys):
    cv2 = pytest.importorskip('cv2')
    data = tmp_path / 'clean'
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(data / f'img{i}.png'), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    from basicsr.archs import build_network
    arch = {'type': 'NAFNet', 'width': 4, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}
    net = build_network(arch)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(('beta', 'gamma')):
                p.fill_(0.2)
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': arch, 'datasets': {'train': {'gt_size': 16}}}))
    script = _load_script()
    rows = script.main(['--opt', str(tmp_path / 'opt.yml'), '--weights', str(tmp_path / 'net.pth'),
                        '--data', str(data), '--tile', '16', '--overlap', '8', '--in-process'])
    text = capsys.readouterr().out
    assert [r['mode'] for r in rows] == list(script.MODES)
    assert all(np.isfinite(r['psnr']) and 0 < r['ssim'] <= 1 and r['seconds_per_image'] > 0 for r in rows)
    assert '| tlc_fast |' in text and 'PSNR (dB)' in text
    by_mode = {r['mode']: r for r in rows}
    assert by_mode['tlc']['psnr'] != by_mode['plain']['psnr']  # 40x56 > 1.5 x 16: local statistics


def test_eval_script_rejects_unknown_modes(tmp_path):
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': {'type': 'NAFNet'}}))
    with pytest.raises(SystemExit):
        _load_script().main(['--opt', str(tmp_path / 'opt.yml'), '--weights', 'x.pth', '--modes', 'plain,fancy'])
