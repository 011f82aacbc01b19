"""Fast paths (basicsr/utils/speed.py): each matches the plain network within its tolerance, falls back with a
warning, keeps plain state_dict names; batched tiles equal unbatched ones; training with the speed block
resumes exactly."""
import copy
import math
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from engine_helpers import read_losses, tiny_options

from basicsr.archs import build_network
from basicsr.inference.pipeline import InferenceOptionError, build_inference
from basicsr.models.image_restoration_model import unwrap
from basicsr.utils.options import parse_options
from basicsr.utils.speed import (FastNetwork, SpeedFallbackWarning, SpeedOptionError, apply_speed, parse_speed,
                                 set_memory_format)

ROOT = Path(__file__).resolve().parents[1]
CBSD68 = ROOT.parent / 'shared' / 'data' / 'CBSD68'
BUNDLED = ROOT / 'experiments' / 'pretrained_models' / 'NAFNet_w16_denoise_color_sigma25.safetensors'
FP32_TOL = 1e-4  # fp32 fast paths reorder float sums only
# torch.compile on CPU builds C++ kernels: without a compiler it falls back to eager (tested separately)
_CXX = (os.environ.get('CXX', ''), 'g++', 'clang++', 'c++')
needs_cxx = pytest.mark.skipif(not any(shutil.which(c) for c in _CXX if c),
                               reason='torch.compile needs a C++ compiler (g++/clang++ or $CXX)')


def tiny_nafnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = build_network({'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1,
                         'dec_blk_nums': [1, 1]})
    with torch.no_grad():  # the residual scales start at zero: draw them so that every block acts
        for name, p in net.named_parameters():
            if name.endswith(('beta', 'gamma')):
                p.uniform_(0.1, 0.3)
    return net.eval()


def tiny_restormer() -> nn.Module:
    torch.manual_seed(0)
    return build_network({'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                          'heads': [1, 2, 2, 4]}).eval()


@pytest.mark.parametrize('block, message', [
    ({'compiled': True}, "unknown option 'speed.compiled'"),
    ({'compile': {'mode': 'fastest'}}, 'speed.compile must be'),
    ({'compile': {'modes': 'default'}}, "unknown option 'speed.compile.modes'"),
    ({'autocast': 'fp8'}, "speed.autocast must be false, 'bf16' or 'fp16'"),
    ({'channels_last': 'yes'}, 'speed.channels_last must be true or false'),
    ([1], 'speed must be a mapping'),
])
def test_bad_speed_options_name_the_key(block, message):
    with pytest.raises(SpeedOptionError, match=message.replace('(', r'\(').replace('.', r'\.')):
        parse_speed(block)


def test_pipeline_reports_a_bad_speed_block_as_an_inference_option_error():
    with pytest.raises(InferenceOptionError, match='speed.autocast'):
        build_inference(tiny_nafnet(), {}, speed={'autocast': 'fp32'})


def test_all_off_leaves_the_network_unwrapped():
    net = tiny_nafnet()
    assert apply_speed(net, None) is net and apply_speed(net, {'compile': False, 'autocast': False}) is net


@pytest.mark.parametrize('make', [tiny_nafnet, tiny_restormer])
def test_channels_last_matches_plain_in_fp32(make):
    net = make()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ref = net(x)
        fast = apply_speed(net, {'channels_last': True})
        out = fast(x)
    assert isinstance(fast, FastNetwork) and out.dtype == torch.float32
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in net.parameters())  # the conversion happened
    assert (out - ref).abs().max() < FP32_TOL
    assert list(fast.state_dict()) == list(make().state_dict())


@pytest.mark.parametrize('norm', ['LayerNorm2d', 'WithBias'])
def test_channel_layer_norm_on_nhwc_keeps_nhwc_and_matches_the_composite_formula(norm):
    from basicsr.archs.conv_blocks import LayerNorm2d
    from basicsr.archs.transformer_blocks import WithBiasLayerNorm
    torch.manual_seed(0)
    layer = LayerNorm2d(6) if norm == 'LayerNorm2d' else WithBiasLayerNorm(6)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(2, 6, 5, 7) * 3 + 1).requires_grad_()
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    mu = x.mean(1, keepdim=True)
    eps = getattr(layer, 'eps', 1e-5)  # WithBias: the official 1e-5
    ref = (x - mu) / ((x - mu).pow(2).mean(1, keepdim=True) + eps).sqrt()
    ref = ref * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
    out, out_cl = layer(x), layer(x_cl)
    assert out.is_contiguous() and out_cl.is_contiguous(memory_format=torch.channels_last) and not out_cl.is_contiguous()
    assert (out - ref).abs().max() < 1e-5 and (out_cl - ref).abs().max() < 1e-5
    grad = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, x, grad, retain_graph=True)[0]
    assert (torch.autograd.grad(out_cl, x_cl, grad)[0] - g_ref).abs().max() < 1e-4


