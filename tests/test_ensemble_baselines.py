"""Training-free baselines: average, ZZPM, median; registry names."""
import pytest
import torch

from basicsr.ensemble import ENSEMBLE_REGISTRY, build_ensembler
from basicsr.ensemble.baselines import ZZPM, Average, Median


def test_registry_lists_ensir_and_baselines():
    assert {'EnsIR', 'Average', 'ZZPM', 'Median'} <= set(ENSEMBLE_REGISTRY.keys())


def test_average_is_the_per_pixel_mean():
    x = torch.rand(2, 4, 3, 8, 8) * 255
    torch.testing.assert_close(Average().apply(x), x.mean(1))


def test_zzpm_weights_models_by_their_distance_to_the_consensus():
    # official formula: w = softmax(1 / (1e-3 + mean((x_m - mean_k x_k)^2))), one weight per model and image
    torch.manual_seed(0)
    gt = torch.rand(3, 16, 16) * 255
    x = torch.stack([gt + 0.5 * torch.randn_like(gt), gt + 0.6 * torch.randn_like(gt), gt + 1.0])
    mse = (x - x.mean(0)).pow(2).mean((1, 2, 3))
    w = torch.softmax(1 / (1e-3 + mse), 0)
    torch.testing.assert_close(ZZPM().apply(x), (x * w[:, None, None, None]).sum(0), atol=1e-4, rtol=0)


def test_zzpm_in_chunks_matches_whole_image():
    x = torch.rand(2, 3, 3, 20, 30) * 255
    torch.testing.assert_close(ZZPM(chunk_pixels=77).apply(x), ZZPM().apply(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize('m', [1, 2, 3, 4, 5])
def test_median_is_middle_value_or_mean_of_the_two_middle_values(m):
    x = torch.rand(m, 3, 5, 5) * 255
    s = x.sort(0).values
    expected = s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2
    torch.testing.assert_close(Median().apply(x), expected)


def test_baselines_accept_a_list_of_images_and_remember_m_after_fit():
    x = [torch.rand(3, 4, 4) * 255 for _ in range(3)]
    ens = build_ensembler({'type': 'Average'})
    torch.testing.assert_close(ens.apply(x), torch.stack(x).mean(0))
    ens.fit([torch.stack(x)], [x[0]])
    assert ens.num_models == 3
    with pytest.raises(ValueError, match='M = 3 .*M = 2'):
        ens.apply(x[:2])


def test_cpu_thread_count_is_restored_after_apply():
    before = torch.get_num_threads()
    Average(cpu_threads=1).apply(torch.rand(2, 3, 4, 4))
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match='cpu_threads must be a positive number'):
        Average(cpu_threads=0)
