"""MiOIR degradation classifier: official names and size, its forward, logits for training, use as test-time
task classifier."""
import math

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network

# state_dict of the official Classifier (Xiangtaokong/MiOIR basicsr/archs/classifier_arch.py), in order
OFFICIAL_SHAPES = [('lastOut.weight', (7, 32)), ('lastOut.bias', (7, )),
                   ('CondNet.0.weight', (128, 3, 3, 3)), ('CondNet.0.bias', (128, )),
                   ('CondNet.2.weight', (128, 128, 3, 3)), ('CondNet.2.bias', (128, )),
                   ('CondNet.4.weight', (128, 128, 1, 1)), ('CondNet.4.bias', (128, )),
                   ('CondNet.6.weight', (128, 128, 1, 1)), ('CondNet.6.bias', (128, )),
                   ('CondNet.8.weight', (32, 128, 1, 1)), ('CondNet.8.bias', (32, ))]


def test_official_state_dict_names_shapes_and_parameter_count():
    net = build_network({'type': 'Classifier'})
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == OFFICIAL_SHAPES
    # 188,551: counted on the official class (methods.md section 1.2, [verified])
    assert sum(p.numel() for p in net.parameters()) == 188_551


def _reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """The classifier written out layer by layer: LeakyReLU(0.1) after every convolution but the last."""
    h = x
    for i, (name, stride) in enumerate([('CondNet.0', 3), ('CondNet.2', 3), ('CondNet.4', 1), ('CondNet.6', 1),
                                        ('CondNet.8', 1)]):
        h = F.conv2d(h, sd[f'{name}.weight'], sd[f'{name}.bias'], stride=stride)
        if i < 4:
            h = F.leaky_relu(h, 0.1)
    logits = F.linear(h.mean(dim=(2, 3)), sd['lastOut.weight'], sd['lastOut.bias'])
    return logits


@pytest.mark.parametrize('shape', [(2, 3, 64, 64), (1, 3, 41, 29), (1, 3, 9, 9)])
def test_forward_returns_probabilities_by_default_and_logits_on_request(shape):
    torch.manual_seed(0)
    probs_net = build_network({'type': 'Classifier'}).eval()
    logits_net = build_network({'type': 'Classifier', 'return_logits': True}).eval()
    logits_net.load_state_dict(probs_net.state_dict())
    x = torch.rand(shape)
    with torch.no_grad():
        probs, logits = probs_net(x), logits_net(x)
    ref = _reference_forward(probs_net.state_dict(), x)
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs, torch.softmax(ref, dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(shape[0]))
    assert torch.equal(probs.argmax(1), logits.argmax(1))


def test_too_small_input_is_reported():
    with pytest.raises(ValueError, match='H, W >= 9'):
        build_network({'type': 'Classifier'})(torch.rand(1, 3, 8, 32))


def test_official_loss_on_probabilities_cannot_reach_zero():
    """Cross-entropy on softmax outputs (the official training) is >= log(1 + 6/e) ~ 1.164 for 7 classes even
    for a perfect, confident classifier; on logits it goes to 0. Hence ``return_logits`` for training."""
    target = torch.tensor([3])
    perfect_logits = torch.full((1, 7), -50.0)
    perfect_logits[0, 3] = 50.0
    official = F.cross_entropy(torch.softmax(perfect_logits, 1), target)
    assert official.item() == pytest.approx(math.log(1 + 6 / math.e), abs=1e-4)
    assert F.cross_entropy(perfect_logits, target).item() < 1e-6


def _two_degradations(n: int, gen: torch.Generator) -> tuple:
    """Class 0: Gaussian noise (sigma 0.2); class 1: 5x5 box blur; of smooth random 36 px images."""
    clean = F.interpolate(torch.rand(n, 3, 9, 9, generator=gen), size=36, mode='bilinear', align_corners=False)
    noisy = (clean + 0.2 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    blurred = F.avg_pool2d(F.pad(clean, (2, 2, 2, 2), mode='reflect'), 5, stride=1)
    return torch.cat([noisy, blurred]), torch.tensor([0] * n + [1] * n)


def test_a_few_cross_entropy_steps_on_logits_reduce_the_loss():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = build_network({'type': 'Classifier', 'num_tasks': 2, 'return_logits': True})
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_val, y_val = _two_degradations(8, gen)

    def val_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(net(x_val), y_val).item()

    before = val_loss()
    for _ in range(30):
        x, y = _two_degradations(8, gen)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    after = val_loss()
    assert after < 0.5 * before, (before, after)
    with torch.no_grad():
        assert (net(x_val).argmax(1) == y_val).float().mean() >= 0.9


def test_official_weights_file_drives_the_test_time_task_classifier(tmp_path):
    from basicsr.inference.task_classifier import build_task_classifier
    torch.manual_seed(0)
    net = build_network({'type': 'Classifier'})
    torch.save({'params': net.state_dict()}, tmp_path / 'Classifier.pth')
    classifier = build_task_classifier({'network': {'type': 'Classifier'}, 'weights': str(tmp_path / 'Classifier.pth'),
                                        'param_key': 'params'}, 'test.task_classifier')
    x = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        assert torch.equal(classifier(x), net.eval()(x).argmax(1))
