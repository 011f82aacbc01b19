"""Each training recipe against numbers taken from its official training code.

The reference numbers below were computed outside the project by running the official code (nothing official is
copied here):

- MPRNet / DSRIR learning rates: their ``GradualWarmupScheduler`` (MPRNet's pytorch-gradual-warmup-lr copy =
  warmup-scheduler 0.3) around ``CosineAnnealingLR``, stepped once before training and after every epoch as in
  ``Deblurring/train.py``, ``Denoising/train.py``, ``Deraining/train.py`` and DSRIR ``train.py``, under torch 2.3.1
  (the official torch versions behave alike; torch >= 2.6 changed ``CosineAnnealingLR``'s first call, which makes
  that official pairing overshoot at epoch 4 by up to 1.8e-4 relative).
- PromptIR learning rates: its ``LinearWarmupCosineAnnealingLR`` inside a LightningModule with PromptIR's
  ``lr_scheduler_step``, trained by pytorch-lightning 2.0.1 (PromptIR's version) for 120 epochs; the lr seen by
  ``training_step`` in every epoch.
- Augmentation: 90,000 draws of the official training loaders on an 8 x 8 image (MPRNet ``Denoising/dataset_RGB.py``,
  DSRIR ``utils/dataset_RGB.py``, PromptIR ``utils/image_utils.random_augmentation``), classified into the 8 flips/
  rotations: MPRNet and DSRIR identity 0.2200, others 0.110-0.113 (randint(0, 8), identity twice: 2/9, 1/9);
  PromptIR never the identity, others 0.141-0.146 (randint(1, 7): 1/7).
- Colour: MPRNet ``Deblurring/dataset_RGB.py`` with torchvision's PIL ``adjust_saturation`` (ImageEnhance.Color):
  the saturation changes in 32.9 % of 30,000 samples.
- Trim: PromptIR ``crop_img(base=16)`` on 40 x 37 and 130 x 147 images keeps rows/columns from (4, 2) and (1, 1).
- MixUp: 64,000 lambdas of MPRNet's ``MixUp_AUG`` (Beta(0.6, 0.6), one per sample): mean 0.4992, variance 0.1133,
  P(lambda < 0.1) = 0.1759 (exact Beta(0.6, 0.6): 0.1760; the former recipe's Beta(1.2, 1.2): 0.0766).
"""
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.engine.hooks import ProgressiveHook
from basicsr.engine.schedulers import build_scheduler
from basicsr.utils.options import parse_options

ROOT = Path(__file__).resolve().parents[1]

# official lr of 1-based epoch e (torch 2.3.1 run of the official loops, see the module docstring)
MPRNET_DEBLUR_LR = {1: 6.666666666666667e-05, 2: 0.00013333333333333334, 3: 0.0002, 4: 0.0002,
                    5: 0.00019999994533374728, 1500: 0.00010076075084354605, 2999: 1.0002186649508448e-06,
                    3000: 1.0000546662527293e-06}
MPRNET_DENOISE_LR = {1: 6.666666666666667e-05, 3: 0.0002, 4: 0.0002, 5: 0.00019996413300325312,
                     40: 0.00015702244229975, 80: 5.5447010893221146e-05}
MPRNET_DERAIN_LR = {1: 6.666666666666667e-05, 4: 0.0002, 5: 0.000199991951905463, 125: 0.00010366331777661316,
                    250: 1.0080480945370008e-06}
DSRIR_LR = {1: 6.666666666666667e-05, 2: 0.00013333333333333334, 3: 0.0002, 4: 0.0002, 5: 0.00019999585071824052,
            135: 0.00013689170816458298, 136: 0.00013604447353521276, 238: 4.7123869721781535e-05,
            239: 4.635923201584208e-05, 314: 5.7581883334573335e-06, 315: 5.484502049199886e-06,
            347: 1.0041492817595022e-06}
# PromptIR, 0-based Lightning epoch -> lr seen by training_step (pytorch-lightning 2.0.1 run)
PROMPTIR_LR = {0: 0.0, 1: 0.0, 2: 1.4285714285714287e-05, 8: 0.0001, 15: 0.0002, 16: 0.0002,
               17: 0.00019997292411794618, 61: 0.00015000000000000001, 119: 2.6469099194017143e-05}


