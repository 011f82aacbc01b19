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


def test_bf16_autocast_matches_fp32_within_bf16_rounding(tmp_path):
    """Same data, same initial weights: the bf16-autocast losses stay within 0.5 % of the fp32 ones and are not
    bit-identical (autocast really ran). bf16 keeps 8 significant bits (relative rounding up to 2^-9 = 0.2 % per
    value); the L1 loss averages the rounding errors of the tiny NAFNet's outputs and the second iteration adds
    one AdamW step taken from bf16 gradients (measured here: 0.025 % and 0.08 %)."""
    fp32 = tiny_options(tmp_path / 'a', name='fp32', total_iter=2, extra={'train.ema_decay': 0})
    run(fp32)
    bf16 = tiny_options(tmp_path / 'b', name='bf16', total_iter=2, extra={'train.amp': 'bf16', 'train.ema_decay': 0})
    trainer = run(bf16)
    assert trainer.model.amp_dtype is torch.bfloat16
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'fp32')
    got = read_losses(tmp_path / 'b' / 'experiments' / 'bf16')
    assert sorted(got) == sorted(ref) == [1, 2]
    for it in ref:
        assert got[it] == pytest.approx(ref[it], rel=5e-3), it
    assert got[1] != ref[1]


def _ema_run(root, total_iter, warmup):
    """Train ``total_iter`` iterations one at a time (a resume after each, checkpoint every iteration) and
    return the initial weights and, after each iteration, (params, params_ema)."""
    from basicsr.engine.trainer import Trainer
    opt = tiny_options(root, name='ema', total_iter=total_iter, ckpt_freq=1,
                       extra={'train.ema_decay': 0.9, 'train.ema_warmup': warmup})
    states = []
    first = Trainer(parse_options(opt, ['train.total_iter=1'], is_train=True))
    initial = {k: v.clone() for k, v in first.model.network_state()['params'].items()}
    for it in range(1, total_iter + 1):
        trainer = first if it == 1 else Trainer(parse_options(opt, [f'train.total_iter={it}'], is_train=True))
        trainer.train()
        state = trainer.model.network_state()
        states.append((state['params'], state['params_ema']))
    return initial, states


@pytest.mark.parametrize('warmup', [False, True])
def test_ema_follows_its_formula(tmp_path, warmup):
    """After iteration n: ema_n = d_n * ema_(n-1) + (1 - d_n) * params_n, ema_0 = the initial weights, with
    d_n = 0.9 (train.ema_decay), or min(0.9, (1 + n) / (10 + n)) with train.ema_warmup (2/11, 3/12, 4/13)."""
    initial, states = _ema_run(tmp_path, 3, warmup)
    prev = initial
    for n, (params, ema) in enumerate(states, start=1):
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        for k, p in params.items():
            if p.is_floating_point():
                torch.testing.assert_close(ema[k], d * prev[k] + (1 - d) * p, rtol=1e-5, atol=1e-7, msg=k)
        assert any(not torch.equal(ema[k], params[k]) for k in params)  # the average lags the weights
        prev = ema


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
