"""Every MiOIR training recipe (options/train/MiOIR/<net>_{M,S}.yml) against the values of the official option
files (MiOIR options/train/<backbone>/train_<backbone>_M*.yml, the MiO_00k_* stage files and options/gen_train.py):
network type, optimiser, schedule, batch size, and for S the stage order and stage schedules."""
from pathlib import Path

import pytest

from basicsr.engine.sequential import plan_stages
from basicsr.utils.options import parse_options

RECIPES = Path(__file__).resolve().parents[1] / 'options' / 'train' / 'MiOIR'
SBN = ['sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark']   # MiOIR exp 001 (SRResNet), 002 (SwinIR)
RJB = ['rain', 'jpeg', 'blur', 'sr', 'noise', 'haze', 'dark']   # exp 003 (Restormer), 004 (Uformer), 005 (PromptIR)
ADAM = {'type': 'Adam', 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
ADAMW = {**ADAM, 'type': 'AdamW'}

# recipe stem -> (optimiser, eta_min, period (M: 10 of them), batch per GPU, S stage order)
OFFICIAL = {
    'SRResNet_AP': (ADAM, 1e-7, 250_000, 8, SBN),
    'SRResNet_EP': (ADAM, 1e-7, 250_000, 8, SBN),
    'SwinIR': (ADAM, 1e-7, 100_000, 1, SBN),
    'SwinIR_AP': (ADAM, 1e-7, 100_000, 1, SBN),
    'SwinIR_EP': (ADAM, 1e-7, 100_000, 1, SBN),
    'Restormer_AP': (ADAMW, 1e-7, 100_000, 4, RJB),
    'Restormer_EP': (ADAMW, 1e-7, 100_000, 4, RJB),
    'Uformer': ({**ADAMW, 'weight_decay': 0.02}, 1e-6, 100_000, 4, RJB),
    'Uformer_AP': ({**ADAMW, 'weight_decay': 0.02}, 1e-6, 100_000, 4, RJB),
    'Uformer_EP': ({**ADAMW, 'weight_decay': 0.02}, 1e-6, 100_000, 4, RJB),
    'PromptIR': (ADAMW, 1e-7, 100_000, 4, RJB),
}
NETWORK = {'PromptIR': 'PromptIR_MiOIR'}   # MiOIR's own copy of the network its files call PromptIR
FULL_SCALE = sorted(p for p in RECIPES.glob('*_[MS].yml'))


def test_every_full_scale_recipe_is_in_the_table():
    assert {p.stem.rsplit('_', 1)[0] for p in FULL_SCALE} == set(OFFICIAL)
    assert len(FULL_SCALE) == 2 * len(OFFICIAL)   # an M and an S file each


@pytest.mark.parametrize('stem', sorted(OFFICIAL))
def test_mioir_recipe_matches_the_official_files(stem):
    optim, eta_min, period, batch, order = OFFICIAL[stem]
    mixed = parse_options(RECIPES / f'{stem}_M.yml', is_train=True, check_paths=False)
    train = mixed['train']
    assert mixed['network_g']['type'] == NETWORK.get(stem, stem)
    assert train['optim_g'] == optim and train['ema_decay'] == 0.999
    assert train['scheduler']['periods'] == [period] * 10 and train['total_iter'] == 10 * period
    assert train['scheduler']['eta_min'] == eta_min
    assert train['pixel_opt']['type'] == 'L1Loss' and train['pixel_opt']['loss_weight'] == 1.0
    assert mixed['datasets']['train']['batch_size_per_gpu'] == batch
    assert mixed['datasets']['train']['gt_size'] == 128
    assert sorted(t['label'] for t in mixed['datasets']['train']['tasks']) == list(range(7))
    # explicit-prompt networks validate on MiOIR's val set with the task read from the file names
    assert (mixed['datasets']['val'].get('task_from_name') == 'mioir') == stem.endswith('_EP')

    stages = plan_stages(parse_options(RECIPES / f'{stem}_S.yml', is_train=True, check_paths=False))
    assert [s.task for s in stages] == order
    assert [s.tasks for s in stages] == [order[:k] for k in range(1, 8)]
    assert [s.opt['train']['scheduler']['periods'] for s in stages] == [[period]] * 6 + [[period] * 4]
    assert [s.opt['train']['total_iter'] for s in stages] == [period] * 6 + [4 * period]
    for s in stages:
        assert s.opt['network_g'] == mixed['network_g']
        assert s.opt['train']['optim_g'] == optim and s.opt['train']['scheduler']['eta_min'] == eta_min
        assert s.opt['datasets']['train']['batch_size_per_gpu'] == batch