def _train(name: str) -> dict:
    return parse_options(ROOT / 'options' / 'train' / name, check_paths=False, root=ROOT)


def _lr_at_iteration(opt: dict, it: int) -> float:
    """Learning rate the model uses at 1-based iteration ``it`` (the schedule stepped ``it - 1`` times)."""
    optim = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=opt['train']['optim_g']['lr'])
    sched = build_scheduler(optim, opt['train']['scheduler'])
    if it > 1:
        optim.step()
        sched.last_epoch = it - 2
        sched.step()
    return optim.param_groups[0]['lr']


def _epoch_first_last(epoch: int, epoch_lengths: list) -> tuple:
    """First and last 1-based iteration of 1-based ``epoch`` given every epoch's official length."""
    start = sum(epoch_lengths[:epoch - 1])
    return start + 1, start + epoch_lengths[epoch - 1]


def _check_schedule(opt: dict, reference: dict, epoch_lengths: list) -> None:
    assert opt['train']['total_iter'] == sum(epoch_lengths)
    for epoch, lr in reference.items():
        for it in _epoch_first_last(epoch, epoch_lengths):
            assert _lr_at_iteration(opt, it) == pytest.approx(lr, rel=1e-9), (epoch, it)


# --------------------------------------------------------------------------------------------- schedules
def test_mprnet_deblurring_schedule_keeps_the_last_partial_batch():
    opt = _train('MPRNet/MPRNet_Deblurring.yml')
    # official DataLoader(batch 16, drop_last=False) over 2,103 GoPro pairs: 132 optimiser steps per epoch
    _check_schedule(opt, MPRNET_DEBLUR_LR, [math.ceil(2103 / 16)] * 3000)
    assert opt['datasets']['train']['drop_last'] is False


