"""Bad input to the ensemblers raises ValueError naming what was expected and what was given."""
import pytest
import torch

from basicsr.ensemble.baselines import ZZPM, Average
from basicsr.ensemble.ensir import EnsIR


def reference(num_models=3, size=16, n=2):
    g = torch.Generator().manual_seed(0)
    gts = [(torch.rand(3, size, size, generator=g) * 255).round() for _ in range(n)]
    preds = [torch.stack([(gt + 2 * torch.randn(3, size, size, generator=g)).clamp(0, 255) for _ in range(num_models)])
             for gt in gts]
    return preds, gts


@pytest.fixture(scope='module')
def fitted():
    preds, gts = reference()
    return EnsIR(bin_width=64).fit(preds, gts)


def test_model_count_differs_between_fit_and_apply(fitted):
    with pytest.raises(ValueError, match=r'M = 3 .*M = 2'):
        fitted.apply(torch.rand(2, 3, 8, 8) * 255)


def test_model_count_differs_from_loaded_table(tmp_path, fitted):
    fitted.save(tmp_path / 't.pth')
    loaded = EnsIR.load(tmp_path / 't.pth')
    with pytest.raises(ValueError, match=r'M = 3 .*M = 4'):
        loaded.apply(torch.rand(1, 4, 3, 8, 8) * 255)


def test_model_count_differs_between_reference_images():
    preds, gts = reference()
    preds[1] = preds[1][:2]
    with pytest.raises(ValueError, match=r'expected M = 3 .*got 2'):
        EnsIR().fit(preds, gts)


def test_default_weight_length_differs_from_model_count():
    preds, gts = reference()
    with pytest.raises(ValueError, match=r'expected 3 weights .*got 2'):
        EnsIR(default_weight=[0.5, 0.5]).fit(preds, gts)


def test_models_and_ground_truth_of_different_sizes():
    preds, gts = reference()
    gts[0] = gts[0][:, :8]
    with pytest.raises(ValueError, match=r'same size, got predictions \(16, 16\) and ground truth \(8, 16\)'):
        EnsIR().fit(preds, gts)


@pytest.mark.parametrize('where', ['preds', 'gts', 'apply'])
def test_channel_count_other_than_three(where, fitted):
    preds, gts = reference()
    with pytest.raises(ValueError, match=r'expected 3 colour channels .*got 1'):
        if where == 'preds':
            EnsIR().fit([p[:, :1] for p in preds], gts)
        elif where == 'gts':
            EnsIR().fit(preds, [g[:1] for g in gts])
        else:
            fitted.apply(preds[0][:, :1])


def test_empty_reference_set():
    with pytest.raises(ValueError, match=r'empty reference set: expected at least one image .*got 0'):
        EnsIR().fit([], [])


@pytest.mark.parametrize('bin_width', [0, 257, -32, 2.5, '32'])
def test_bin_width_outside_1_to_256(bin_width):
    with pytest.raises(ValueError, match=r'bin_width: expected an integer in 1\.\.256, got'):
        EnsIR(bin_width=bin_width)


@pytest.mark.parametrize('where', ['preds', 'gts', 'apply'])
def test_nan_values(where, fitted):
    preds, gts = reference()
    bad = torch.full((), float('nan'))
    with pytest.raises(ValueError, match=r'expected finite values .*got 1 NaN'):
        if where == 'preds':
            preds[1][0, 0, 0, 0] = bad
            EnsIR().fit(preds, gts)
        elif where == 'gts':
            gts[0][0, 0, 0] = bad
            EnsIR().fit(preds, gts)
        else:
            preds[0][1, 2, 3, 4] = bad
            fitted.apply(preds[0])


def test_nan_values_in_baselines():
    x = torch.rand(3, 3, 8, 8)
    x[0, 0, 0, 0] = float('nan')
    for ens in (Average(), ZZPM()):
        with pytest.raises(ValueError, match='NaN'):
            ens.apply(x)


@pytest.mark.parametrize('content', ['garbage', 'tensor', 'dict', 'incomplete', 'bad_value'])
def test_table_file_that_is_not_an_ensir_table(tmp_path, content):
    path = tmp_path / 'table.pth'
    if content == 'garbage':
        path.write_bytes(b'this is not a torch file')
    elif content == 'tensor':
        torch.save(torch.zeros(512, 3, 3), path)
    elif content == 'dict':
        torch.save({'params': torch.zeros(3)}, path)
    elif content == 'incomplete':  # official layout with keys missing
        torch.save({(0, 0, 0): [torch.ones(3) / 3] * 3, (0, 0, 32): [torch.ones(3) / 3] * 3}, path)
    else:  # official layout, values of the wrong length
        torch.save({(0, ): [torch.ones(2)] * 3}, path)
    with pytest.raises(ValueError, match=r'not (a|an|a complete|a valid) EnsIR table: expected'):
        EnsIR.load(path)


def test_missing_table_file(tmp_path):
    with pytest.raises(ValueError, match=r'expected an existing \.pth or \.safetensors file'):
        EnsIR.load(tmp_path / 'nope.pth')


def test_apply_before_fit():
    with pytest.raises(ValueError, match='expected a fitted or loaded table'):
        EnsIR().apply(torch.rand(3, 3, 4, 4))


def test_wrong_tensor_rank_for_apply(fitted):
    with pytest.raises(ValueError, match=r'expected a tensor of shape \(M, 3, H, W\) .*got shape \(3, 4, 4\)'):
        fitted.apply(torch.rand(3, 4, 4))


def test_table_that_would_be_too_large():
    preds, gts = reference(num_models=7, size=8, n=1)
    with pytest.raises(ValueError, match=r'expected nb\*\*M <= 1048576 .*got 8\*\*7 = 2097152'):
        EnsIR(bin_width=32).fit(preds, gts)


def test_empty_prediction_list_for_apply(fitted):
    with pytest.raises(ValueError, match='expected a .* or M images, got an empty sequence'):
        fitted.apply([])
