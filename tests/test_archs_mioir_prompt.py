"""MiOIR prompt learning: SRResNet/Restormer ``_EP`` / ``_AP``, the shared prompt blocks, the ``task``
condition through the model, the inference pipeline and TLC, and the opt-in TLC prompt-pooling converter."""
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import tiny_options

from basicsr.archs import build_network
from basicsr.archs.conditions import condition_kwargs, example_conditions, network_conditions
from basicsr.archs.prompt_blocks import MIOIR_TASKS, PromptPool, explicit_prompt_maps, split_prompt_input
from basicsr.inference.pipeline import build_inference
from basicsr.inference.tlc import to_local
from basicsr.inference.tlc_extra import LocalPromptPool
from basicsr.utils.options import parse_options

SR = {'num_feat': 8, 'num_block': 2}
REST = {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]}


def _randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


def _zero_prompt_linears(net: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(('prompt_scale', 'prompt_shift')):
                p.zero_()


@pytest.mark.parametrize('family,kwargs', [('SRResNet', SR), ('Restormer', REST)])
def test_zeroed_modulation_gives_the_plain_network(family, kwargs):
    plain = _randomised(build_network({'type': family, **kwargs}))
    ap = build_network({'type': f'{family}_AP', **kwargs}).eval()
    plain_sd = plain.state_dict()
    if family == 'SRResNet':  # body.<i>.* is body<i+1>.0.* in the prompt variant (official names)
        plain_sd = {(f"body{int(k.split('.')[1]) + 1}.0.{'.'.join(k.split('.')[2:])}" if k.startswith('body.')
                     else k): v for k, v in plain_sd.items()}
    missing, unexpected = ap.load_state_dict(plain_sd, strict=False)
    assert not unexpected
    assert all(k.startswith(('F_ext_net', 'prompt_')) for k in missing)
    _zero_prompt_linears(ap)
    x = torch.rand(1, 3, 40, 32)
    with torch.no_grad():
        torch.testing.assert_close(ap(x), plain(x), atol=1e-6, rtol=0)
        # with non-zero modulation the prompt changes the output
        ap.prompt_shiftout.bias.fill_(0.5)
        assert (ap(x) - plain(x)).abs().min() > 0.4


@pytest.mark.parametrize('family,kwargs', [('SRResNet', SR), ('Restormer', REST)])
def test_call_forms_agree(family, kwargs):
    ep = _randomised(build_network({'type': f'{family}_EP', **kwargs}))
    ap = _randomised(build_network({'type': f'{family}_AP', **kwargs}))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        official = ep([x, explicit_prompt_maps([1, 4])])  # (B, 128, 128) maps, as the official model feeds
        torch.testing.assert_close(ep(x, task=torch.tensor([1, 4])), official, atol=0, rtol=0)
        torch.testing.assert_close(ep([x, explicit_prompt_maps([1, 4])[:, None]]), official, atol=0, rtol=0)
        assert (ep(x, task=[1, 1]) - official).abs().max() > 1e-4  # the task matters
        torch.testing.assert_close(ap(x), ap([x, x]), atol=0, rtol=0)
    assert network_conditions(ep) == ('task', ) and network_conditions(ap) == ()


def test_explicit_prompt_maps_are_the_official_type7():
    maps = explicit_prompt_maps(list(range(len(MIOIR_TASKS))))
    assert maps.shape == (7, 128, 128) and maps.dtype == torch.float32
    assert 0 <= float(maps.min()) and float(maps.max()) < 1 and abs(float(maps.mean()) - 0.501) < 1e-3
    assert not torch.equal(maps[0], maps[1])
    with pytest.raises(ValueError, match=r'0\.\.6'):
        explicit_prompt_maps([7])


def test_prompt_input_errors_name_the_network():
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match='Restormer_EP needs its explicit prompt'):
        split_prompt_input(x, None, True, 'Restormer_EP')
    with pytest.raises(ValueError, match='batch'):
        split_prompt_input([x, torch.rand(3, 3, 16, 16)], None, False, 'SRResNet_AP')
    with pytest.raises(ValueError, match='sequence of 3'):
        split_prompt_input([x, x, x], None, False, 'SRResNet_AP')
    net = build_network({'type': 'SRResNet_EP', **SR})
    with pytest.raises(KeyError, match="needs 'task'"):
        condition_kwargs(net, {'lq': x}, 'val image 0')
    assert condition_kwargs(net, {'task': 3}, 'x', single=True)['task'].tolist() == [3]
    assert example_conditions(net, 2)['task'].tolist() == [0, 0]