def test_mprnet_denoising_and_deraining_schedules():
    _check_schedule(_train('MPRNet/MPRNet_Denoising.yml'), MPRNET_DENOISE_LR, [96000 // 16] * 80)
    _check_schedule(_train('MPRNet/MPRNet_Deraining.yml'), MPRNET_DERAIN_LR, [13712 // 16] * 250)


def test_dsrir_schedule_follows_the_official_stage_loaders():
    opt = _train('AllInOne/DSRIR_allinone.yml')
    # official: four drop_last loaders of 15,144 rows with batches 16/14/12/8, stages ending at epochs 135/238/314/347
    lengths = []
    for end, prev, batch in zip([135, 238, 314, 347], [0, 135, 238, 314], [16, 14, 12, 8]):
        lengths += [15144 // batch] * (end - prev)
    _check_schedule(opt, DSRIR_LR, lengths)


@pytest.mark.parametrize('name, samples', [('PromptIR_3task.yml', 5144 * 9 + 200 * 120 + 72135),
                                           ('PromptIR_5task.yml', 5144 * 9 + 200 * 120 + 72135 + 2103 * 5 + 485 * 20)])
def test_promptir_schedule_matches_lightning(name, samples):
    opt = _train(f'AllInOne/{name}')
    ipe = math.ceil(samples / 4) // 8  # 4 DDP ranks x batch 8, drop_last
    assert opt['train']['total_iter'] == 120 * ipe  # --epochs 120
    for epoch, lr in PROMPTIR_LR.items():
        for it in (epoch * ipe + 1, (epoch + 1) * ipe):
            assert _lr_at_iteration(opt, it) == pytest.approx(lr, rel=1e-9, abs=1e-15), (epoch, it)


# --------------------------------------------------------------------------------------------- batches
def _augmentation_frequencies(dataset_opt: dict, tmp_path: Path, draws: int) -> np.ndarray:
    """How often each of the 8 flips/rotations comes out of a training dataset with the recipe's augmentation
    options (index 0 = identity, then (flip, quarter turns) in the order of ``_dihedral``)."""
    from basicsr.data import build_dataset
    img = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 3 % 256).astype(np.uint8)
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / sub / 'a.png'), img)
    keys = ('use_hflip', 'use_flip', 'use_rot', 'geometric_augs', 'aug_identity_weight')
    opt = {k: dataset_opt[k] for k in keys if k in dataset_opt}
    ds = build_dataset({'name': 'aug', 'type': 'PairedImageDataset', 'phase': 'train', 'gt_size': 8,
                        'dataroot_gt': str(tmp_path / 'gt'), 'dataroot_lq': str(tmp_path / 'lq'),
                        'cache_images': True, **opt})
    ds.set_seed(0)
    ref = ds[(0, 0)]['gt'].new_tensor(img[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)
    elements = [torch.rot90(ref.flip(-1) if f else ref, k, dims=(-2, -1))
                for f, k in [(False, 0), (False, 1), (False, 2), (False, 3), (True, 0), (True, 1), (True, 2),
                             (True, 3)]]
    counts = np.zeros(8)
    for epoch in range(draws):
        gt = ds[(0, epoch)]['gt']
        counts[[i for i, e in enumerate(elements) if torch.equal(e, gt)][0]] += 1
    return counts / draws


@pytest.mark.parametrize('name, identity, other', [
    ('MPRNet/MPRNet_Deblurring.yml', 2 / 9, 1 / 9), ('MPRNet/MPRNet_Denoising.yml', 2 / 9, 1 / 9),
    ('MPRNet/MPRNet_Deraining.yml', 2 / 9, 1 / 9), ('AllInOne/DSRIR_allinone.yml', 2 / 9, 1 / 9),
    ('AllInOne/PromptIR_3task.yml', 0.0, 1 / 7), ('AllInOne/PromptIR_5task.yml', 0.0, 1 / 7)])
def test_augmentation_probabilities_match_the_official_loaders(tmp_path, name, identity, other):
    draws = 4500
    freq = _augmentation_frequencies(_train(name)['datasets']['train'], tmp_path, draws)
    tol = 5 * math.sqrt(2 / 9 * 7 / 9 / draws)  # 5 binomial standard errors (0.031)
    assert freq[0] == pytest.approx(identity, abs=tol)
    assert freq[1:] == pytest.approx([other] * 7, abs=tol)


def test_saturation_jitter_is_pil_color_enhance_bit_for_bit():
    pil = pytest.importorskip('PIL.Image')  # torchvision's adjust_saturation on PIL images is ImageEnhance.Color
    from PIL import ImageEnhance

    from basicsr.data.transforms import adjust_saturation
    rng = np.random.default_rng(0)
    for factor in [0.8, 0.93, 1.0, 1.07, 1.2, 0.0, 1.5, 2.5]:
        img = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
        expected = np.asarray(ImageEnhance.Color(pil.fromarray(img)).enhance(factor))
        np.testing.assert_array_equal(adjust_saturation(img, factor), expected, err_msg=str(factor))


@pytest.mark.parametrize('name, changed', [('MPRNet/MPRNet_Deblurring.yml', 0.329),
                                           ('MPRNet/MPRNet_Deraining.yml', 0.0), ('MPRNet/MPRNet_Denoising.yml', 0.0)])
def test_mprnet_colour_jitter_frequency_matches_the_official_loaders(tmp_path, name, changed):
    """Official Deblurring/dataset_RGB.py (run outside, 30,000 draws on an 8 x 8 image, torchvision's PIL
    adjust_saturation): the colours change in 32.9 % of the samples (randint(0, 2) == 1, factor 1 + U(-0.2, 0.2));
    the deraining and denoising loaders never change them."""
    from basicsr.data import build_dataset
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), img[..., ::-1])
    opt = _train(name)['datasets']['train']
    keys = ('use_hflip', 'use_rot', 'aug_identity_weight', 'saturation_jitter')
    ds = build_dataset({'name': 'sat', 'type': 'PairedImageDataset', 'phase': 'train', 'gt_size': 8,
                        'dataroot_gt': str(tmp_path / 'gt'), 'dataroot_lq': str(tmp_path / 'lq'),
                        'cache_images': True, **{k: opt[k] for k in keys if k in opt}})
    ds.set_seed(0)
    ref = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)

    def canonical(t):  # flips and rotations do not count as a colour change
        views = [torch.rot90(t.flip(-1) if f else t, k, dims=(-2, -1)) for f in (0, 1) for k in range(4)]
        return min(views, key=lambda v: v.flatten().tolist())
    base, draws = canonical(ref), 3000
    hits = 0
    for epoch in range(draws):
        sample = ds[(0, epoch)]
        hits += not torch.equal(canonical(sample['gt']), base)
        assert torch.equal(sample['gt'], sample['lq'])  # one factor for input and target
    tol = 5 * math.sqrt(1 / 3 * 2 / 3 / draws)  # 5 binomial standard errors (0.043)
    assert hits / draws == pytest.approx(changed, abs=tol)


