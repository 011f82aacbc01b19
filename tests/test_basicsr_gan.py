"""GAN training with BasicSR's pieces: discriminators and GANLoss against values from BasicSR's own definitions
(computed outside the project with the same seeds and inputs), SRGANModel/ESRGANModel steps, and an exact
resume of generator + discriminator through the engine (perceptual loss on a random VGG19 in torchvision's
layout; nothing is downloaded)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from engine_helpers import ROOT, read_losses

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator
from basicsr.losses import build_loss
from basicsr.losses.vgg import VGG19Features
from basicsr.utils.options import parse_options
from basicsr.utils.registry import ARCH_REGISTRY

TRAIN_OPT = Path(__file__).resolve().parent / 'plugin_method' / 'options' / 'train_tiny.yml'


def test_discriminators_match_basicsr_seeded_outputs():
    torch.manual_seed(0)
    vgg = VGGStyleDiscriminator(3, 4)
    assert len(vgg.state_dict()) == 60 and tuple(vgg.state_dict()['conv0_1.weight'].shape) == (4, 4, 4, 4)
    x = torch.linspace(0, 1, 2 * 3 * 128 * 128).view(2, 3, 128, 128)
    np.testing.assert_allclose(vgg(x).flatten().tolist(), [-0.06657161563634872, -0.023409605026245117], atol=1e-6)
    torch.manual_seed(0)
    unet = UNetDiscriminatorSN(3, 4)
    y = torch.linspace(0, 1, 3 * 16 * 16).view(1, 3, 16, 16)
    first = unet(y)  # spectral norm updates its power-iteration vectors in training mode, as BasicSR's
    assert first.shape == (1, 1, 16, 16) and len(unet.state_dict()) == 28
    np.testing.assert_allclose(first.flatten()[:5].tolist(), [-0.1586429, -0.141257, -0.1300589, -0.1443487,
                                                              -0.1476682], atol=1e-6)
    assert float(unet(y).detach().sum()) == pytest.approx(-41.18125915527344, abs=1e-4)
    assert ARCH_REGISTRY.get('UNetDiscriminatorSN') is UNetDiscriminatorSN  # BasicSR's '_basicsr' fallback
    with pytest.raises(ValueError, match='128x128'):
        vgg(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize('gan_type, expected', [
    ('vanilla', [0.6972406, 0.3486203, 0.9972406, 0.4986203]),
    ('lsgan', [1.785, 0.8925, 1.3850001, 0.6925001]),
    ('wgan', [-0.3, -0.15, 0.3, 0.15]),
    ('wgan_softplus', [0.6972406, 0.3486203, 0.9972407, 0.4986203]),
    ('hinge', [0.95, -0.15, 1.35, -0.15])])
def test_gan_loss_matches_basicsr(gan_type, expected):
    """(real, disc), (real, gen), (fake, disc), (fake, gen); loss_weight 0.5 scales the generator's only."""
    loss = build_loss({'type': 'GANLoss', 'gan_type': gan_type, 'loss_weight': 0.5})
    pred = torch.tensor([[0.3, -1.2], [2.0, 0.1]])
    got = [float(loss(pred, real, is_disc=disc)) for real in (True, False) for disc in (True, False)]
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.fixture(scope='module')
def vgg_path(tmp_path_factory) -> Path:
    vgg = VGG19Features(load_weights=False)
    torch.manual_seed(0)
    for p in vgg.parameters():
        p.data.normal_(0, 0.05)
    path = tmp_path_factory.mktemp('vgg') / 'vgg19-random.pth'
    torch.save(vgg.state_dict(), path)
    return path


