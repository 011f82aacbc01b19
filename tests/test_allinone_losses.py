"""Multi-output losses through the loss-term blocks: MPRNet's stage sums, DSRIR's total loss, PoCL, bad options."""
import math

import pytest
import torch

from basicsr.archs.outputs import NamedOutputs
from basicsr.losses import perceptual_loss
from basicsr.losses.frequency_loss import EdgeLoss
from basicsr.losses.pixel_loss import CharbonnierLoss
from basicsr.losses.vgg import VGG19Features
from basicsr.models.loss_terms import LossTerm, build_loss_terms


def _stages(seed: int = 0, var: bool = False) -> tuple:
    g = torch.Generator().manual_seed(seed)
    t = lambda: torch.rand(2, 3, 16, 16, generator=g)  # noqa: E731
    items = {'stage:3': t(), 'stage:2': t(), 'stage:1': t()}
    if var:
        items.update({f'var:{i}': t() - 0.5 for i in (3, 2, 1)})
    return NamedOutputs(items, pred='stage:3'), t(), t()


def test_mprnet_charbonnier_plus_edge_is_two_blocks_summed_over_stages():
    out, gt, _ = _stages()
    terms = build_loss_terms({'char_opt': {'type': 'CharbonnierLoss', 'eps': 1e-3},
                              'edge_opt': {'type': 'EdgeLoss', 'loss_weight': 0.05}})
    total = sum(term(out, gt) for term in terms.values())
    char, edge = CharbonnierLoss(eps=1e-3), EdgeLoss()
    expected = sum(char(out[f'stage:{s}'], gt) + 0.05 * edge(out[f'stage:{s}'], gt) for s in (1, 2, 3))
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def _official_ul(target: torch.Tensor, restored: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """DSRIR losses/loss.py UncertaintyLoss, written out: mean |restored e^-v - target e^-v| + 2 mean(v)."""
    s = torch.exp(-log_var)
    return (restored * s - target * s).abs().mean() + 2 * log_var.mean()


def _official_psnr(target: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """DSRIR losses/loss.py PSNRLoss, written out: (10 / ln 10) * batch mean of ln(MSE per image + 1e-8)."""
    mse = ((restored - target) ** 2).mean(dim=(1, 2, 3))
    return 10 / math.log(10) * torch.log(mse + 1e-8).mean()


def test_dsrir_recipe_loss_blocks_reproduce_the_official_total():
    """DSRIR train.py: loss_ul = (UL(s3) + UL(s2) + UL(s1)) / 3, loss_psnr = PSNR(s3) + 0.5 * (PSNR(s2) + PSNR(s1)) / 2,
    with restored = (s3, s2, s1), computed here from the official definitions, not from this project's losses."""
    from pathlib import Path

    from basicsr.utils.options import parse_options
    root = Path(__file__).resolve().parents[1]
    train = parse_options(root / 'options' / 'train' / 'AllInOne' / 'DSRIR_allinone.yml', check_paths=False,
                          root=root)['train']
    out, gt, _ = _stages(var=True)
    terms = build_loss_terms({k: train[k] for k in ('uncertainty_opt', 'psnr_opt')})
    official_ul = sum(_official_ul(gt, out[f'stage:{s}'], out[f'var:{s}']) for s in (3, 2, 1)) / 3
    official_psnr = _official_psnr(gt, out['stage:3']) + 0.5 * (_official_psnr(gt, out['stage:2'])
                                                               + _official_psnr(gt, out['stage:1'])) / 2
    assert float(terms['uncertainty_opt'](out, gt)) == pytest.approx(float(official_ul), rel=1e-6)
    assert float(terms['psnr_opt'](out, gt)) == pytest.approx(float(official_psnr), rel=1e-6)


@pytest.fixture()
def random_vgg(monkeypatch):
    """PoCL with an untrained VGG19 (no weight file needed)."""
    monkeypatch.setattr(perceptual_loss, 'VGG19Features',
                        lambda path, use_input_norm: VGG19Features(None, use_input_norm, load_weights=False))


def test_pocl_takes_earlier_stages_as_positives_and_the_input_as_negative(random_vgg):
    out, gt, lq = _stages(var=True)
    term = LossTerm('contrast_opt', {'type': 'PositiveContrastLoss', 'loss_weight': 0.2,
                                     'outputs': [{'pred': 'stage:3', 'positives': ['stage:2', 'stage:1'],
                                                  'negative': 'lq'}]})
    got = term(out, gt, lq=lq)
    direct = term.loss(out['stage:3'], gt, positives=[out['stage:2'], out['stage:1']], negative=lq)
    assert float(got) == pytest.approx(float(direct), rel=1e-6) and float(got) > 0
    with pytest.raises(ValueError, match=r"train.contrast_opt.outputs asks for 'lq' .* did not pass it"):
        term(out, gt)


def test_unknown_output_names_are_listed():
    out, gt, _ = _stages()
    term = LossTerm('pixel_opt', {'type': 'L1Loss', 'outputs': [{'pred': 'stage:4'}]})
    with pytest.raises(ValueError, match=r"train.pixel_opt.outputs: the network has no output 'stage:4'"):
        term(out, gt)


def test_stage_weights_that_do_not_match_the_outputs_name_the_option_and_value():
    with pytest.raises(ValueError, match=r'train.psnr_opt.stage_weights has 2 entries but the loss scores 3 outputs '
                                         r".*\(stage_weights: \[1.0, 0.5\]\)"):
        LossTerm('psnr_opt', {'type': 'PSNRLoss', 'outputs': ['stage:3', 'stage:2', 'stage:1'],
                              'stage_weights': [1.0, 0.5]})
    out, gt, _ = _stages()
    term = LossTerm('char_opt', {'type': 'CharbonnierLoss', 'stage_weights': [1.0, 1.0]})  # 3 stages by default
    with pytest.raises(ValueError, match=r"train.char_opt.stage_weights has 2 entries but the loss scores 3 outputs"):
        term(out, gt)


def test_vgg_weight_file_of_the_wrong_shape_names_the_loss_block_and_file(tmp_path):
    bad = tmp_path / 'vgg16.pth'
    torch.save({'features.0.weight': torch.zeros(64, 3, 5, 5)}, bad)
    with pytest.raises(ValueError, match=r"train.contrast_opt \(PositiveContrastLoss, vgg_weights_path='.*vgg16.pth'"
                                         r".*'features.0.weight' has shape \(64, 3, 5, 5\), VGG19 expects "
                                         r"\(64, 3, 3, 3\)"):
        LossTerm('contrast_opt', {'type': 'PositiveContrastLoss', 'vgg_weights_path': str(bad)})


def test_missing_vgg_weights_say_where_to_put_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'train.contrast_opt .*put it at experiments/pretrained_models/'
                                                r'vgg19-dcbb9e9d.pth'):
        LossTerm('contrast_opt', {'type': 'PositiveContrastLoss', 'vgg_weights_path': str(tmp_path / 'none.pth')})