@pytest.mark.parametrize('h, w, top, left', [(40, 37, 4, 2), (130, 147, 1, 1)])
def test_promptir_crops_come_from_the_centre_trimmed_image(tmp_path, h, w, top, left):
    """PromptIR utils/image_utils.crop_img(base=16), run outside on H x W images, keeps rows top.. and columns
    left.. of the largest multiple of 16: (4, 2) for 40 x 37, (1, 1) for 130 x 147."""
    from basicsr.data import build_dataset
    opt = _train('AllInOne/PromptIR_3task.yml')['datasets']['train']
    assert opt['trim_to_multiple'] == 16
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    img = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)  # pixel = its own position
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), img[..., ::-1])
    size = 32 if h == 40 else 128
    ds = build_dataset({'name': 'trim', 'type': 'PairedImageDataset', 'phase': 'train', 'gt_size': size,
                        'dataroot_gt': str(tmp_path / 'gt'), 'dataroot_lq': str(tmp_path / 'lq'),
                        'trim_to_multiple': opt['trim_to_multiple']})
    ds.set_seed(0)
    starts = set()
    for epoch in range(200):
        gt = (ds[(0, epoch)]['gt'] * 255).round().long()
        starts.add((int(gt[0, 0, 0]), int(gt[1, 0, 0])))
    trimmed_h, trimmed_w = h - h % 16, w - w % 16
    assert {r for r, _ in starts} == set(range(top, top + trimmed_h - size + 1))
    assert {c for _, c in starts} == set(range(left, left + trimmed_w - size + 1))


def test_per_sample_progressive_crop_gives_every_sample_its_own_offset():
    hook = ProgressiveHook([16], [8], [10], crop='per_sample', seed=0)
    plane = torch.arange(24 * 24, dtype=torch.float32).view(1, 1, 24, 24)
    batch = {'gt': plane.expand(16, 3, 24, 24).clone(), 'lq': plane.expand(16, 3, 24, 24).clone()}

    class T:
        iter = 1
    shared = 0
    for it in range(1, 21):
        T.iter = it
        out = hook.before_iter(T, [batch])[0]
        assert torch.equal(out['gt'], out['lq'])  # input and target cut alike
        shared += len({int(g[0, 0, 0]) for g in out['gt']}) == 1
    assert shared == 0  # 16 crops sharing one of 17 x 17 offsets: never with independent offsets
    out = ProgressiveHook([16], [8], [10], crop='batch', seed=0).before_iter(T, [batch])[0]
    assert len({int(g[0, 0, 0]) for g in out['gt']}) == 1


