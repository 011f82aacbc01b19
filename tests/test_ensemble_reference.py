"""EnsIR on the shipped reference sets against the official lookup tables (skipped without /work/shared).

Golden numbers come from running the official code (sunshangquan/EnsIR) on this data, see
shared/reference/ensir.md sections 9-10.
"""
from pathlib import Path

import pytest
import torch

from basicsr.ensemble.ensir import EnsIR
from basicsr.ensemble.folders import list_names, load_reference_set
from basicsr.ensemble.report import score

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ensir_reference'
SETS = {
    'deraining': (['MPRNet', 'MAXIM', 'Restormer'], 'weight_Rain100L_MPRNet_MAXIM_Restormer_b32_rgb.pth',
                  [0.1, 0.3, 0.6]),
    'deblurring': (['MPRNet', 'Restormer', 'DGUNet'], 'weight_GoPro_MPRNet_Restormer_DGUNet_b32_rgb.pth', None),
}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f'EnsIR reference data not found at {DATA}')


def reference_set(task, names=None):
    models = SETS[task][0]
    return load_reference_set([DATA / task / m for m in models], DATA / task / 'gt', names=names)


def official_table(task):
    return EnsIR.load(DATA / 'luts' / SETS[task][1])


def official_loop_apply(lut, x, b):
    """The official application written plainly: for every key, mask the samples in it and weight them."""
    out = torch.zeros(x.shape[1:])
    idx = torch.div(x, b, rounding_mode='trunc')
    for key, weights in lut.items():
        for c in range(3):
            mask = torch.ones(x.shape[2:], dtype=torch.bool)
            for m, lower in enumerate(key):
                mask &= idx[m, c] == lower // b
            out[c][mask] = (x[:, c][:, mask] * weights[c][:, None]).sum(0)
    return out


@pytest.mark.parametrize('task', sorted(SETS))
def test_official_tables_load_as_dense_normalised_tables(task):
    ens = official_table(task)
    assert ens.bin_width == 32 and ens.num_models == 3 and ens.table.shape == (512, 3, 3)
    torch.testing.assert_close(ens.table.sum(-1), torch.ones(512, 3), atol=1e-6, rtol=0)


@pytest.mark.parametrize('task', sorted(SETS))
def test_official_table_application_reproduces_the_official_output(task):
    first = list_names(DATA / task / 'gt')[:1]
    preds, _, _ = reference_set(task, names=first)
    x = preds[0][..., 100:164, 200:264]
    lut = torch.load(DATA / 'luts' / SETS[task][1], weights_only=True)
    expected = official_loop_apply(lut, x, 32)
    assert (official_table(task).apply(x) - expected).abs().max() <= 1e-3


@pytest.mark.parametrize('task', ['deraining', pytest.param('deblurring', marks=pytest.mark.slow)])
def test_re_estimated_tables_match_the_official_tables(task):
    # the official estimate itself moves by up to 5e-3 with summation order (ensir.md section 10)
    preds, gts, _ = reference_set(task)
    ens = EnsIR(bin_width=32, default_weight=SETS[task][2]).fit(preds, gts)
    assert (ens.table - official_table(task).table).abs().max() <= 1e-2
    if task == 'deraining':  # bin/channel split measured with the official code
        assert (ens.fit_info['empty'], ens.fit_info['small'], ens.fit_info['em']) == (1192, 183, 161)


def test_held_out_deraining_psnr_matches_the_official_code():
    preds, gts, names = reference_set('deraining')
    held = names.index('11193')
    train = [i for i in range(len(names)) if i != held]
    own = EnsIR(bin_width=32, default_weight=[0.1, 0.3, 0.6]).fit([preds[i] for i in train], [gts[i] for i in train])
    scores = score({'own': own.apply(preds[held]), 'official': official_table('deraining').apply(preds[held])},
                   gts[held], 'ensir_y')
    assert scores['own']['psnr'] == pytest.approx(41.485, abs=0.01)
    assert scores['official']['psnr'] == pytest.approx(41.394, abs=1e-3)
