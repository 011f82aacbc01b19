"""The `ensemble:` option block: build, fit on prediction folders or load a table, apply on [0, 1] images."""
import numpy as np
import pytest
import torch

from basicsr.ensemble.baselines import Average
from basicsr.ensemble.ensir import EnsIR
from basicsr.ensemble.runner import apply_unit_range, build_ensemble_from_opt, resolve_method
from basicsr.utils.img_util import write_image


@pytest.fixture(scope='module')
def reference_folders(tmp_path_factory):
    """gt/ and three model folders of 8-bit PNGs (model 'b' as JPEG-free PNG too), 2 images of 24x24."""
    root = tmp_path_factory.mktemp('ref')
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        gt = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
        write_image(root / 'gt' / f'{name}.png', gt)
        for m, noise in enumerate((3, 6, 9)):
            pred = np.clip(gt.astype(int) + rng.integers(-noise, noise + 1, gt.shape), 0, 255).astype(np.uint8)
            write_image(root / f'model{m}' / f'{name}.png', pred)
    return root


def fit_block(root):
    return {'models': [str(root / f'model{m}') for m in range(3)], 'gt': str(root / 'gt')}


def test_method_names_are_case_insensitive():
    assert resolve_method('ensir') == 'EnsIR' and resolve_method('zzpm') == 'ZZPM'
    with pytest.raises(ValueError, match="expected one of .*got 'gmm'"):
        resolve_method('gmm')


def test_fit_on_the_fly_then_save_and_reload(tmp_path, reference_folders):
    table = tmp_path / 'table.pth'
    opt = {'method': 'EnsIR', 'table': str(table), 'fit': fit_block(reference_folders), 'bin_width': 64}
    fitted = build_ensemble_from_opt(opt, num_models=3)
    assert isinstance(fitted, EnsIR) and table.is_file() and fitted.bin_width == 64
    reloaded = build_ensemble_from_opt({'method': 'EnsIR', 'table': str(table)})
    torch.testing.assert_close(reloaded.table, fitted.table, atol=0, rtol=0)


def test_ensir_without_table_or_reference_set_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r'does not exist and no reference set .*expected `table:`'):
        build_ensemble_from_opt({'method': 'EnsIR', 'table': str(tmp_path / 'missing.pth')})


def test_model_count_of_the_caller_is_checked(reference_folders):
    with pytest.raises(ValueError, match='M = 3 .*M = 2'):
        build_ensemble_from_opt({'method': 'EnsIR', 'fit': fit_block(reference_folders)}, num_models=2)


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="unknown argument.*'bin_widht'"):
        build_ensemble_from_opt({'method': 'EnsIR', 'bin_widht': 32, 'table': None, 'fit': None})


def test_baseline_and_unit_range_application():
    ens = build_ensemble_from_opt({'method': 'average'}, num_models=2)
    assert isinstance(ens, Average)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(apply_unit_range(ens, x), x.mean(0))


def test_unit_range_application_matches_the_255_scale(reference_folders):
    ens = build_ensemble_from_opt({'method': 'EnsIR', 'fit': fit_block(reference_folders), 'bin_width': 32})
    x = (torch.rand(3, 3, 16, 16) * 255).round()
    torch.testing.assert_close(apply_unit_range(ens, x / 255.0), ens.apply(x) / 255.0)
