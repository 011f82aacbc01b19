"""The small DSRIR all-in-one recipe (multi-task CSV data, three stage outputs with log-variance maps, per-epoch
schedule, progressive stages) resumes exactly, and trains identically on two gloo processes and on one process
with the same global batch."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from basicsr.utils.options import load_with_bases
from engine_helpers import PYTHON, ROOT, read_losses, run_script

RECIPE = ROOT / 'options' / 'train' / 'AllInOne' / 'DSRIR_allinone_small.yml'


def _make_root(root: Path) -> Path:
    """A DSRIR-style training root with two clean, two rain and two haze images and its CSV list."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        for rel, img in ((f'Denoise/c{i}.png', None), (f'Derain/gt/norain-{i}.png', f'Derain/rainy/rain-{i}.png'),
                         (f'Dehaze/original/{i}.png', f'Dehaze/synthetic/{i}.png')):
            clean = cv2.resize(rng.random((6, 6, 3)).astype(np.float32), (40, 40), interpolation=cv2.INTER_CUBIC)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), (np.clip(clean, 0, 1) * 255).astype(np.uint8))
            if img is not None:
                (root / img).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / img), (np.clip(0.6 * clean + 0.3, 0, 1) * 255).astype(np.uint8))
            rows.append(f'{rel},{img or rel}')
    (root / 'all.csv').write_text('\n'.join(rows) + '\n')
    return root


def _options(tmp: Path, name: str, batch: int, total_iter: int, progressive: bool = False,
             crop: str = '') -> Path:
    """The recipe on the test's data; ``progressive``: two short stages instead of the shipped schedule (whose
    first stage cuts 32 px patches from the loaded 64 px ones); ``crop``: another ``progressive_crop``."""
    opt = load_with_bases(RECIPE)
    train = opt['datasets']['train']
    if progressive:  # two short stages: 4 patches of 24 px, then 2 of 32 px
        train.update(mini_batch_sizes=[4, 2], gt_sizes=[24, 32], iters=[2, 2], gt_size=32)
    if crop:
        train['progressive_crop'] = crop
    task = train['tasks'][0]
    task['dataroot_lq'] = str(tmp / 'data')
    task['list_file'] = str(tmp / 'data' / 'all.csv')
    train.update(batch_size_per_gpu=batch, dataset_enlarge_ratio=2)
    opt['train']['total_iter'] = total_iter
    opt['train']['scheduler']['iters_per_epoch'] = 3
    opt['name'] = name
    opt['path'] = {'experiments_root': str(tmp / 'experiments' / name)}
    opt['logger'].update(print_freq=1, save_checkpoint_freq=total_iter)
    path = tmp / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


@pytest.mark.slow
def test_progressive_multitask_run_resumes_exactly(tmp_path):
    from basicsr.engine.trainer import Trainer
    from basicsr.utils.options import parse_options
    _make_root(tmp_path / 'data')
    straight = _options(tmp_path, 'straight', batch=4, total_iter=4, progressive=True)
    Trainer(parse_options(straight)).train()
    split = _options(tmp_path, 'split', batch=4, total_iter=4, progressive=True)
    Trainer(parse_options(split, ['train.total_iter=3'])).train()
    Trainer(parse_options(split)).train()  # resumes at iteration 3, inside the second stage
    for key in ('l_uncertainty', 'l_psnr'):
        ref = read_losses(tmp_path / 'experiments' / 'straight', key)
        assert sorted(ref) == [1, 2, 3, 4]
        assert read_losses(tmp_path / 'experiments' / 'split', key) == ref


@pytest.mark.slow
@pytest.mark.parametrize('crop', ['', 'per_sample'])  # as shipped (one offset per batch), and DSRIR's full recipe
def test_two_gloo_ranks_give_the_same_first_losses_as_one_process(tmp_path, crop):
    # the progressive schedule as shipped: every rank cuts the patches one process with the global batch cuts
    _make_root(tmp_path / 'data')
    one = _options(tmp_path, 'one', batch=4, total_iter=3, crop=crop)
    r1 = run_script([PYTHON, 'basicsr/train.py', '-opt', str(one)], cwd=ROOT)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert 'progressive training: patch size 32' in r1.stderr
    two = _options(tmp_path, 'two', batch=2, total_iter=3, crop=crop)
    r2 = run_script([PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29743',
                     'basicsr/train.py', '-opt', str(two)], cwd=ROOT)
    assert r2.returncode == 0, r2.stderr[-3000:]
    for key in ('l_uncertainty', 'l_psnr'):
        ref = read_losses(tmp_path / 'experiments' / 'one', key)
        got = read_losses(tmp_path / 'experiments' / 'two', key)
        assert sorted(ref) == sorted(got) == [1, 2, 3]
        for it in ref:
            assert got[it] == pytest.approx(ref[it], rel=1e-4, abs=1e-5), (key, it, got[it], ref[it])