def gan_options(root: Path, vgg_path: Path, model_type: str = 'SRGANModel', total_iter: int = 4) -> Path:
    """The plug-in method's option file turned into a GAN run: UNet discriminator, perceptual + GAN losses."""
    rng = np.random.default_rng(1)
    for sub in ('train', 'val'):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            smooth = cv2.resize(rng.random((6, 6, 3)).astype(np.float32), (32, 32), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(root / sub / f'{i}.png'), (np.clip(smooth, 0, 1) * 255).round().astype(np.uint8))
    opt = yaml.safe_load(TRAIN_OPT.read_text().replace('!!float ', ''))
    del opt['pad_mode']
    opt.update(name='gan', model_type=model_type, imports=['plugin_method.archs', 'plugin_method.data'],
               network_d={'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4})
    opt['datasets']['train'].update(dataroot_gt=str(root / 'train'), gt_size=16)
    opt['datasets']['val']['dataroot_gt'] = str(root / 'val')
    opt['train'].update(total_iter=total_iter, net_d_iters=1, net_d_init_iters=0,
                        optim_d={'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                        perceptual_opt={'type': 'PerceptualLoss', 'layer_weights': {'relu1_1': 1.0, 'conv2_2': 0.5},
                                        'perceptual_weight': 1.0, 'style_weight': 0.1,
                                        'vgg_weights_path': str(vgg_path)},
                        gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1})
    opt['val']['val_freq'] = 100
    opt['logger'].update(save_checkpoint_freq=2, use_tb_logger=False)
    path = root / 'gan.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


@pytest.mark.slow
def test_srgan_resume_is_exact_for_generator_and_discriminator(tmp_path, vgg_path):
    from basicsr.engine.trainer import Trainer
    straight = Trainer(parse_options(gan_options(tmp_path / 'a', vgg_path), root=tmp_path / 'a'))
    straight.train()
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'gan', 'l_d_fake')
    assert sorted(ref) == [1, 2, 3, 4]
    assert set(straight.losses) == {'l_g_pix', 'l_g_percep', 'l_g_style', 'l_g_gan', 'l_d_real', 'out_d_real',
                                    'l_d_fake', 'out_d_fake'}
    opt_b = gan_options(tmp_path / 'b', vgg_path)
    Trainer(parse_options(opt_b, ['train.total_iter=2'], root=tmp_path / 'b')).train()
    resumed = Trainer(parse_options(opt_b, root=tmp_path / 'b'))
    assert resumed.iter == 2
    resumed.train()
    assert read_losses(tmp_path / 'b' / 'experiments' / 'gan', 'l_d_fake') == ref
    for name in ('net_g', 'net_d', 'net_g_ema'):
        for a, b in zip(getattr(straight.model, name).state_dict().values(),
                        getattr(resumed.model, name).state_dict().values()):
            assert torch.equal(a, b), name
    models = tmp_path / 'a' / 'experiments' / 'gan' / 'models'
    assert (models / 'net_d_4.pth').is_file() and (models / 'net_g_4.pth').is_file()  # SRGANModel.save
    assert set(torch.load(models / 'net_d_4.pth', weights_only=True)) == {'params'}