def test_dsrir_loads_every_stage_at_its_batch_and_patch_size_with_independent_uniform_crops(tmp_path):
    """DSRIR train.py switches between four DataLoaders (shuffle, drop_last), each cropping every sample
    independently at the stage's patch size, uniformly over the whole (reflect-padded to that size) image, in
    batches of the stage's size. The recipe's 'loader' mode does the same through one sampler: here 5 images,
    stage 1 = batches of 2 at 8 px (2 per epoch, every image at most once), stage 2 = batches of 1 at 16 px.
    Stage-1 offsets cover the 24 px image uniformly, where cutting 8 px from inside a loaded 16 px patch would
    make offset 0 nine times rarer (1/81 instead of 1/17)."""
    from basicsr.data import build_dataset
    from basicsr.engine.trainer import TrainStream
    recipe = _train('AllInOne/DSRIR_allinone.yml')['datasets']['train']
    assert recipe['progressive_crop'] == 'loader'
    rows, cols = np.meshgrid(np.arange(24), np.arange(24), indexing='ij')
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir()
        for i in range(5):
            img = np.stack([rows, cols, np.full_like(rows, i)], axis=-1).astype(np.uint8)  # position and image id
            cv2.imwrite(str(tmp_path / sub / f'{i}.png'), img[..., ::-1])
    opt = {'name': 'stages', 'type': 'PairedImageDataset', 'phase': 'train', 'gt_size': 16, 'cache_images': True,
           'dataroot_gt': str(tmp_path / 'gt'), 'dataroot_lq': str(tmp_path / 'lq'), 'batch_size_per_gpu': 2,
           'num_worker_per_gpu': 0, 'progressive_crop': recipe['progressive_crop']}
    ds = build_dataset(opt)

    def stream():
        s = TrainStream(ds, opt, torch.device('cpu'), seed=0)
        s.load_stages([2, 1], [8, 16], [300, 10])  # 150 epochs of 2 batches, then 2 epochs of 5
        return s
    train = stream()
    shapes, tops, epoch_ids = [], [], {}
    for _ in range(310):
        epoch = train.epoch
        batch = train.next()
        train.sampler.record(batch['gt'].size(0))
        shapes.append(tuple(batch['gt'].shape[::3]))
        pix = (batch['gt'][:, :, 0, 0] * 255).round().long()
        epoch_ids.setdefault(train.epoch, []).extend(pix[:, 2].tolist())
        if shapes[-1] == (2, 8):
            tops += pix[:, 0].tolist()
            assert torch.equal(batch['gt'], batch['lq'])
        assert epoch <= train.epoch
    assert shapes == [(2, 8)] * 300 + [(1, 16)] * 10
    assert all(len(ids) == len(set(ids)) for ids in epoch_ids.values())  # no image twice in an epoch
    counts = np.bincount(tops, minlength=17)
    assert counts.size == 17 and counts.min() > 0  # every offset of the whole image
    assert counts[0] > 600 / 17 / 2  # about 600 / 17 = 35 at the border (nested crops: 600 / 81 = 7)
    state = train.state_dict()
    resumed = stream()
    resumed.load_state_dict(state)
    assert tuple(resumed.next()['gt'].shape[::3]) == (1, 16)


def test_dsrir_recipe_stages_are_the_official_epochs():
    """DSRIR train.sh: stages end at epochs 135/238/314/347; drop_last loaders of the 15,144 CSV rows with batches
    16/14/12/8 give 946/1081/1262/1893 iterations per epoch."""
    from torch.utils.data import Dataset

    from basicsr.engine.trainer import TrainStream

    class Rows(Dataset):
        def __len__(self):
            return 15144

        def __getitem__(self, key):
            return {'lq': torch.zeros(1), 'gt': torch.zeros(1)}
    opt = _train('AllInOne/DSRIR_allinone.yml')['datasets']['train']
    stream = TrainStream(Rows(), dict(opt, num_worker_per_gpu=0), torch.device('cpu'), seed=0)
    stream.load_stages(opt['mini_batch_sizes'], opt['gt_sizes'], opt['iters'])
    for first, last, batch, per_epoch, size in [(0, 134, 16, 946, 128), (135, 237, 14, 1081, 160),
                                                (238, 313, 12, 1262, 192), (314, 346, 8, 1893, 256)]:
        for epoch in (first, last):
            stream.sampler.set_epoch(epoch)
            assert (stream.batch_of_epoch(epoch), stream.iters_per_epoch) == (batch, per_epoch), epoch
            assert stream.sampler.patch_size_of(epoch, 0) == size