def test_pipeline_passes_the_task_to_every_tile_and_transform():
    net = _randomised(build_network({'type': 'SRResNet_EP', **SR}))
    x = torch.rand(1, 3, 48, 40)
    task = torch.tensor([2])
    with torch.no_grad():
        ref = net(x, task=task)
    plain = build_inference(net, {})
    with pytest.raises(ValueError, match="needs \\['task'\\]"):
        plain(x)
    torch.testing.assert_close(plain(x, task=task), ref, atol=1e-6, rtol=0)
    # a conv net with a receptive field < overlap: tiles give the whole-image result, if each tile has the task
    tiled = build_inference(net, {'tile': {'size': 32, 'overlap': 16, 'batch': 2}})
    torch.testing.assert_close(tiled(x, task=task), ref, atol=1e-5, rtol=0)
    ens = build_inference(net, {'self_ensemble': True})(x, task=task)
    assert ens.shape == ref.shape and (ens - ref).abs().mean() < 0.5


def test_tlc_calibrates_explicit_prompt_networks_and_leaves_their_prompt_alone():
    net = _randomised(build_network({'type': 'Restormer_EP', **REST}))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        local = to_local(net, train_size=(1, 3, 32, 32), extra=True)  # MDTA converted, calibrated with a task
    assert isinstance(local.F_ext_net1.pool, PromptPool) and not isinstance(local.F_ext_net1.pool, LocalPromptPool)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(local(x, task=[5]), net(x, task=[5]), atol=1e-5, rtol=0)


def test_tlc_prompt_pooling_is_local_only_with_extra():
    net = _randomised(build_network({'type': 'SRResNet_AP', **SR}))
    with pytest.warns(UserWarning, match='no layer with global statistics'):
        unchanged = to_local(net, train_size=(1, 3, 64, 64))
    assert isinstance(unchanged.F_ext_net.pool, PromptPool)
    local = to_local(net, train_size=(1, 3, 64, 64), extra=True)
    pool = local.F_ext_net.pool
    assert isinstance(pool, LocalPromptPool) and pool.kernel_size == (12, 12)  # 8x8 features, base 1.5x
    small, large = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 200, 160)
    with torch.no_grad():
        torch.testing.assert_close(local(small), net(small), atol=0, rtol=0)  # window covers it: global
        assert (local(large) - net(large)).abs().max() > 1e-4
        # the local prompt at a pixel is the mean of the extractor features over the window around it
        feats = large
        for conv in (net.F_ext_net.conv1, net.F_ext_net.conv2, net.F_ext_net.conv3):
            feats = F.relu(conv(F.pad(feats, (1, 1, 1, 1))))
        got = pool(feats)
        h, w = feats.shape[-2:]
        assert got.shape == (1, h, w, 64)
        i, j = h // 2, w // 2
        # the 'valid' box-filter map is replicate-padded by floor((k - 1) / 2) = 5 before: window starts at i - 5
        top, left = i - 5, j - 5
        want = feats[0, :, top:top + 12, left:left + 12].mean(dim=(1, 2))
        torch.testing.assert_close(got[0, i, j], want, atol=1e-5, rtol=0)


def test_spatial_prompt_equal_to_the_vector_gives_the_same_output():
    net = _randomised(build_network({'type': 'Restormer_AP', **REST}))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        vectors = [getattr(net, f'F_ext_net{i}')(x) for i in range(1, 5)]
        maps = [v[:, None, None, :].expand(1, 3, 5, 64) for v in vectors]  # any map size: resized per site
        torch.testing.assert_close(net.forward_image(x, maps), ref, atol=5e-5, rtol=1e-5)  # interpolation rounding


