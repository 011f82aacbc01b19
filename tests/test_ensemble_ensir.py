"""EnsIR: binning, estimation rules, application, table files (synthetic data; fast)."""
import math

import pytest
import torch

from basicsr.ensemble import build_ensembler
from basicsr.ensemble.bins import joint_bin_index
from basicsr.ensemble.ensir import EnsIR
from basicsr.ensemble.gmm_em import EM_DONE, EM_FAILED, fit_fixed_mean_gmm


def make_reference(num_models: int, n_images: int = 2, size: int = 32, seed: int = 0):
    """Ground truth plus M noisy/biased versions of it, 8-bit valued, [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    preds, gts = [], []
    for _ in range(n_images):
        gt = (torch.rand(3, size, size, generator=g) * 255).round()
        models = [(gt + (m + 1) * 3 * torch.randn(3, size, size, generator=g) + 2 * m).clamp(0, 255).round()
                  for m in range(num_models)]
        preds.append(torch.stack(models))
        gts.append(gt)
    return preds, gts


def test_bin_index_is_lexicographic_with_half_open_bins():
    # model 0 slowest; 255 and 256+ fold into the last bin; 31.99 is bin 0, 32 is bin 1 (b = 32, nb = 8)
    x = torch.tensor([[0.0, 31.99, 32.0, 255.0, 300.0, -3.0], [255.0, 0.0, 64.0, 255.0, 0.0, 40.0]])
    expected = [0 * 8 + 7, 0 * 8 + 0, 1 * 8 + 2, 7 * 8 + 7, 7 * 8 + 0, 0 * 8 + 1]
    assert joint_bin_index(x, 32).tolist() == expected
    # non-dividing width: b = 48 -> nb = 6 with a short last bin [240, 256)
    assert joint_bin_index(torch.tensor([[47.9, 48.0, 239.9, 240.0, 255.0]]), 48).tolist() == [0, 1, 4, 5, 5]


def test_apply_is_the_table_lookup_of_each_sample():
    torch.manual_seed(0)
    ens = EnsIR(bin_width=64)
    table = torch.rand(4**2, 3, 2)
    ens._set_table(table / table.sum(-1, keepdim=True))
    x = torch.rand(2, 3, 5, 7) * 255
    out = ens.apply(x)
    for c in range(3):
        for i in range(5):
            for j in range(7):
                k = int(x[0, c, i, j] // 64) * 4 + int(x[1, c, i, j] // 64)
                w = ens.table[k, c]
                assert out[c, i, j] == pytest.approx(float(w[0] * x[0, c, i, j] + w[1] * x[1, c, i, j]), rel=1e-6)


@pytest.mark.parametrize('num_models,bin_width', [(1, 32), (2, 32), (3, 32), (4, 64), (5, 64), (6, 128)])
def test_any_model_count_gives_normalised_table(num_models, bin_width):
    preds, gts = make_reference(num_models, size=24)
    ens = EnsIR(bin_width=bin_width).fit(preds, gts)
    nb = math.ceil(256 / bin_width)
    assert ens.table.shape == (nb**num_models, 3, num_models) and ens.table.dtype == torch.float32
    torch.testing.assert_close(ens.table.sum(-1), torch.ones(nb**num_models, 3), atol=1e-5, rtol=0)
    out = ens.apply(preds[0])
    assert out.shape == (3, 24, 24) and torch.isfinite(out).all()


def test_single_model_ensemble_returns_its_input():
    preds, gts = make_reference(1, size=40)
    ens = EnsIR(bin_width=32).fit(preds, gts)
    torch.testing.assert_close(ens.apply(preds[1]), preds[1][0], atol=1e-3, rtol=0)


def test_batched_and_chunked_application_match_single_image():
    preds, gts = make_reference(3, n_images=3)
    ens = EnsIR().fit(preds, gts)
    batch = torch.stack(preds)
    expected = torch.stack([ens.apply(p) for p in preds])
    torch.testing.assert_close(ens.apply(batch), expected, atol=0, rtol=0)
    chunked = EnsIR(chunk_pixels=100)
    chunked._set_table(ens.table)
    torch.testing.assert_close(chunked.apply(batch), expected, atol=0, rtol=0)


def test_small_bins_keep_inverse_rms_softmax_weights():
    # one bin, 50 samples (< 100): weights = softmax(1 / (1e-10 + rms deviation from the consensus))
    g = torch.Generator().manual_seed(1)
    gt = 100 + torch.rand(3, 5, 10, generator=g)
    preds = torch.stack([gt + 1.0, gt - 2.0, gt + 0.5 * torch.randn(3, 5, 10, generator=g)])
    ens = EnsIR(bin_width=256).fit([preds], [gt])
    assert ens.fit_info['small'] == 3 and ens.fit_info['em'] == 0
    for c in range(3):
        x = preds[:, c].reshape(3, -1)
        rms = (x - x.mean(0)).pow(2).mean(1).sqrt()
        torch.testing.assert_close(ens.table[0, c], torch.softmax(1 / (1e-10 + rms), 0), atol=1e-6, rtol=0)


def test_default_weight_is_used_for_small_bins():
    preds, gts = make_reference(3, n_images=1, size=8)
    ens = EnsIR(bin_width=32, default_weight=[0.1, 0.3, 0.6]).fit(preds, gts)
    populated = torch.zeros(8**3 * 3, dtype=torch.bool)
    slots = (joint_bin_index(preds[0].reshape(3, 3, -1), 32) * 3 + torch.arange(3)[:, None]).reshape(-1)
    populated[slots] = True
    rows = ens.table.reshape(-1, 3)[populated]
    torch.testing.assert_close(rows, torch.tensor([0.1, 0.3, 0.6]).expand_as(rows))


def test_empty_bins_copy_previous_slot_or_use_prior():
    # values only in bins (0,0) and (1,1) of a 2-model, nb = 2 table; processing order k*3 + c
    gt = torch.full((3, 1, 4), 10.0)
    preds = torch.stack([gt.clone(), gt + 1])
    preds[:, 1] += 200  # channel G lives in bin (1, 1)
    official = EnsIR(bin_width=128).fit([preds], [gt])
    table = official.table  # (4, 3, 2)
    # slot 0 = (bin 0, R) populated; slot 1 (bin 0, G) empty -> copy of slot 0; slots up to (bin 3, G) copy
    torch.testing.assert_close(table[0, 1], table[0, 0])
    torch.testing.assert_close(table[3, 0], table[0, 2])
    torch.testing.assert_close(table[3, 2], table[3, 1])
    prior = EnsIR(bin_width=128, empty_bins='prior').fit([preds], [gt])
    torch.testing.assert_close(prior.table[0, 1], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(prior.table[3, 2], torch.tensor([0.5, 0.5]))


def test_em_failure_falls_back_to_initial_weights_unless_robust():
    # model 1 is constant in the bin (zero variance): the official EM aborts -> initial weights
    g = torch.Generator().manual_seed(2)
    gt = 100 + 10 * torch.rand(3, 20, 20, generator=g)
    preds = torch.stack([gt + torch.randn(3, 20, 20, generator=g), torch.full_like(gt, 105.0)])
    official = EnsIR(bin_width=256).fit([preds], [gt.round()])
    robust = EnsIR(bin_width=256, robust_em=True).fit([preds], [gt.round()])
    assert official.fit_info['em_failed'] == 3 and robust.fit_info['em_failed'] == 0
    x = preds[:, 0].reshape(2, -1)
    rms = (x - x.mean(0)).pow(2).mean(1).sqrt()
    torch.testing.assert_close(official.table[0, 0], torch.softmax(1 / (1e-10 + rms), 0), atol=1e-6, rtol=0)
    assert robust.table[0, 0, 0] > official.table[0, 0, 0] + 0.2  # the accurate model gains weight


def em_reference(y, x, pi):
    """Unbatched per-sample EM in float64 with the official update (means fixed, variance centred on the
    responsibility-weighted data mean, stop when the mean log-likelihood gains < 1e-5)."""
    y, x, pi = y.double(), x.double(), pi.double()
    mu, n = x.mean(1), y.numel()
    var = (x - mu[:, None]).pow(2).mean(1)
    old, step = -math.inf, 0
    while True:
        lj = torch.log(pi) - 0.5 * (math.log(2 * math.pi) + torch.log(var) + (y[:, None] - mu).pow(2) / var)
        r = torch.softmax(lj, 1)
        s = r.sum(0)
        pi = (s + 1e-6) / n
        nu = (r * y[:, None]).sum(0) / (s + 1e-6)
        var = (r * (y[:, None] - nu).pow(2)).sum(0) / s + 1e-6
        lj = torch.log(pi) - 0.5 * (math.log(2 * math.pi) + torch.log(var) + (y[:, None] - mu).pow(2) / var)
        new = torch.logsumexp(lj, 1).mean().item()
        step += 1
        if not new - old >= 1e-5 or step > 1000:
            return pi.float(), step
        old = new


def test_batched_weighted_em_matches_per_sample_em():
    g = torch.Generator().manual_seed(3)
    groups, ys, xs = [], [], []
    for k, n in enumerate([300, 1000, 150]):
        y = (120 + 15 * torch.randn(n, generator=g)).round()
        x = torch.stack([y + 4 * torch.randn(n, generator=g), y + 6 + 3 * torch.randn(n, generator=g),
                         0.9 * y + 10 + 2 * torch.randn(n, generator=g)])
        groups.append(torch.full((n, ), k))
        ys.append(y)
        xs.append(x)
    pi0 = torch.tensor([0.2, 0.3, 0.5])
    # compress to (value, count) points per group, as the estimator does for 8-bit ground truth
    code = torch.cat(groups) * 256 + torch.cat(ys).long()
    values, counts = torch.unique(code, return_counts=True)
    result = fit_fixed_mean_gmm(
        (values % 256).float(), counts.float(), values // 256,
        mu=torch.stack([x.mean(1) for x in xs]), var=torch.stack([x.var(1, unbiased=False) for x in xs]),
        pi=pi0.expand(3, 3), n=torch.tensor([300.0, 1000.0, 150.0]), dtype=torch.float64)
    for k in range(3):
        expected, steps = em_reference(ys[k], xs[k], pi0)
        torch.testing.assert_close(result.weights[k], expected, atol=1e-5, rtol=0)
        assert result.steps[k] == steps and result.status[k] == EM_DONE


def test_em_reports_failed_groups():
    result = fit_fixed_mean_gmm(torch.tensor([1.0, 2.0]), torch.ones(2), torch.tensor([0, 0]),
                                mu=torch.tensor([[1.0, 2.0]]), var=torch.tensor([[0.0, 1.0]]),
                                pi=torch.tensor([[0.4, 0.6]]), n=torch.tensor([2.0]))
    assert result.status.tolist() == [EM_FAILED]
    torch.testing.assert_close(result.weights[0], torch.tensor([0.4, 0.6]))


@pytest.mark.parametrize('official_format', [False, True])
def test_save_load_round_trip(tmp_path, official_format):
    preds, gts = make_reference(3)
    ens = EnsIR(bin_width=64, default_weight=[0.2, 0.3, 0.5]).fit(preds, gts)
    path = tmp_path / 'table.pth'
    ens.save(path, official_format=official_format)
    loaded = EnsIR.load(path)
    assert loaded.bin_width == 64 and loaded.num_models == 3
    torch.testing.assert_close(loaded.table, ens.table, atol=0, rtol=0)
    torch.testing.assert_close(loaded.apply(preds[0]), ens.apply(preds[0]), atol=0, rtol=0)
    if official_format:  # the official layout: tuple keys of lower bounds -> [w_R, w_G, w_B]
        raw = torch.load(path, weights_only=True)
        assert list(raw)[:2] == [(0, 0, 0), (0, 0, 64)] and len(raw) == 64 and raw[(0, 0, 64)][1].shape == (3, )
    else:
        assert loaded.default_weight == [0.2, 0.3, 0.5]


def test_registry_builds_ensir_with_options():
    ens = build_ensembler({'type': 'EnsIR', 'bin_width': 64, 'empty_bins': 'prior'})
    assert isinstance(ens, EnsIR) and ens.num_bins == 4 and ens.empty_bins == 'prior'


def test_float64_em_agrees_with_the_official_float32_em():
    # em_precision only moves the float-noise-level stopping step, not the estimate
    preds, gts = make_reference(3, n_images=2, size=32, seed=5)
    single = EnsIR(bin_width=64).fit(preds, gts)
    double = EnsIR(bin_width=64, em_precision='float64').fit(preds, gts)
    assert (single.table - double.table).abs().max() < 1e-2
    with pytest.raises(ValueError, match="em_precision: expected one of .*got 'half'"):
        EnsIR(em_precision='half')


def test_non_integer_ground_truth_runs_em_per_sample():
    # ground truth that is not 8-bit valued is not histogrammed: the estimate equals per-sample EM
    g = torch.Generator().manual_seed(7)
    gt = 120 + 10 * torch.randn(3, 12, 12, generator=g)
    preds = torch.stack([gt + 2 * torch.randn(3, 12, 12, generator=g), gt + 5 + torch.randn(3, 12, 12, generator=g)])
    ens = EnsIR(bin_width=256, default_weight=[0.5, 0.5], em_precision='float64').fit([preds], [gt])
    assert ens.fit_info['em'] == 3
    for c in range(3):
        expected, _ = em_reference(gt[c].reshape(-1), preds[:, c].reshape(2, -1), torch.tensor([0.5, 0.5]))
        torch.testing.assert_close(ens.table[0, c], expected, atol=1e-5, rtol=0)


@pytest.mark.cuda
def test_cuda_fit_and_apply_match_cpu():
    preds, gts = make_reference(3)
    cpu = EnsIR(bin_width=64).fit(preds, gts)
    gpu = EnsIR(bin_width=64).fit([p.cuda() for p in preds], [g.cuda() for g in gts])
    assert (gpu.table - cpu.table).abs().max() < 1e-2
    out = gpu.apply(preds[0].cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), gpu.apply(preds[0]), atol=1e-3, rtol=0)