@pytest.mark.parametrize('name', ['AllInOne/DSRIR_allinone.yml', 'MPRNet/MPRNet_Deblurring.yml'])
def test_small_images_are_padded_like_torchvision_reflect(tmp_path, name):
    """DSRIR pads tensors with torchvision's pad(padding_mode='reflect') (edge pixel not repeated), MPRNet pads
    PIL images the same way (np.pad 'reflect'): a 6 x 5 image and an 8 px patch give exactly that padding."""
    from basicsr.data import build_dataset
    recipe = _train(name)['datasets']['train']
    img = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), img[..., ::-1])
    ds = build_dataset({'name': 'pad', 'type': 'PairedImageDataset', 'phase': 'train', 'gt_size': 8,
                        'dataroot_gt': str(tmp_path / 'gt'), 'dataroot_lq': str(tmp_path / 'lq'),
                        'pad_to_gt_size': recipe['pad_to_gt_size'], 'pad_mode': recipe['pad_mode']})
    ds.set_seed(0)
    expected = torch.nn.functional.pad(torch.from_numpy(img).permute(2, 0, 1)[None].float(), (0, 3, 0, 2),
                                       mode='reflect')[0] / 255
    torch.testing.assert_close(ds[(0, 0)]['gt'], expected, rtol=0, atol=1e-6)


def test_mprnet_deblurring_epoch_ends_with_the_partial_batch():
    from torch.utils.data import Dataset

    from basicsr.engine.trainer import TrainStream

    class Rows(Dataset):
        def __len__(self):
            return 2103

        def __getitem__(self, key):
            return {'lq': torch.zeros(1), 'gt': torch.zeros(1)}

    opt = dict(_train('MPRNet/MPRNet_Deblurring.yml')['datasets']['train'], num_worker_per_gpu=0)
    stream = TrainStream(Rows(), opt, torch.device('cpu'), seed=0)
    assert stream.iters_per_epoch == 132
    sizes = []
    for _ in range(133):
        batch = stream.next()
        stream.sampler.record(batch['lq'].size(0))
        sizes.append(batch['lq'].size(0))
    assert sizes[:131] == [16] * 131 and sizes[131] == 2103 - 131 * 16 and sizes[132] == 16


# --------------------------------------------------------------------------------------------- MixUp
def _denoising_model(tmp_path: Path):
    from engine_helpers import tiny_options

    from basicsr.models import build_model
    recipe = _train('MPRNet/MPRNet_Denoising.yml')['train']
    opt = tiny_options(tmp_path, name='mix', total_iter=1, extra={'train.mixing_augs': recipe['mixing_augs'],
                                                                  'train.ema_decay': 0})
    return build_model(parse_options(opt, is_train=True)), recipe


def test_mprnet_denoising_mixup_draws_one_beta_0_6_lambda_per_sample(tmp_path):
    model, _ = _denoising_model(tmp_path)
    n = 16
    onehot = torch.eye(n).view(n, n, 1, 1)  # sample i is e_i: mixed[i, i] = lambda_i unless i is its own partner
    lams, per_batch_distinct = [], []
    for _ in range(400):
        gt, lq = model._mixup(onehot, onehot.clone())
        assert torch.equal(gt, lq)
        own = [i for i in range(n) if gt[i, i, 0, 0] < 1]
        lam = [float(gt[i, i, 0, 0]) for i in own]
        lams += lam
        per_batch_distinct.append(len(set(lam)))
    lam = np.array(lams)
    assert min(per_batch_distinct) > 1  # not one lambda for the whole batch
    se = math.sqrt(0.176 * 0.824 / lam.size)
    assert np.mean(lam < 0.1) == pytest.approx(0.1760, abs=5 * se)  # Beta(1.2, 1.2) would give 0.0766
    assert lam.var() == pytest.approx(0.1136, abs=0.01)  # Beta(1.2, 1.2): 0.0735


