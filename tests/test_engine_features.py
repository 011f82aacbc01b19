"""Model features: gradient accumulation, bf16 autocast, EMA, progressive patches, mixup, loss terms."""
import pytest
import torch

from engine_helpers import read_losses, tiny_options

from basicsr.archs.outputs import NamedOutputs
from basicsr.engine.hooks import ProgressiveHook
from basicsr.models.loss_terms import LossTerm
from basicsr.utils.options import parse_options


def run(opt_path, overrides=()):
    from basicsr.engine.trainer import Trainer
    trainer = Trainer(parse_options(opt_path, list(overrides), is_train=True))
    trainer.train()
    return trainer


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    full = tiny_options(tmp_path / 'a', name='full', total_iter=3, batch=4, extra={'train.ema_decay': 0})
    run(full)
    half = tiny_options(tmp_path / 'b', name='half', total_iter=3, batch=2,
                        extra={'train.ema_decay': 0, 'train.accumulate_grad': 2})
    run(half)
    ref, got = read_losses(tmp_path / 'a' / 'experiments' / 'full'), read_losses(tmp_path / 'b' / 'experiments' / 'half')
    for it in ref:
        assert got[it] == pytest.approx(ref[it], abs=1e-6)


def test_bf16_autocast_trains_with_finite_losses(tmp_path):
    opt = tiny_options(tmp_path, name='bf16', total_iter=2, extra={'train.amp': 'bf16'})
    trainer = run(opt)
    assert trainer.model.amp_dtype is torch.bfloat16
    assert all(torch.isfinite(torch.tensor(v)) for v in read_losses(tmp_path / 'experiments' / 'bf16').values())


def test_ema_is_a_moving_average_and_saved(tmp_path):
    opt = tiny_options(tmp_path, name='ema', total_iter=2, extra={'train.ema_decay': 0.5})
    trainer = run(opt)
    state = trainer.model.network_state()
    assert set(state) == {'params', 'params_ema'}
    diffs = [float((state['params'][k] - state['params_ema'][k]).abs().max()) for k in state['params']
             if state['params'][k].is_floating_point()]
    assert max(diffs) > 0  # the EMA lags behind the trained weights


def test_progressive_hook_switches_patch_and_batch_at_boundaries():
    hook = ProgressiveHook(mini_batch_sizes=[4, 2], gt_sizes=[32, 16], iters=[2, 3], seed=0)

    class T:
        iter = 1
    batch = {'gt': torch.rand(4, 3, 32, 32), 'lq': torch.rand(4, 3, 32, 32)}
    out = hook.before_iter(T, [batch])[0]
    assert out['gt'].shape == (4, 3, 32, 32)
    T.iter = 3
    out = hook.before_iter(T, [batch])[0]
    assert out['gt'].shape == (2, 3, 16, 16) and out['lq'].shape == (2, 3, 16, 16)
    again = hook.before_iter(T, [batch])[0]
    assert torch.equal(out['gt'], again['gt'])  # seeded by the iteration: a resumed run crops the same way
    with pytest.raises(ValueError, match='same length'):
        ProgressiveHook([4], [32, 16], [2, 3])


def test_restormer_mixup_is_reproducible(tmp_path):
    opt = tiny_options(tmp_path, name='mix', total_iter=1,
                       extra={'train.mixing_augs': {'mixup': True, 'mixup_beta': 1.2, 'use_identity': True}})
    from basicsr.models import build_model
    parsed = parse_options(opt, is_train=True)
    gt, lq = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    a, b = build_model(parsed), build_model(parsed)
    outs_a = [a._mixup(gt, lq) for _ in range(6)]
    outs_b = [b._mixup(gt, lq) for _ in range(6)]
    assert all(torch.equal(x[0], y[0]) for x, y in zip(outs_a, outs_b))
    assert any(not torch.equal(x[0], gt) for x in outs_a)  # some draws actually mix


def test_loss_terms_address_named_outputs():
    out = NamedOutputs({'stage:2': torch.ones(1, 3, 4, 4), 'stage:1': torch.zeros(1, 3, 4, 4),
                        'var:2': torch.zeros(1, 3, 4, 4)}, pred='stage:2')
    gt = torch.ones(1, 3, 4, 4)
    assert float(LossTerm('pixel_opt', {'type': 'L1Loss'})(out, gt)) == pytest.approx(1.0)  # all stages
    assert float(LossTerm('p_opt', {'type': 'L1Loss', 'outputs': 'pred'})(out, gt)) == pytest.approx(0.0)
    weighted = LossTerm('w_opt', {'type': 'L1Loss', 'stage_weights': [1.0, 0.5]})
    assert float(weighted(out, gt)) == pytest.approx(0.5)
    unc = LossTerm('u_opt', {'type': 'UncertaintyLoss', 'outputs': [{'pred': 'stage:2', 'log_var': 'var:2'}]})
    assert float(unc(out, gt)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"no output 'stage:9'"):
        LossTerm('x_opt', {'type': 'L1Loss', 'outputs': 'stage:9'})(out, gt)


def test_evaluator_saves_stage_and_variance_maps(tmp_path):
    from basicsr.archs import build_network
    from basicsr.engine.evaluator import evaluate
    from basicsr.inference.pipeline import build_inference
    torch.manual_seed(0)
    net = build_network({'type': 'HINet', 'wf': 8, 'depth': 2}).eval()
    lq = torch.rand(3, 20, 28)
    dataset = [{'lq': lq, 'gt': lq.clone(), 'lq_path': 'x/img.png'}]
    pipeline = build_inference(net, {'pad_multiple': 'auto'})
    res = evaluate(pipeline, dataset, {'profile': 'basicsr_rgb', 'save_extra_outputs': True}, torch.device('cpu'),
                   save_dir=tmp_path, save_img=True, pbar=False)
    assert res['images'][0]['psnr'] > 0
    saved = sorted(p.name for p in (tmp_path / 'extra').glob('*.png'))
    assert saved == ['img_stage1.png', 'img_stage2.png']


def test_ema_warmup_tracks_the_trained_weights_early(tmp_path):
    def gap(warmup):
        opt = tiny_options(tmp_path / str(warmup), name='w', total_iter=3,
                           extra={'train.ema_decay': 0.999, 'train.ema_warmup': warmup})
        state = run(opt).model.network_state()
        return max(float((state['params'][k] - state['params_ema'][k]).abs().max()) for k in state['params']
                   if state['params'][k].is_floating_point())
    assert gap(True) < 0.5 * gap(False)
