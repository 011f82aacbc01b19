"""The composed inference pipeline and its options (basicsr/inference/pipeline.py, padding.py)."""
import pytest
import torch
from torch import nn

from basicsr.archs.outputs import NamedOutputs
from basicsr.inference.padding import center_crop_to_multiple, infer_size_multiple
from basicsr.inference.pipeline import InferenceOptionError, build_inference


class NeedsMultiple(nn.Module):
    """Conv net that (like HINet) refuses sizes off its multiple and records the sizes it saw."""
    size_multiple = 8

    def __init__(self, scale: int = 1, multi_output: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 3 * scale ** 2, 3, padding=1), nn.PixelShuffle(scale))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(3, 3, 1), nn.Sigmoid())
        self.multi_output = multi_output
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError('size not a multiple of 8')
        y = self.body(x)
        y = y * self.se(y)
        return NamedOutputs({'stage:1': y * 0, 'stage:2': y}, pred='stage:2') if self.multi_output else y


def test_default_pipeline_pads_to_the_network_multiple_and_crops_back():
    net = NeedsMultiple().eval()
    pipe = build_inference(net, {})
    out = pipe(torch.rand(1, 3, 30, 45))
    assert out.shape == (1, 3, 30, 45)
    assert net.seen[-1] == (1, 3, 32, 48)


def test_pipeline_scores_the_main_output_and_supports_sr_scale():
    net = NeedsMultiple(scale=2, multi_output=True).eval()
    x = torch.rand(1, 3, 32, 40)
    out = build_inference(net, {'tile': {'size': 16, 'overlap': 8}, 'self_ensemble': True})(x)
    assert out.shape == (1, 3, 64, 80)
    assert out.abs().sum() > 0  # stage:2, not the zero stage:1


def test_full_composition_runs_with_tlc_and_shares_weights():
    net = NeedsMultiple().eval()
    pipe = build_inference(net, {'tile': {'size': 32, 'overlap': 8, 'batch': 2}, 'self_ensemble': True,
                                 'tlc': {'train_size': [1, 3, 16, 16], 'fast_imp': True}})
    x = torch.rand(1, 3, 40, 70)
    before = pipe(x)
    with torch.no_grad():
        net.body[0].bias.add_(0.5)  # e.g. a training step after the pipeline was built
    assert (pipe(x) - before).abs().max() > 1e-3
    assert pipe.net.body[0].weight is net.body[0].weight


def test_tlc_pipeline_equals_plain_network_below_the_base_size():
    net = NeedsMultiple().eval()
    x = torch.rand(1, 3, 24, 16)
    plain = build_inference(net, {})(x)
    local = build_inference(net, {'tlc': {'train_size': [1, 3, 16, 16]}})(x)
    torch.testing.assert_close(local, plain)


def test_grids_option_in_both_spellings():
    net = NeedsMultiple().eval()
    x = torch.rand(1, 3, 40, 56)
    a = build_inference(net, {'grids': True, 'crop_size': 16})(x)
    b = build_inference(net, {'grids': {'crop_size': 16, 'batch': 4}})(x)
    torch.testing.assert_close(a, b)
    assert build_inference(net, {'grids': False}).grids is None


def test_center_crop_protocol_crops_input_and_target_alike():
    net = NeedsMultiple().eval()
    pipe = build_inference(net, {'center_crop_multiple': 16})
    lq, gt = torch.rand(1, 3, 50, 70), torch.rand(1, 3, 50, 70)
    assert pipe(lq).shape == pipe.crop_target(gt).shape == (1, 3, 48, 64)
    # PromptIR crop_img: offset floor((H mod m) / 2)
    torch.testing.assert_close(center_crop_to_multiple(gt, 16), gt[..., 1:49, 3:67])


def test_window_size_alias_and_explicit_pad_multiple():
    net = NeedsMultiple().eval()
    assert build_inference(net, {'window_size': 16}).pad_multiple == 16
    assert build_inference(net, {'pad_multiple': 24}).pad_multiple == 24
    assert infer_size_multiple(nn.Conv2d(3, 3, 1)) == 1


@pytest.mark.parametrize('opt, match', [
    ({'tile': {'size': 30, 'overlap': 8}}, r'test\.tile\.size .*multiple of the network size multiple 8'),
    ({'tile': {'size': 16, 'overlap': 16}}, r'test\.tile\.overlap'),
    ({'tile': {'sise': 16}}, r"test\.tile.*size"),
    ({'tile': {'size': 16, 'overlap': 4, 'batchsize': 2}}, r"unknown option 'test\.tile\.batchsize'.*batch"),
    ({'tile': {'size': 16}, 'grids': {'crop_size': 16}}, 'alternatives'),
    ({'grids': True}, r'test\.grids\.crop_size'),
    ({'grids': {'crop_size': 20}}, r'test\.grids\.crop_size .*multiple'),
    ({'pad_multiple': 12}, r'test\.pad_multiple'),
    ({'pad_multiple': 'big'}, r'test\.pad_multiple'),
    ({'tlc': {'train_size': [256, 256]}}, r'test\.tlc.*train_size'),
    ({'tlc': {'fast': True}}, r"test\.tlc\.fast.*fast_imp"),
    ({'center_crop_multiple': 0}, r'test\.center_crop_multiple'),
])
def test_bad_options_name_the_key(opt, match):
    with pytest.raises(InferenceOptionError, match=match):
        build_inference(NeedsMultiple(), opt)


def test_input_must_be_a_batch():
    with pytest.raises(ValueError, match='B, C, H, W'):
        build_inference(NeedsMultiple(), {})(torch.rand(3, 16, 16))
