"""basicsr.utils.model_stats: parameter counts, FLOPs (= 2 x MACs) against analytic values, peak memory."""
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from basicsr.archs import build_network
from basicsr.utils.model_stats import (count_flops, count_parameters, format_count, input_channels, model_stats,
                                       peak_forward_memory)

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT.parent / 'shared' / 'reference' / 'arch_manifests'


def test_parameter_count_is_sum_of_numel():
    net = build_network({'type': 'SwinIR', 'embed_dim': 8, 'depths': [2], 'num_heads': [2], 'window_size': 4,
                         'img_size': 8, 'upscale': 2, 'upsampler': 'pixelshuffle'})
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    net.conv_first.weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == count_parameters(net) - net.conv_first.weight.numel()


def test_shared_parameters_are_counted_once():
    lin = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(lin, lin)) == 20


def test_single_conv_flops_equal_analytic_value():
    conv = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)
    x = torch.rand(2, 3, 20, 14)
    macs = 2 * 16 * 10 * 7 * 3 * 3 * 3  # batch * C_out * H_out * W_out * C_in * k * k
    assert count_flops(conv, x) == 2 * macs


def test_depthwise_conv_and_linear_flops():
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_flops(dw, torch.rand(1, 8, 5, 5)) == 2 * (8 * 5 * 5 * 9)
    assert count_flops(nn.Linear(6, 10), torch.rand(4, 6)) == 2 * 4 * 6 * 10


def test_model_stats_counts_on_meta_like_on_cpu():
    opt = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    stats = model_stats(opt, (12, 10), memory=False)
    assert stats.flops_device == 'meta'
    net = build_network(opt)
    assert stats.flops == count_flops(net, torch.rand(1, 3, 12, 10))
    assert stats.macs * 2 == stats.flops
    assert stats.params == count_parameters(net)
    assert stats.input_shape == (1, 3, 12, 10) and stats.output_shape == (1, 3, 24, 20)


def test_input_size_rounded_up_to_size_multiple():
    stats = model_stats({'type': 'SwinIR', 'embed_dim': 8, 'depths': [2], 'num_heads': [2], 'window_size': 4,
                         'img_size': 8, 'upscale': 1, 'upsampler': ''}, (10, 9), memory=False)
    assert stats.input_shape == (1, 3, 12, 12)


def test_input_channels_from_kwargs_defaults_and_stereo_train_size():
    net = build_network({'type': 'Uformer', 'embed_dim': 4, 'dd_in': 1, 'in_chans': 1})
    assert input_channels(net, {'type': 'Uformer', 'dd_in': 1, 'in_chans': 1}) == 1
    net = build_network({'type': 'MSRResNet', 'num_feat': 4, 'num_block': 1})
    assert input_channels(net, {'type': 'MSRResNet'}) == 3  # the num_in_ch default
    assert input_channels(nn.Conv2d(6, 2, 1), {'train_size': [1, 6, 30, 90]}) == 6


def test_peak_memory_covers_the_conv_output():
    conv = nn.Conv2d(3, 32, 3, padding=1)
    out_bytes = 1 * 32 * 64 * 64 * 4
    peak = peak_forward_memory(conv, torch.rand(1, 3, 64, 64))
    assert out_bytes <= peak < 20 * out_bytes


def test_format_count():
    assert format_count(11_752_487) == '11.75M'
    assert format_count(2.5e9, 'B') == '2.50GB'
    assert format_count(None) == '-'


def test_model_summary_table_lists_registered_manifests(capsys):
    if not MANIFESTS.is_dir():
        pytest.skip(f'{MANIFESTS} not available')
    spec = importlib.util.spec_from_file_location('model_summary', ROOT / 'scripts' / 'model_summary.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(['--all-manifests', str(MANIFESTS), '--filter', 'MSRResNet__x4|SRResNet_EP',
                        '--size', '16', '16']) == 0
    out = capsys.readouterr().out
    assert '| MSRResNet__x4 | MSRResNet | 1,517,571 |' in out


def test_benchmark_script_prints_a_row_per_type(capsys):
    spec = importlib.util.spec_from_file_location('benchmark_archs', ROOT / 'scripts' / 'benchmark_archs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(['--types', '^SRResNet$', '--reduced', '--size', '16', '16', '--repeat', '1',
                        '--channels-last']) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| SRResNet |')]
    assert len(rows) == 1 and rows[0].count('|') == 9  # 8 cells: type .. fwd+bwd peak, channels-last time


def test_cpu_flop_count_includes_fused_attention():
    """On CPU, scaled_dot_product_attention runs a fused kernel the counter does not see; the count must
    still equal the meta-device count (which decomposes attention into matmuls)."""
    import torch

    from basicsr.archs import build_network
    from basicsr.utils.model_stats import count_flops
    cfg = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 8, 'embed_dim': 12, 'depths': [2],
           'num_heads': [2], 'upsampler': ''}
    cpu = build_network(cfg)
    with torch.device('meta'):
        meta = build_network(cfg)
    assert count_flops(cpu, torch.rand(1, 3, 16, 16)) == count_flops(meta, torch.empty(1, 3, 16, 16, device='meta'))