def test_mprnet_denoising_mixup_starts_after_epoch_5_and_the_loss_clamps(tmp_path):
    model, recipe = _denoising_model(tmp_path)
    seen = []
    model.net_g.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    model.gt, model.lq, model.conditions = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16), {}
    for it in (30000, 30001):  # official: `if epoch > 5` with 6,000 iterations per epoch
        model.current_iter = it
        model.compute_losses()
    assert torch.equal(seen[0], model.lq) and not torch.equal(seen[1], model.lq)

    from basicsr.models.loss_terms import LossTerm
    term = LossTerm('char_opt', recipe['char_opt'])
    pred, gt = torch.linspace(-0.5, 1.5, 48).view(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    # Denoising/train.py: criterion(torch.clamp(restored[j], 0, 1), target), Charbonnier mean(sqrt(d^2 + 1e-6))
    expected = torch.sqrt((pred.clamp(0, 1) - gt) ** 2 + 1e-6).mean()
    assert float(term(pred, gt)) == pytest.approx(float(expected), rel=1e-6)


# --------------------------------------------------------------------------------------------- losses
def test_loss_weights_match_the_official_training_scripts():
    # MPRNet Deblurring/Deraining train.py: loss_char + 0.05 * loss_edge, both summed over the 3 stages (eps 1e-3)
    for name in ('Deblurring', 'Deraining'):
        train = _train(f'MPRNet/MPRNet_{name}.yml')['train']
        assert train['char_opt'] == {'type': 'CharbonnierLoss', 'eps': 1e-3, 'loss_weight': 1.0}
        assert train['edge_opt'] == {'type': 'EdgeLoss', 'eps': 1e-3, 'loss_weight': 0.05}
    # Denoising/train.py: Charbonnier of the clamped stages only
    train = _train('MPRNet/MPRNet_Denoising.yml')['train']
    assert train['edge_opt'] is None and train['char_opt']['clamp'] == [0, 1]
    assert train['optim_g']['weight_decay'] == 1e-8
    # DSRIR train.py: (UL3 + UL2 + UL1) / 3 + PSNR3 + 0.5 * (PSNR2 + PSNR1) / 2 + 0.2 * PoCL
    train = _train('AllInOne/DSRIR_allinone.yml')['train']
    assert train['uncertainty_opt']['stage_weights'] == pytest.approx([1 / 3] * 3)
    assert [o['pred'] for o in train['uncertainty_opt']['outputs']] == ['stage:3', 'stage:2', 'stage:1']
    assert train['psnr_opt']['stage_weights'] == [1.0, 0.25, 0.25]
    assert train['psnr_opt']['outputs'] == ['stage:3', 'stage:2', 'stage:1']
    assert train['contrast_opt']['loss_weight'] == 0.2
    assert train['optim_g'] == {'type': 'AdamW', 'lr': 2e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]}
    # PromptIR train.py: nn.L1Loss, AdamW(lr 2e-4) with torch defaults
    for name in ('PromptIR_3task.yml', 'PromptIR_5task.yml'):
        train = _train(f'AllInOne/{name}')['train']
        assert train['pixel_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0}
        assert train['optim_g'] == {'type': 'AdamW', 'lr': 2e-4, 'weight_decay': 0.01, 'betas': [0.9, 0.999]}


def test_stage_loader_trains_and_resumes_exactly_across_a_stage_switch(tmp_path):
    """progressive_crop: loader through the trainer: 6 iterations of 2 x 16 px then 12 of 1 x 24 px (12 samples
    per epoch); a run stopped at iteration 9 (mid-epoch, second stage) and resumed logs the straight run's losses."""
    from engine_helpers import read_losses, tiny_options

    from basicsr.engine.trainer import Trainer
    extra = {'datasets.train.progressive_crop': 'loader', 'datasets.train.mini_batch_sizes': [2, 1],
             'datasets.train.gt_sizes': [16, 24], 'datasets.train.iters': [6, 12], 'datasets.train.gt_size': 24,
             'train.ema_decay': 0}
    straight = tiny_options(tmp_path / 'a', name='straight', total_iter=18, ckpt_freq=3, extra=extra)
    trainer = Trainer(parse_options(straight, is_train=True))
    assert [trainer.stream.batch_of_epoch(e) for e in (0, 1)] == [2, 1]  # one epoch per stage
    trainer.train()
    split = tiny_options(tmp_path / 'b', name='split', total_iter=18, ckpt_freq=3, extra=extra)
    Trainer(parse_options(split, ['train.total_iter=9'], is_train=True)).train()
    Trainer(parse_options(split, is_train=True)).train()
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'straight')
    assert sorted(ref) == list(range(1, 19))
    assert read_losses(tmp_path / 'b' / 'experiments' / 'split') == ref
