"""scripts/ensemble.py fit / apply on tiny prediction folders: table file, lossless PNG outputs, metrics CSV."""
import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr.ensemble.ensir import EnsIR
from basicsr.utils.img_util import read_image, write_image

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'ensemble.py'


@pytest.fixture(scope='module')
def cli():
    spec = importlib.util.spec_from_file_location('ensemble_cli', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli')
    rng = np.random.default_rng(1)
    for name in ('x1', 'x2'):
        gt = rng.integers(0, 256, (20, 28, 3)).astype(np.uint8)
        write_image(root / 'gt' / f'{name}.png', gt)
        for m, noise in enumerate((2, 5)):
            pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
            write_image(root / f'm{m}' / f'{name}.png', pred)
    return root


def test_fit_then_apply_with_scores(cli, folders, tmp_path, capsys):
    models = [str(folders / 'm0'), str(folders / 'm1')]
    table = tmp_path / 'table.pth'
    cli.main(['fit', '--models', *models, '--gt', str(folders / 'gt'), '--bin-width', '64', '--out', str(table)])
    ens = EnsIR.load(table)
    assert ens.num_models == 2 and ens.bin_width == 64

    out = tmp_path / 'out'
    cli.main(['apply', '--table', str(table), '--models', *models, '--out', str(out), '--gt', str(folders / 'gt'),
              '--profile', 'basicsr_rgb'])
    printed = capsys.readouterr().out
    assert '| image | m0 | m1 | average | ZZPM | median | EnsIR |' in printed
    # saved losslessly: the PNG holds the rounded ensemble output exactly
    preds = torch.stack([torch.from_numpy(read_image(folders / f'm{m}' / 'x1.png')).permute(2, 0, 1) * 255
                         for m in range(2)])
    expected = (ens.apply(preds).clamp(0, 255)).round().permute(1, 2, 0).numpy()
    saved = read_image(out / 'x1.png', float32=False)
    assert np.array_equal(saved, expected.astype(np.uint8))
    with open(out / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert {r['method'] for r in rows} == {'m0', 'm1', 'average', 'ZZPM', 'median', 'EnsIR'}
    assert {r['image'] for r in rows} == {'x1', 'x2', 'mean'} and float(rows[0]['psnr']) > 30