def test_training_an_explicit_prompt_network_feeds_the_task(tmp_path):
    """MultiTaskDataset labels reach the EP network during training and validation (without them the
    network raises: it cannot pick its prompt)."""
    from basicsr.engine.trainer import Trainer
    base = tiny_options(tmp_path, name='ep', total_iter=2, ckpt_freq=2)
    opt = parse_options(base, [], is_train=True)
    clean = str(tmp_path / 'clean')
    task = {'type': 'SyntheticDegradationDataset', 'dataroot_gt': clean}
    tasks = [{**task, 'name': 'noise', 'label': 1, 'degradation': {'type': 'GaussianNoise', 'sigma': 25}},
             {**task, 'name': 'blur', 'label': 0, 'degradation': {'type': 'GaussianNoise', 'sigma': 5}}]
    opt['datasets'] = {
        'train': {'name': 'mt', 'type': 'MultiTaskDataset', 'phase': 'train', 'gt_size': 32, 'tasks': tasks,
                  'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
        'val': {'name': 'mtval', 'type': 'MultiTaskDataset', 'phase': 'val', 'tasks': tasks[:1]}}
    opt['network_g'] = {'type': 'SRResNet_EP', **SR}
    opt['val'] = {'val_freq': 2, 'profile': 'basicsr_rgb', 'save_img': False}
    Trainer(opt).train()
    metrics = (Path(opt['path']['experiments_root']) / 'val_results' / 'metrics.json').read_text()
    assert 'psnr' in metrics


def test_demo_takes_the_task_of_an_explicit_prompt_network(tmp_path):
    import yaml

    from basicsr import demo
    net = build_network({'type': 'SRResNet_EP', **SR})
    torch.save({'params': net.state_dict()}, tmp_path / 'ep.pth')
    (tmp_path / 'ep.yml').write_text(yaml.safe_dump({'network_g': {'type': 'SRResNet_EP', **SR}}))
    args = ['--opt', str(tmp_path / 'ep.yml'), '--weights', str(tmp_path / 'ep.pth'), '--output', str(tmp_path / 'o')]
    with pytest.raises(SystemExit, match='needs --task'):
        demo.main(args)
    with pytest.raises(SystemExit, match="'fog' is neither"):
        demo.main(args + ['--task', 'fog'])
    records = demo.main(args + ['--task', 'noise'])
    assert records and (tmp_path / 'o' / f"{Path(records[0]['image']).stem.replace('_noisy', '')}_restored.png").is_file()


def test_ensemble_members_read_the_task_from_the_sample(tmp_path):
    import yaml

    from basicsr.ensemble.pipeline import build_members
    net = _randomised(build_network({'type': 'SRResNet_EP', **SR}))
    torch.save({'params': net.state_dict()}, tmp_path / 'ep.pth')
    (tmp_path / 'ep.yml').write_text(yaml.safe_dump({'network_g': {'type': 'SRResNet_EP', **SR}}))
    (member, ) = build_members([{'opt': str(tmp_path / 'ep.yml'), 'weights': str(tmp_path / 'ep.pth')}],
                               torch.device('cpu'))
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(member(x, {'lq_path': 'a.png', 'task': 4}), net(x, task=[4]), atol=1e-6, rtol=0)
    with pytest.raises(KeyError, match="needs 'task'"):
        member(x, {'lq_path': 'a.png'})


class _FixedClassifier(torch.nn.Module):
    """Scores that always pick ``task`` (stands in for the MiOIR degradation classifier)."""

    def __init__(self, task: int) -> None:
        super().__init__()
        self.task = task
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return F.one_hot(torch.full((x.shape[0], ), self.task), 7).float()


def test_task_classifier_fills_in_the_task_on_the_whole_input():
    from basicsr.inference.pipeline import InferencePipeline
    from basicsr.inference.task_classifier import TaskClassifier
    net = _randomised(build_network({'type': 'SRResNet_EP', **SR}))
    clf = _FixedClassifier(3)
    pipe = InferencePipeline(net, task_classifier=TaskClassifier(clf), tile={'size': 32, 'overlap': 16})
    assert pipe.provided_conditions == ('task', )
    x = torch.rand(1, 3, 56, 48)
    with torch.no_grad():
        torch.testing.assert_close(pipe(x), net(x, task=[3]), atol=1e-5, rtol=0)
        assert clf.calls == [(1, 3, 56, 48)]  # once, on the whole image, not per tile
        torch.testing.assert_close(pipe(x, task=torch.tensor([5])), net(x, task=[5]), atol=1e-5, rtol=0)
        assert len(clf.calls) == 1  # a given label (oracle prompt) wins
    # the evaluator may then omit the task for unlabelled data
    assert condition_kwargs(net, {'lq': x}, 'x', optional=pipe.provided_conditions) == {}


def test_task_classifier_option_errors(tmp_path):
    from basicsr.inference.pipeline import InferenceOptionError
    net = build_network({'type': 'SRResNet_EP', **SR})
    with pytest.raises(InferenceOptionError, match=r'test.task_classifier must be \{network'):
        build_inference(net, {'task_classifier': {'weights': 'x.pth'}})
    with pytest.raises(InferenceOptionError, match='unknown keys'):
        build_inference(net, {'task_classifier': {'network': {'type': 'SRResNet_AP'}, 'weights': 'x', 'foo': 1}})
    with pytest.raises(FileNotFoundError, match='test.task_classifier.weights'):
        build_inference(net, {'task_classifier': {'network': {'type': 'SRResNet_AP', **SR},
                                                  'weights': str(tmp_path / 'missing.pth')}})