def test_bf16_autocast_is_close_and_returns_float32():
    net = tiny_nafnet()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        out = apply_speed(net, {'autocast': 'bf16'})(x)
    assert out.dtype == torch.float32
    diff = (out - ref).abs().max()
    assert 0 < diff < 0.05  # bf16 keeps 8 mantissa bits: not bit-exact, but close on [0, 1] images


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = (a.clamp(0, 1) * 255).round()
    b = (b.clamp(0, 1) * 255).round()
    return 10 * math.log10(255 ** 2 / float(((a - b) ** 2).mean()))


@pytest.mark.skipif(not CBSD68.is_dir() or not BUNDLED.is_file(), reason='needs ../shared/data and the bundled model')
def test_bf16_with_the_bundled_model_loses_at_most_0_05_db_on_cbsd68():
    import cv2

    from basicsr.archs.pretrained import load_pretrained
    from basicsr.utils.options import load_with_bases
    opt = load_with_bases(ROOT / 'options' / 'demo' / 'denoise_color_sigma25.yml')
    net = build_network(opt['network_g'])
    load_pretrained(net, str(BUNDLED))
    net.eval()
    gen = torch.Generator().manual_seed(0)
    plain, fast = build_inference(net, {}), build_inference(net, {}, speed={'autocast': 'bf16'})
    drops = []
    for path in sorted(CBSD68.glob('*.png'))[:2]:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()  # whole images (crops vary more)
        gt = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None]
        lq = gt + torch.randn(gt.shape, generator=gen) * 25 / 255
        drops.append(_psnr(plain(lq), gt) - _psnr(fast(lq), gt))
    assert max(abs(d) for d in drops) <= 0.05, drops  # measured 0.0015 and 0.0072 dB


def test_fp16_autocast_on_cpu_falls_back_to_float32_with_a_warning():
    net = tiny_nafnet()
    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(SpeedFallbackWarning, match='fp16 is not used on CPU'):
        fast = apply_speed(net, {'autocast': 'fp16'})
    with torch.no_grad():
        assert torch.equal(fast(x), net(x))


def test_cudnn_benchmark_without_cuda_is_ignored_with_a_warning():
    net = tiny_nafnet()
    with pytest.warns(SpeedFallbackWarning, match='cudnn_benchmark.*not CUDA'):
        assert apply_speed(net, {'cudnn_benchmark': True}, device=torch.device('cpu')) is net


def test_a_failing_compile_falls_back_to_eager_with_the_reason(monkeypatch):
    calls = []

    def broken_compile(module, **kwargs):
        def run(*args, **kw):
            calls.append(1)
            raise RuntimeError('InductorError: no C++ compiler found')
        return run

    monkeypatch.setattr(torch, 'compile', broken_compile)
    net = tiny_nafnet()
    fast = apply_speed(net, {'compile': True, 'channels_last': True})
    x = torch.rand(1, 3, 16, 16)
    expected = 'torch.compile failed on NAFNet.*no C\\+\\+ compiler'
    with torch.no_grad(), pytest.warns(SpeedFallbackWarning, match=expected):
        out = fast(x)
    assert (out - net(x)).abs().max() < FP32_TOL
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.no_grad():
            fast(x)  # eager from now on: no second attempt, no second warning
    assert len(calls) == 1 and 'no C++ compiler' in fast.compile_error


def test_a_wrong_call_raises_the_network_error_and_keeps_compiling(monkeypatch):
    monkeypatch.setattr(torch, 'compile', lambda module, **kw: module)
    fast = apply_speed(tiny_nafnet(), {'compile': True})
    with pytest.raises(RuntimeError):
        fast(torch.rand(1, 5, 16, 16))  # wrong channel count: the eager error, not a fallback
    assert fast._compiled is not None and fast.compile_error is None


def test_unwrap_gives_the_plain_network_of_every_wrapper():
    net = tiny_nafnet()
    assert unwrap(apply_speed(net, {'channels_last': True})) is net
    assert unwrap(torch.compile(net)) is net  # torch.compile's _orig_mod (compiling happens on the first call)


