"""Multi-output losses through the loss-term blocks: MPRNet's stage sums, DSRIR's total loss, PoCL, bad options."""
import pytest
import torch

from basicsr.archs.outputs import NamedOutputs
from basicsr.losses import perceptual_loss
from basicsr.losses.frequency_loss import EdgeLoss
from basicsr.losses.pixel_loss import CharbonnierLoss, PSNRLoss, UncertaintyLoss
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


def test_dsrir_uncertainty_and_psnr_blocks_reproduce_the_official_total():
    out, gt, _ = _stages(var=True)
    terms = build_loss_terms({
        'uncertainty_opt': {'type': 'UncertaintyLoss', 'stage_weights': [1 / 3] * 3,
                            'outputs': [{'pred': f'stage:{s}', 'log_var': f'var:{s}'} for s in (3, 2, 1)]},
        'psnr_opt': {'type': 'PSNRLoss', 'outputs': ['stage:3', 'stage:2', 'stage:1'], 'stage_weights': [1, .25, .25]},
    })
    ul, psnr = UncertaintyLoss(), PSNRLoss()
    official_ul = (ul(out['stage:3'], gt, log_var=out['var:3']) + ul(out['stage:2'], gt, log_var=out['var:2'])
                   + ul(out['stage:1'], gt, log_var=out['var:1'])) / 3
    official_psnr = psnr(out['stage:3'], gt) + 0.5 * (psnr(out['stage:2'], gt) + psnr(out['stage:1'], gt)) / 2
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