def test_esrgan_step_and_net_d_init_iters(tmp_path, vgg_path):
    from basicsr.models import build_model
    opt = parse_options(gan_options(tmp_path, vgg_path, 'ESRGANModel'), root=tmp_path)
    opt['train']['net_d_init_iters'] = 1
    model = build_model(opt)
    batch = {'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 16, 16)}
    g_before = [p.detach().clone() for p in model.net_g.parameters()]
    model.train_step([batch], 1)  # discriminator only during the first net_d_init_iters iterations
    assert all(torch.equal(a, b) for a, b in zip(g_before, model.net_g.parameters()))
    assert set(model.log_dict) == {'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
    model.train_step([batch], 2)
    assert {'l_g_gan', 'l_g_percep'} <= set(model.log_dict)
    assert not all(torch.equal(a, b) for a, b in zip(g_before, model.net_g.parameters()))
    assert all(p.requires_grad for p in model.net_d.parameters())


@pytest.mark.parametrize('scale, shape, first, total', [
    (4, (1, 3, 32, 32), [-0.048141852021217346, -0.040614958852529526, -0.0461110845208168, -0.04538809135556221],
     31.220180785283446),
    (2, (1, 3, 16, 16), [0.07070628553628922, 0.08258993178606033, 0.08468537777662277, 0.08011247217655182],
     17.037498363642953)])
def test_rrdbnet_matches_basicsr_seeded_outputs(scale, shape, first, total):
    """Same parameter names (72 entries), initialisation order and forward as BasicSR's RRDBNet."""
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('RRDBNet')(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4)
    assert len(net.state_dict()) == 72 and 'body.1.rdb3.conv5.weight' in net.state_dict()
    with torch.no_grad():
        out = net(torch.linspace(0, 1, 3 * 8 * 8).view(1, 3, 8, 8))
    assert out.shape == shape
    np.testing.assert_allclose(out.flatten()[:4].tolist(), first, atol=1e-6)
    assert float(out.double().sum()) == pytest.approx(total, abs=1e-4)


def test_basicsr_path_helpers(tmp_path):
    from basicsr.data.data_util import (paired_paths_from_folder, paired_paths_from_meta_info_file, paths_from_folder,
                                        paths_from_lmdb)
    for sub, names in (('gt', ['a.png', 'b.png']), ('lq', ['ax2.png', 'bx2.png'])):
        (tmp_path / sub).mkdir()
        for n in names:
            (tmp_path / sub / n).write_bytes(b'')
    pairs = paired_paths_from_folder([str(tmp_path / 'lq'), str(tmp_path / 'gt')], ['lq', 'gt'], '{}x2')
    assert pairs == [{'lq_path': str(tmp_path / 'lq' / f'{n}x2.png'), 'gt_path': str(tmp_path / 'gt' / f'{n}.png')}
                     for n in 'ab']
    (tmp_path / 'meta.txt').write_text('b.png (4,4,3)\n')
    assert paired_paths_from_meta_info_file([str(tmp_path / 'lq'), str(tmp_path / 'gt')], ['lq', 'gt'],
                                            str(tmp_path / 'meta.txt'), '{}x2') == pairs[1:]
    assert sorted(paths_from_folder(str(tmp_path / 'gt'))) == [str(tmp_path / 'gt' / n) for n in ('a.png', 'b.png')]
    db = tmp_path / 'x.lmdb'
    db.mkdir()
    (db / 'meta_info.txt').write_text('img1.png (4,4,3) 1\nimg2.png (4,4,3) 1\n')
    assert paths_from_lmdb(str(db)) == ['img1', 'img2']
    with pytest.raises(ValueError, match='is missing'):
        paired_paths_from_folder([str(tmp_path / 'lq'), str(tmp_path / 'gt')], ['lq', 'gt'], '{}x3')


def realesrgan_options(root: Path, total_iter: int = 4) -> Path:
    """Real-ESRGAN training at toy size: RealESRGANDataset kernels, second-order degradation, pool of 4."""
    rng = np.random.default_rng(2)
    (root / 'hr').mkdir(parents=True, exist_ok=True)
    for i in range(3):
        smooth = cv2.resize(rng.random((8, 8, 3)).astype(np.float32), (48, 56), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / 'hr' / f'{i}.png'), (np.clip(smooth, 0, 1) * 255).round().astype(np.uint8))
    kernels = {'blur_kernel_size': 21, 'kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso',
                                                       'plateau_iso', 'plateau_aniso'],
               'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'sinc_prob': 0.1, 'blur_sigma': [0.2, 3],
               'betag_range': [0.5, 4], 'betap_range': [1, 2]}
    opt = {
        'name': 'real', 'model_type': 'RealESRGANModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'l1_gt_usm': True, 'percep_gt_usm': True, 'gan_gt_usm': False,
        'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5,
        'noise_range': [1, 30], 'poisson_scale_range': [0.05, 3], 'gray_noise_prob': 0.4, 'jpeg_range': [30, 95],
        'second_blur_prob': 0.8, 'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2],
        'gaussian_noise_prob2': 0.5, 'noise_range2': [1, 25], 'poisson_scale_range2': [0.05, 2.5],
        'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95], 'gt_size': 32, 'queue_size': 4,
        'datasets': {'train': {'name': 'hr', 'type': 'RealESRGANDataset', 'dataroot_gt': str(root / 'hr'),
                               'io_backend': {'type': 'disk'}, 'use_hflip': True, 'use_rot': False,
                               'crop_pad_size': 48, 'final_sinc_prob': 0.8, **kernels,
                               **{f'{k}2': v for k, v in kernels.items()}, 'num_worker_per_gpu': 0,
                               'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 2}},
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'num_grow_ch': 4},
        'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True},
        'train': {'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'optim_d': {'type': 'Adam', 'lr': 1e-4},
                  'total_iter': total_iter, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    path = root / 'real.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def test_realesrgan_model_synthesises_pairs_and_resumes_exactly(tmp_path):
    from basicsr.engine.trainer import Trainer
    straight = Trainer(parse_options(realesrgan_options(tmp_path / 'a', total_iter=4), root=tmp_path / 'a'))
    straight.train()
    model = straight.model
    assert model.lq.shape == (2, 3, 8, 8) and model.gt.shape == (2, 3, 32, 32)
    assert torch.equal(model.lq, (model.lq * 255).round() / 255)  # 8-bit LQ, as BasicSR rounds it
    assert model.queue_ptr == 4  # the pool filled up after two batches and is swapping since
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'real', 'l_g_pix')
    opt_b = realesrgan_options(tmp_path / 'b', total_iter=4)
    Trainer(parse_options(opt_b, ['train.total_iter=3'], root=tmp_path / 'b')).train()
    resumed = Trainer(parse_options(opt_b, root=tmp_path / 'b'))
    assert resumed.iter == 3  # the end-of-run checkpoint of the first session
    resumed.train()
    assert read_losses(tmp_path / 'b' / 'experiments' / 'real', 'l_g_pix') == ref
    assert torch.equal(resumed.model.queue_lr, model.queue_lr)
    for a, b in zip(straight.model.net_d.state_dict().values(), resumed.model.net_d.state_dict().values()):
        assert torch.equal(a, b)


def test_realesrgan_samples_script_writes_side_by_side_images(tmp_path):
    import importlib.util
    from basicsr.engine.trainer import Trainer
    opt_path = realesrgan_options(tmp_path, total_iter=2)
    Trainer(parse_options(opt_path, root=tmp_path)).train()
    spec = importlib.util.spec_from_file_location('realesrgan_samples', ROOT / 'scripts' / 'realesrgan_samples.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    res = script.main(['-opt', str(opt_path), '--num', '2', '--size', '48', '--root', str(tmp_path)])
    assert res['iteration'] == 2 and 0 < res['l1_output'] < 1 and 0 < res['l1_bicubic'] < 1
    img = cv2.imread(str(Path(res['samples']) / '1.png'))
    assert img.shape == (48, 3 * 48 + 2 * 4, 3)  # input | output | gt with 4-pixel gaps


def test_vgg_feature_extractor_uses_the_local_vgg19(vgg_path, tmp_path):
    from basicsr.archs.vgg_arch import VGGFeatureExtractor
    ext = VGGFeatureExtractor(['conv2_2', 'relu1_1'], range_norm=True, vgg_weights_path=str(vgg_path))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    feats = ext(x)
    assert list(feats) == ['conv2_2', 'relu1_1'] and feats['conv2_2'].shape == (1, 128, 8, 8)
    ref = VGG19Features(str(vgg_path))((x + 1) / 2, ['conv2_2'])['conv2_2']
    assert torch.equal(feats['conv2_2'], ref)
    assert not any(p.requires_grad for p in ext.parameters())
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        VGGFeatureExtractor(['relu1_1'], vgg_weights_path=str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='vgg19'):
        VGGFeatureExtractor(['relu1_1'], vgg_type='vgg16', vgg_weights_path=str(vgg_path))


@pytest.mark.parametrize('act, first, total, n_keys', [
    ('prelu', [0.04889364540576935, -0.010137990117073059, 0.038698710501194, -0.013780863955616951],
     221.65487969107926, 11),
    ('leakyrelu', [0.04806302487850189, -0.008081292733550072, 0.03628935664892197, -0.013033086434006691],
     221.93579774908721, 8)])
def test_srvgg_compact_matches_basicsr_seeded_outputs(act, first, total, n_keys):
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('SRVGGNetCompact')(3, 3, num_feat=8, num_conv=2, upscale=2, act_type=act)
    assert len(net.state_dict()) == n_keys
    with torch.no_grad():
        out = net(torch.linspace(0, 1, 3 * 6 * 6).view(1, 3, 6, 6))
    assert out.shape == (1, 3, 12, 12)
    np.testing.assert_allclose(out.flatten()[:4].tolist(), first, atol=1e-6)
    assert float(out.double().sum()) == pytest.approx(total, abs=1e-4)


@pytest.mark.slow
def test_losses_csv_keeps_columns_when_generator_losses_start_late(tmp_path, vgg_path):
    """With net_d_init_iters the generator's losses appear from a later iteration: losses.csv gains their
    columns then, and earlier rows have empty cells there instead of shifted values."""
    import csv
    from basicsr.engine.trainer import Trainer
    opt = parse_options(gan_options(tmp_path, vgg_path, total_iter=3), ['train.net_d_init_iters=1'], root=tmp_path)
    Trainer(opt).train()
    with open(tmp_path / 'experiments' / 'gan' / 'log' / 'losses.csv') as fh:
        rows = list(csv.DictReader(fh))
    assert [r['iter'] for r in rows] == ['1', '2', '3']
    assert rows[0]['l_g_gan'] == '' and float(rows[1]['l_g_gan']) > 0
    assert all(float(r['l_d_real']) > 0 for r in rows)  # the discriminator's column never moves