@pytest.mark.slow
@needs_cxx
def test_compiled_network_matches_plain_and_saves_plain_names(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    x = torch.rand(1, 3, 16, 16)
    fast = apply_speed(net, {'compile': True})
    with warnings.catch_warnings():
        warnings.simplefilter('error', SpeedFallbackWarning)  # the compiled path itself must run here
        with torch.no_grad():
            out = fast(x)
    assert fast.compile_error is None
    assert (out - net(x)).abs().max() < FP32_TOL
    torch.save(fast.state_dict(), tmp_path / 'w.pth')
    state = torch.load(tmp_path / 'w.pth', weights_only=True)
    assert list(state) == ['0.weight', '0.bias', '2.weight', '2.bias']
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1))
    plain.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(plain(x), net(x))


def test_batched_tiles_equal_unbatched_with_tlc_self_ensemble_and_speed():
    net = tiny_nafnet()
    x = torch.rand(1, 3, 72, 88)
    base = {'tile': {'size': 32, 'overlap': 8}, 'tlc': {'train_size': [1, 3, 24, 24]}, 'self_ensemble': True}
    one = build_inference(net, base)(x)
    batched = build_inference(net, {**base, 'tile': {'size': 32, 'overlap': 8, 'batch': 5}})(x)
    fast = build_inference(net, {**base, 'tile': {'size': 32, 'overlap': 8, 'batch': 5}},
                           speed={'channels_last': True})(x)
    assert (batched - one).abs().max() < FP32_TOL
    assert (fast - one).abs().max() < FP32_TOL


def test_speed_flags_of_test_py_set_the_speed_block(tmp_path):
    from basicsr.utils.cli_options import build_parser, load_options
    path = tiny_options(tmp_path)
    args = build_parser(is_train=False).parse_args(['-opt', str(path), '--compile', 'max-autotune',
                                                     '--channels-last', '--autocast', 'bf16'])
    opt = load_options(args, is_train=False, root=tmp_path)
    assert parse_speed(opt['speed']) == parse_speed({'compile': {'mode': 'max-autotune'}, 'channels_last': True,
                                                     'autocast': 'bf16'})


def test_training_with_channels_last_and_bf16_resumes_exactly(tmp_path):
    from basicsr.engine.trainer import Trainer
    extra = {'speed': {'channels_last': True, 'autocast': 'bf16'}}
    straight = tiny_options(tmp_path / 'a', name='straight', extra=extra)
    trainer = Trainer(parse_options(straight, [], is_train=True))
    assert isinstance(trainer.model.net_g, FastNetwork) and trainer.model.amp_dtype is torch.bfloat16
    trainer.train()
    ref = read_losses(tmp_path / 'a' / 'experiments' / 'straight')
    split = tiny_options(tmp_path / 'b', name='split', extra=extra)
    Trainer(parse_options(split, ['train.total_iter=3'], is_train=True)).train()
    Trainer(parse_options(split, [], is_train=True)).train()
    assert read_losses(tmp_path / 'b' / 'experiments' / 'split') == ref
    from basicsr.utils.serialization import load_torch_file
    saved = load_torch_file(tmp_path / 'b' / 'experiments' / 'split' / 'models' / 'net_g_latest.pth')
    assert set(saved['params']) == set(tiny_nafnet().state_dict())


def test_train_amp_and_speed_autocast_must_agree(tmp_path):
    from basicsr.models.image_restoration_model import ImageRestorationModel
    path = tiny_options(tmp_path, extra={'speed': {'autocast': 'bf16'}, 'train.amp': 'fp16'})
    with pytest.raises(ValueError, match=r'train.amp \(fp16\) and speed.autocast \(bf16\) disagree'):
        ImageRestorationModel(parse_options(path, [], is_train=True))


def test_bf16_multi_output_networks_keep_their_named_outputs():
    torch.manual_seed(0)
    net = build_network({'type': 'HINet', 'wf': 8, 'depth': 2}).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref, out = net(x), apply_speed(net, {'autocast': 'bf16'})(x)
    assert out.names == ref.names and all(t.dtype == torch.float32 for t in out)
    assert (out.pred - ref.pred).abs().max() < 0.05


