"""EnlargedSampler (sharding, enlargement, exact mid-epoch resume), loaders and prefetchers."""
from __future__ import annotations

import pytest
import torch

from basicsr.data import build_dataset
from basicsr.data.loader import build_dataloader, build_prefetcher
from basicsr.data.prefetcher import CPUPrefetcher
from basicsr.data.sampler import EnlargedSampler
from data_helpers import random_image, save


def _indices(sampler):
    return [i for i, _ in sampler]


def test_one_epoch_is_a_permutation_of_the_enlarged_range():
    s = EnlargedSampler(10, ratio=3, seed=1)
    idx = _indices(s)
    assert sorted(idx) == list(range(30)) and idx != list(range(30))
    assert all(e == 0 for _, e in s)


def test_order_depends_on_seed_and_epoch_only():
    a, b = EnlargedSampler(20, seed=5), EnlargedSampler(20, seed=5)
    assert _indices(a) == _indices(b)
    a.set_epoch(1)
    assert _indices(a) != _indices(b)
    assert _indices(EnlargedSampler(20, seed=6)) != _indices(b)


@pytest.mark.parametrize('n,world,ratio', [(10, 3, 1), (7, 2, 2), (5, 4, 1)])
def test_shards_cover_every_index_with_equal_lengths(n, world, ratio):
    shards = [_indices(EnlargedSampler(n, world, r, ratio=ratio, seed=2)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    covered = {i for s in shards for i in s}
    assert covered == set(range(n * ratio))
    assert sum(len(s) for s in shards) - n * ratio < world  # padding only fills the last round


def test_shards_interleave_the_single_process_order():
    """Rank r of 2 gets positions r, r+2, ...: a global batch of 2 x b equals one process's batch of 2b."""
    single = _indices(EnlargedSampler(12, 1, 0, seed=9))
    r0, r1 = (_indices(EnlargedSampler(12, 2, r, seed=9)) for r in (0, 1))
    assert single[0::2] == r0 and single[1::2] == r1


def test_resume_mid_epoch_continues_at_the_exact_next_sample():
    straight = EnlargedSampler(13, seed=4)
    straight.set_epoch(2)
    full = list(straight)
    first = EnlargedSampler(13, seed=4)
    first.set_epoch(2)
    first.record(5)
    state = first.state_dict()
    assert state['epoch'] == 2 and state['consumed'] == 5
    resumed = EnlargedSampler(13, seed=4)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the loop calls set_epoch again after resuming: the position must survive
    assert list(resumed) == full[5:]
    resumed.set_epoch(3)
    assert len(list(resumed)) == 13


def test_resume_with_another_world_size_when_divisible():
    s = EnlargedSampler(16, 2, 0, seed=1)
    s.record(4)  # 4 per rank = 8 global
    one = EnlargedSampler(16, 1, 0, seed=1)
    one.load_state_dict(s.state_dict())
    assert one.consumed == 8
    three = EnlargedSampler(16, 3, 0, seed=1)
    with pytest.raises(ValueError, match='not divisible'):
        three.load_state_dict(s.state_dict())


def test_resume_with_other_seed_is_refused():
    with pytest.raises(ValueError, match='seed'):
        EnlargedSampler(8, seed=1).load_state_dict(EnlargedSampler(8, seed=2).state_dict())


def test_iterating_again_in_the_same_epoch_starts_over():
    s = EnlargedSampler(4, seed=0)
    s.record(4)
    assert len(list(s)) == 4


def _noise_dataset(tmp_path, n=6):
    for i in range(n):
        save(tmp_path / 'clean' / f'{i}.png', random_image(24, 24, seed=i))
    return build_dataset({'type': 'SyntheticDegradationDataset', 'name': 'n', 'phase': 'train', 'gt_size': 16,
                          'dataroot_gt': str(tmp_path / 'clean'), 'use_hflip': True, 'use_rot': True,
                          'degradation': {'type': 'GaussianNoise', 'sigma_range': [0, 50]}})


def _run(loader, prefetcher_steps):
    pf = CPUPrefetcher(loader)
    return [pf.next()['lq'] for _ in range(prefetcher_steps)], pf


def test_loader_stops_and_resumes_at_the_exact_batch_with_workers(tmp_path):
    ds = _noise_dataset(tmp_path)
    opt = {'phase': 'train', 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 2}
    straight_sampler = EnlargedSampler(len(ds), ratio=2, seed=3)
    straight, _ = _run(build_dataloader(ds, opt, num_gpu=0, sampler=straight_sampler, seed=3), 5)

    first_sampler = EnlargedSampler(len(ds), ratio=2, seed=3)
    _, pf = _run(build_dataloader(ds, opt, num_gpu=0, sampler=first_sampler, seed=3), 2)
    state = first_sampler.state_dict()
    assert state['consumed'] == 4  # counted when handed out, not when the workers prefetched them

    resumed_sampler = EnlargedSampler(len(ds), ratio=2, seed=3)
    resumed_sampler.load_state_dict(state)
    rest, _ = _run(build_dataloader(ds, opt, num_gpu=0, sampler=resumed_sampler, seed=3), 3)
    for a, b in zip(straight[2:], rest):
        assert torch.equal(a, b)


def test_samples_do_not_depend_on_the_number_of_workers(tmp_path):
    ds = _noise_dataset(tmp_path)
    out = []
    for workers in (0, 2):
        opt = {'phase': 'train', 'batch_size_per_gpu': 3, 'num_worker_per_gpu': workers}
        loader = build_dataloader(ds, opt, num_gpu=0, sampler=EnlargedSampler(len(ds), seed=8), seed=8)
        out.append(torch.cat([b['lq'] for b in loader]))
    assert torch.equal(out[0], out[1])


def test_prefetcher_returns_none_at_the_end_and_reset_starts_a_new_epoch(tmp_path):
    ds = _noise_dataset(tmp_path, n=4)
    sampler = EnlargedSampler(len(ds), seed=0)
    loader = build_dataloader(ds, {'phase': 'train', 'batch_size_per_gpu': 2}, num_gpu=0, sampler=sampler)
    pf = build_prefetcher(loader, {'prefetch_mode': None})
    assert pf.next() is not None and pf.next() is not None and pf.next() is None
    sampler.set_epoch(1)
    pf.reset()
    batch = pf.next()
    assert batch['lq'].shape == (2, 3, 16, 16)


def test_train_loader_drops_last_and_refuses_too_few_samples(tmp_path):
    ds = _noise_dataset(tmp_path, n=5)
    loader = build_dataloader(ds, {'phase': 'train', 'batch_size_per_gpu': 2}, num_gpu=0,
                              sampler=EnlargedSampler(5, seed=0))
    assert [b['lq'].shape[0] for b in loader] == [2, 2]
    with pytest.raises(ValueError, match='dataset_enlarge_ratio'):
        build_dataloader(ds, {'phase': 'train', 'batch_size_per_gpu': 8}, num_gpu=0, sampler=EnlargedSampler(5))


def test_val_loader_keeps_order_and_every_image(tmp_path):
    ds = _noise_dataset(tmp_path, n=3)
    ds_val = build_dataset({**ds.opt, 'phase': 'val'})
    loader = build_dataloader(ds_val, {'phase': 'val'}, num_gpu=0)
    assert [b['gt_path'][0][-5:] for b in loader] == ['0.png', '1.png', '2.png']


def test_cuda_prefetcher_refuses_a_cpu_device(tmp_path):
    ds = _noise_dataset(tmp_path, n=2)
    loader = build_dataloader(ds, {'phase': 'val'}, num_gpu=0)
    with pytest.raises(ValueError, match='CUDA'):
        build_prefetcher(loader, {'prefetch_mode': 'cuda'}, 'cpu')


@pytest.mark.cuda
def test_cuda_prefetcher_moves_batches_to_the_device(tmp_path):
    ds = _noise_dataset(tmp_path, n=4)
    opt = {'phase': 'train', 'batch_size_per_gpu': 2, 'prefetch_mode': 'cuda'}
    loader = build_dataloader(ds, opt, num_gpu=1, sampler=EnlargedSampler(4))
    pf = build_prefetcher(loader, opt, 'cuda')
    batch = pf.next()
    assert batch['lq'].is_cuda and isinstance(batch['lq_path'], list)
    assert pf.next() is not None and pf.next() is None
