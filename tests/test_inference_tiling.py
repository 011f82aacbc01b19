"""Overlapped tiling, grids and x8 self-ensemble (basicsr/inference/tiling.py, grids.py, self_ensemble.py)."""
import pytest
import torch
from torch import nn

from basicsr.inference.grids import grid_starts, grids_forward
from basicsr.inference.self_ensemble import dihedral, dihedral_inverse, self_ensemble
from basicsr.inference.tiling import tile_forward, tile_starts


def conv_net(layers: int, scale: int = 1) -> nn.Module:
    """3x3 convs (receptive-field radius = ``layers``), optionally a x``scale`` pixel-shuffle head."""
    torch.manual_seed(0)
    body = [m for _ in range(layers - 1) for m in (nn.Conv2d(3 if _ == 0 else 8, 8, 3, padding=1), nn.ReLU())]
    head = [nn.Conv2d(8, 3 * scale ** 2, 3, padding=1), nn.PixelShuffle(scale)] if scale > 1 else \
        [nn.Conv2d(8, 3, 3, padding=1)]
    return nn.Sequential(*body, *head).eval()


@pytest.mark.parametrize('layers, overlap, blend', [(3, 16, None), (7, 16, None), (3, 9, None), (4, 10, None), (3, 16, 8)])
def test_tiled_equals_whole_image_for_receptive_field_inside_the_margin(layers, overlap, blend):
    # receptive field 2 * layers + 1 < overlap: exact with the default blend; blend 8 leaves margin 4 >= 3
    net = conv_net(layers)
    x = torch.rand(1, 3, 52, 75)
    with torch.no_grad():
        tiled = tile_forward(net, x, size=32, overlap=overlap, batch=3, blend=blend)
        torch.testing.assert_close(tiled, net(x), atol=1e-5, rtol=0)


def test_tiled_sr_network_equals_whole_image():
    net = conv_net(3, scale=2)
    x = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        tiled = tile_forward(net, x, size=24, overlap=12, batch=2)
        assert tiled.shape == (1, 3, 100, 140)
        torch.testing.assert_close(tiled, net(x), atol=1e-5, rtol=0)


def test_weights_form_a_partition_of_unity():
    x = torch.rand(1, 3, 77, 130)
    out = tile_forward(lambda t: t, x, size=32, overlap=8)
    torch.testing.assert_close(out, x)


def test_the_network_never_sees_more_than_one_tile_batch():
    seen = []

    def fn(t):
        seen.append(t.shape[0])
        return t

    tile_forward(fn, torch.rand(2, 3, 64, 64), size=16, overlap=4, batch=3)
    assert max(seen) == 6 and sum(seen) == 2 * len(tile_starts(64, 16, 4)) ** 2


def test_tile_starts_cover_the_axis_on_the_size_multiple():
    starts = tile_starts(100, 32, 8, multiple=8)
    assert starts == [0, 24, 48, 68]
    assert all(s % 8 == 0 for s in starts[:-1]) and starts[-1] + 32 == 100
    assert tile_starts(20, 32, 8) == [0]  # a tile larger than the image is clipped to it


@pytest.mark.parametrize('kwargs, match', [
    (dict(size=16, overlap=16), 'overlap'),
    (dict(size=16, overlap=20), 'overlap'),
    (dict(size=20, overlap=4, multiple=8), 'multiple of the network size multiple 8'),
    (dict(size=16, overlap=4, batch=0), 'batch'),
    (dict(size=16, overlap=4, blend=9), 'blend'),
])
def test_bad_tile_options_raise_naming_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile_forward(lambda t: t, torch.rand(1, 3, 32, 32), **kwargs)


def test_grid_starts_follow_the_official_rule():
    # HINet: n = ceil(720 / 256) = 3 crops, step ceil((720 - 256) / 2) = 232
    assert grid_starts(720, 256) == [0, 232, 464]
    assert grid_starts(1280, 256) == [0, 256, 512, 768, 1024]
    assert grid_starts(200, 256) == [0]


def test_grids_average_overlapping_crops():
    x = torch.rand(1, 3, 50, 70)
    torch.testing.assert_close(grids_forward(lambda t: t, x, 32, batch=4), x)
    net = conv_net(2, scale=2)
    with torch.no_grad():
        out = grids_forward(net, x, 32, batch=2)
        assert out.shape == (1, 3, 100, 140)
        # a pixel covered by one crop only equals that crop's output
        torch.testing.assert_close(out[..., :20, :20], net(x[..., :32, :32])[..., :20, :20])


@pytest.mark.parametrize('k', range(8))
def test_dihedral_transforms_invert(k):
    x = torch.rand(1, 2, 5, 7)
    torch.testing.assert_close(dihedral_inverse(dihedral(x, k), k), x)


def test_the_eight_transforms_are_distinct():
    x = torch.rand(1, 1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_self_ensemble_of_an_equivariant_network_is_the_network():
    net = nn.Conv2d(3, 3, 1)
    x = torch.rand(2, 3, 6, 9)
    with torch.no_grad():
        torch.testing.assert_close(self_ensemble(net, x), net(x))


def test_self_ensemble_averages_the_transformed_outputs():
    net = conv_net(2)
    x = torch.rand(1, 3, 8, 10)
    with torch.no_grad():
        ref = sum(dihedral_inverse(net(dihedral(x, k)), k) for k in range(8)) / 8
        torch.testing.assert_close(self_ensemble(net, x), ref)