def test_loader_workers_are_persistent_and_prefetch():
    from basicsr.data.loader import build_dataloader
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    loader = build_dataloader(data, {'batch_size_per_gpu': 2, 'num_worker_per_gpu': 2, 'prefetch_factor': 3})
    assert loader.persistent_workers and loader.prefetch_factor == 3 and loader.num_workers == 2
    assert sorted(float(v) for (batch, ) in loader for v in batch) == list(range(8))


class _OpenCVThreads(torch.utils.data.Dataset):
    """Each sample is the number of threads OpenCV would use in the process that loads it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        import cv2
        return cv2.getNumThreads()


def test_loader_workers_run_opencv_single_threaded():
    import cv2
    from basicsr.data.loader import build_dataloader
    loader = build_dataloader(_OpenCVThreads(), {'batch_size_per_gpu': 1, 'num_worker_per_gpu': 1})
    if cv2.getNumThreads() < 2:
        pytest.skip('OpenCV runs single-threaded in this process already (one core)')
    assert [int(b) for b in loader] == [1, 1]  # the main process keeps its pool


# one small configuration of each family the speed targets name (issue: NAFNet, HINet, MPRNet, MSRResNet,
# Restormer, PromptIR, SwinIR, Uformer), with the input size each needs
FAMILIES = {
    'NAFNet': ({'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}, 32),
    'HINet': ({'wf': 8, 'depth': 2}, 32),
    'MPRNet': ({'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4, 'num_cab': 1, 'reduction': 4}, 32),
    'MSRResNet': ({'num_feat': 8, 'num_block': 2, 'upscale': 2}, 16),
    'Restormer': ({'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 2, 2, 4]}, 32),
    'PromptIR': ({'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'decoder': True}, 32),
    'SwinIR': ({'upscale': 2, 'upsampler': 'pixelshuffle', 'embed_dim': 12, 'depths': [2], 'num_heads': [2],
                'window_size': 4, 'mlp_ratio': 2, 'img_size': 16}, 16),
    'Uformer': ({'img_size': 32, 'embed_dim': 4, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
                 'num_heads': [1, 1, 1, 1, 1, 1, 1, 1, 1], 'win_size': 2, 'modulator': True}, 32),
}


def _family(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = build_network({'type': name, **FAMILIES[name][0]})
    with torch.no_grad():  # zero-initialised residual scales (NAFNet) would hide whole branches
        for pname, p in net.named_parameters():
            if pname.endswith(('beta', 'gamma')) and not p.any():
                p.uniform_(0.1, 0.3)
    return net.eval()


def _tensors(out):
    return [out] if isinstance(out, torch.Tensor) else [t for t in (out.values() if isinstance(out, dict) else out)
                                                       if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize('name', sorted(FAMILIES))
def test_each_family_channels_last_and_bf16_match_plain(name):
    net = _family(name)
    size = FAMILIES[name][1]
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        ref = _tensors(net(x))
        cl = _tensors(apply_speed(net, {'channels_last': True})(x))
        bf = _tensors(apply_speed(net, {'channels_last': True, 'autocast': 'bf16'})(x))
    assert len(ref) == len(cl) == len(bf)
    for r, c, b in zip(ref, cl, bf):
        assert c.dtype == b.dtype == torch.float32 and c.shape == b.shape == r.shape
        assert (c - r).abs().max() < FP32_TOL  # fp32: the same arithmetic in another order
        scale = r.abs().max().clamp_min(1.0)
        # bf16 keeps 8 mantissa bits (relative rounding 2^-8 per operation); a few layers stay within ~5 %
        assert 0 < (b - r).abs().max() / scale < 0.05


@pytest.mark.slow
@needs_cxx
def test_compiled_nafnet_matches_plain_in_eval_and_training():
    net = _family('NAFNet')
    x = torch.rand(1, 3, 32, 32)
    fast = apply_speed(net, {'compile': True, 'channels_last': True})
    with warnings.catch_warnings():
        warnings.simplefilter('error', SpeedFallbackWarning)  # the compiled path itself must run
        with torch.no_grad():
            out = fast(x)
        net.train()
        fast(x).mean().backward()
    assert fast.compile_error is None
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    plain = copy.deepcopy(net)
    set_memory_format(plain, torch.contiguous_format)
    plain(x).mean().backward()
    plain.eval()
    with torch.no_grad():
        assert (out - plain(x)).abs().max() < FP32_TOL
    for n, p in plain.named_parameters():
        assert torch.allclose(grads[n], p.grad, atol=FP32_TOL, rtol=1e-3), n
