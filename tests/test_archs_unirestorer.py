"""UniRestorer and its new expert / encoder networks (DehazeFormer, RetinexFormer, DACLIPImageEncoder): the routing
table, gating (noisy in training, clean in eval), the straight-through gate, the aux loss, instruction masks, the
official layout's strict load, and the parity vectors / manifests through the shared checker (those read
../shared and skip without it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.archs.dehazeformer_arch import DEHAZEFORMER_CONFIGS
from basicsr.archs.pretrained import compare_state_dicts, drop_ignored_entries
from basicsr.archs.unirestorer_arch import cv_squared, expert_tree

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'
MANIFESTS = SHARED / 'reference' / 'arch_manifests'
VECTORS = SHARED / 'reference' / 'parity'

ENCODER = {'type': 'DACLIPImageEncoder', 'image_size': 32, 'patch_size': 8, 'width': 32, 'layers': 2, 'heads': 2}
# small experts of every official type (the spec of the public UniRestorer__tiny vector)
TINY = {'Restormer': {'dim': 4, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
        'LoRARestormer': {'dim': 4, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'r': [1, 1, 1, 1],
                          'lora_alpha': [2, 2, 2, 2]},
        'DehazeFormer': {'embed_dims': [4, 8, 8, 8, 4], 'depths': [1, 1, 2, 1, 1], 'num_heads': [1, 2, 2, 1, 1],
                         'window_size': 4},
        'RetinexFormer': {'n_feat': 4},
        'NAFNetLocal': {'width': 4, 'enc_blk_nums': [1, 1, 1], 'dec_blk_nums': [1, 1, 1], 'train_size': [1, 3, 16, 16]}}
# official expert_indices_dict (unirestorer_arch.py): leaf -> expert pool id at levels 0, 1, 2
OFFICIAL_TABLE = [[0, p, 8 + leaf] for leaf, p in enumerate([1] * 3 + [2] * 3 + [3] * 3 + [4] * 7 + [5, 5, 6, 6, 7, 7])]
# a small from-scratch tree (levels [1, 2, 4]) of tiny NAFNets
NAF = {'type': 'NAFNet', 'width': 4, 'enc_blk_nums': [1], 'dec_blk_nums': [1]}
SMALL_TREE = [{'level': 0, 'parent': None, 'arch': NAF}, {'level': 1, 'parent': 0, 'arch': NAF},
              {'level': 1, 'parent': 0, 'arch': NAF}] + [{'level': 2, 'parent': p, 'arch': NAF} for p in (1, 1, 2, 2)]


def _randomise_router_(net: torch.nn.Module, seed: int = 0) -> None:
    """Random gates (they start at zero) and BatchNorm statistics of a random batch, so that routing varies."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embedding = net.daclip_model(torch.randn(32, 3, 32, 32, generator=g))
        for head in (net.mu, net.sigma):
            hidden = head[:9](embedding)
            head[9].running_mean.copy_(hidden.mean(0))
            head[9].running_var.copy_(hidden.var(0))
        for gate in (net.lf_gate[0], net.layer_gate[0]):
            gate.weight.copy_(torch.randn(gate.weight.shape, generator=g) * 2 / 512 ** 0.5)


@pytest.fixture(scope='module')
def tiny() -> torch.nn.Module:
    net = build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'num_experts': [1, 7, 22],
                         'expert_overrides': TINY})
    _randomise_router_(net)
    return net.eval()


def _small(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'tree': SMALL_TREE, **kwargs})
    _randomise_router_(net)
    return net


def _inputs(b: int, seed: int = 0, size=(16, 20)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, *size, generator=g), torch.randn(b, 3, 32, 32, generator=g)


# ---------------------------------------------------------------------------- tree and routing table
def test_official_routing_table_and_expert_types(tiny):
    assert tiny.routing_table.tolist() == OFFICIAL_TABLE
    types = [type(tiny.expert(i)).__name__ for i in range(30)]
    # init_experts.py's off-by-one: LightHaze -> Restormer, LightDark -> DehazeFormer, LightBlur -> RetinexFormer
    assert types[24:30] == ['Restormer', 'DehazeFormer', 'DehazeFormer', 'RetinexFormer', 'RetinexFormer',
                            'NAFNetLocal']
    assert len(tiny.l2_experts) == 23 and type(tiny.l2_experts[22]).__name__ == 'NAFNetLocal'
    assert all(tiny.expert(i) is not tiny.l2_experts[22] for i in range(30))  # the spare is never routed to


def test_intended_tree_gives_each_specialist_its_own_type():
    nodes, spare = expert_tree('intended')
    leaves = [n for n in nodes if n['level'] == 2]
    by_parent = {p: [n['arch'] for n in leaves if n['parent'] == p] for p in (5, 6, 7)}
    assert by_parent == {5: ['dehazeformer_l'] * 2, 6: ['retinexformer'] * 2, 7: ['nafnet_local'] * 2}
    assert spare == [] and len(leaves) == 22
    official_nodes, official_spare = expert_tree('official')
    assert [n['parent'] for n in official_nodes] == [n['parent'] for n in nodes] and official_spare == ['nafnet_local']


def test_expert_types_match_the_manifest(tiny):
    path = MANIFESTS / 'UniRestorer__default.json'
    if not path.is_file():
        pytest.skip('../shared is not present')
    manifest = json.loads(path.read_text())
    assert [type(tiny.expert(i)).__name__ for i in range(30)] == manifest['expert_classes']


def test_user_tree_routing_table_and_validation():
    net = _small()
    assert net.routing_table.tolist() == [[0, 1, 3], [0, 1, 4], [0, 2, 5], [0, 2, 6]]
    assert [len(getattr(net, f'l{i}_experts')) for i in range(3)] == [1, 2, 4]
    bad = SMALL_TREE[:3] + [{'level': 2, 'parent': 1, 'arch': NAF}]  # node 2 has no child
    with pytest.raises(ValueError, match=r'nodes \[2\] have no children'):
        build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'tree': bad})
    with pytest.raises(ValueError, match='one level up'):
        build_network({'type': 'UniRestorer', 'daclip_model': ENCODER,
                       'tree': SMALL_TREE[:3] + [{'level': 2, 'parent': 0, 'arch': NAF}]})
    with pytest.raises(ValueError, match=r'num_experts=\[1, 7, 22\] does not match'):
        build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'tree': SMALL_TREE, 'num_experts': [1, 7, 22]})
    with pytest.raises(ValueError, match='expert_overrides names types'):
        build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'tree': SMALL_TREE,
                       'expert_overrides': {'Restormer': {'dim': 4}}})
    with pytest.raises(ValueError, match='only topk=1'):
        build_network({'type': 'UniRestorer', 'daclip_model': ENCODER, 'tree': SMALL_TREE, 'topk': 2})


def test_eval_routing_is_the_table_entry_of_the_clean_argmaxes(tiny):
    lq, dl = _inputs(12, seed=1)
    with torch.no_grad():
        out = tiny(lq, dl)
        leaf = tiny.lf_gate(out['mu'])[:, :22].argmax(-1)
        level = tiny.layer_gate(out['logvar'])[:, :3].argmax(-1)
        r = tiny.last_routing
        assert r.leaf.tolist() == leaf.tolist() and r.level.tolist() == level.tolist()
        assert r.expert.tolist() == [OFFICIAL_TABLE[i][j] for i, j in zip(leaf.tolist(), level.tolist())]
        assert len(set(r.expert.tolist())) > 2  # the check sees several experts
        for b in range(12):  # the output is the chosen expert's image
            expected = tiny.expert(int(r.expert[b]))(lq[b:b + 1])
            torch.testing.assert_close(out.pred[b:b + 1], expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- gating
def test_noisy_gating_in_training_clean_in_eval():
    net = _small()
    lq, dl = _inputs(16, seed=2)
    net.eval()
    with torch.no_grad():
        ref = net(lq, dl)
        routes_eval = net.last_routing.expert.clone()
        again = net(lq, dl)
    assert torch.equal(net.last_routing.expert, routes_eval) and torch.equal(ref.pred, again.pred)
    net.train()
    with torch.no_grad():
        net.lf_gate[0].weight[4:].fill_(0.3)  # raw noise std: softplus(0.3 * sum(mu)) + 0.01, large
        torch.manual_seed(0)
        net(lq, dl)
        first = net.last_routing.leaf.clone()
        torch.manual_seed(1)
        net(lq, dl)
        second = net.last_routing.leaf.clone()
    assert not torch.equal(first, second)  # the noise changes the leaves between draws
    clean = _small(noisy_topk_gating=False).train()  # without noise the draws do not matter
    assert clean.lf_gate[0].weight.shape[0] == 4  # no raw-noise half
    with torch.no_grad():
        torch.manual_seed(0)
        clean(lq, dl)
        first = clean.last_routing.leaf.clone()
        torch.manual_seed(1)
        clean(lq, dl)
    assert torch.equal(first, clean.last_routing.leaf)


def test_experts_and_encoder_are_frozen_and_stay_in_eval_mode():
    net = _small().train()
    assert not net.l0_experts[0].training and not net.daclip_model.training and net.mu.training
    trainable = {n.split('.')[0] for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {'mu', 'sigma', 'lf_gate', 'layer_gate'}  # experts, encoder, unused gamma/beta frozen
    calls = []
    for i in range(7):
        net.expert(i).register_forward_hook(lambda m, inp, out, i=i: calls.append((i, inp[0].shape[0])))
    lq, dl = _inputs(8, seed=3)
    out = net(lq, dl)
    counts = torch.bincount(net.last_routing.expert, minlength=7)
    assert sorted(calls) == [(i, int(c)) for i, c in enumerate(counts) if c > 0]  # one sub-batch per expert
    out.pred.mean().backward()
    assert net.mu[0].weight.grad is not None and net.lf_gate[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.l1_experts.parameters())
    with pytest.raises(ValueError, match='at least 2 images'):
        net(lq[:1], dl[:1])


def test_straight_through_value_and_gradient():
    net = _small().train()
    lq, dl = _inputs(6, seed=4)
    captured = {}
    original = net.route

    def spy(*args, **kwargs):
        routing, gate, probs = original(*args, **kwargs)
        gate.retain_grad()
        captured['gate'] = gate
        return routing, gate, probs

    net.route = spy
    torch.manual_seed(0)
    out = net(lq, dl)
    weights = torch.randn_like(out.pred)
    (out.pred * weights).sum().backward()
    experts = net.run_experts(lq, net.last_routing.expert)
    assert torch.equal(out.pred, experts)  # the value is the expert output (g / g.detach() == 1)
    gate = captured['gate']
    expected = (weights * experts).flatten(1).sum(1) / gate.detach()  # dL/dg = <dL/dy, y> / g
    torch.testing.assert_close(gate.grad, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(gate.detach(), net.last_routing.gate)


# ---------------------------------------------------------------------------- aux loss
def test_aux_loss_is_weighted_cv_squared_of_batch_summed_level_probabilities(tiny):
    lq, dl = _inputs(12, seed=5)
    with torch.no_grad():
        out = tiny(lq, dl)
        probs = tiny.layer_gate(out['logvar'])[:, :3].softmax(-1)
    v = probs.sum(0) / probs.sum()
    expected = 0.01 * v.var(unbiased=True) / (v.mean() ** 2 + 1e-10)
    torch.testing.assert_close(out['aux_loss'], expected, rtol=1e-5, atol=1e-9)
    assert float(cv_squared(torch.full((3,), 0.5))) == 0.0 and float(cv_squared(torch.ones(1))) == 0.0
    torch.testing.assert_close(cv_squared(torch.tensor([1., 0., 0.])), torch.tensor(3.0), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- instruction masks
def test_instruction_masks_restrict_leaves_and_levels(tiny):
    lq, dl = _inputs(12, seed=6)
    derain = tiny.leaf_mask([4])  # only the leaves under level-1 node 4 (Derain: leaves 9..15)
    assert (~derain).nonzero().squeeze(1).tolist() == list(range(9, 16))
    level2_only = torch.tensor([True, True, False])
    with torch.no_grad():
        tiny(lq, dl, layer_skip_mask=level2_only, skip_mask=derain)
    r = tiny.last_routing
    assert set(r.leaf.tolist()) <= set(range(9, 16)) and r.level.tolist() == [2] * 12
    assert r.expert.tolist() == [8 + leaf for leaf in r.leaf.tolist()]
    per_sample = torch.zeros(12, 22, dtype=torch.bool)
    per_sample[:, 3:] = True  # leaves 0..2 (noise) for every sample, levels left free
    with torch.no_grad():
        tiny(lq, dl, skip_mask=per_sample)
    assert set(tiny.last_routing.leaf.tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match=r"skip_mask \(leaves\) must be a bool tensor of shape \(22,\)"):
        tiny(lq, dl, skip_mask=level2_only)  # the official code's swap: a level mask on the leaves
    with pytest.raises(ValueError, match='excludes every choice'):
        tiny(lq, dl, layer_skip_mask=torch.ones(3, dtype=torch.bool))


# ---------------------------------------------------------------------------- official layout and checkpoints
@pytest.mark.slow
def test_official_layout_loads_a_model_pth_layout_strictly(shared_dir):
    """A checkpoint with the manifest's names / shapes plus the whole DA-CLIP (incl. the frozen CLIP, which is
    ignored) loads strictly; a missing expert entry does not. Built on the meta device (no 3.5 GB allocation)."""
    manifest = json.loads((shared_dir / 'reference/arch_manifests/UniRestorer__default.json').read_text())
    daclip = json.loads((shared_dir / 'reference/arch_manifests/DACLIPImageEncoder__daclip_vit_b32.json').read_text())
    with torch.device('meta'):
        net = build_network({'type': 'UniRestorer', **manifest['kwargs']})
        ckpt = {k: torch.empty(s) for k, s, _ in manifest['state_dict']}
        ckpt.update({f'daclip_model.{k}': torch.empty(s) for k, s, _ in daclip['official_daclip_model']['state_dict']})
    assert any(k.startswith('daclip_model.clip.') for k in ckpt) and 'daclip_model.logit_scale' in ckpt
    assert compare_state_dicts(net.state_dict(), drop_ignored_entries(net, ckpt)) == ([], [], [])
    net.load_state_dict(ckpt, strict=True, assign=True)
    del ckpt['l2_experts.22.ending.weight']  # the unused 23rd level-2 expert is part of the layout
    with pytest.raises(RuntimeError, match='l2_experts.22.ending.weight'):
        net.load_state_dict(ckpt, strict=True, assign=True)


def test_daclip_encoder_ignores_only_the_clip_entries():
    enc = build_network(ENCODER)
    sd = enc.state_dict()
    official = {'logit_scale': torch.ones(()), 'clip.visual.proj': torch.zeros(2), 'visual.proj': torch.zeros(2), **sd}
    enc.load_state_dict(official, strict=True)
    del official['visual_control.transformer.zero_modules.0.bias']
    with pytest.raises(RuntimeError, match='zero_modules.0.bias'):
        enc.load_state_dict(official, strict=True)
    feat = enc(torch.randn(2, 3, 32, 32))
    assert feat.shape == (2, 512) and not torch.allclose(feat.norm(dim=1), torch.ones(2))  # not normalised
    with pytest.raises(ValueError, match=r'expects \(B, 3, 32, 32\)'):
        enc(torch.randn(1, 3, 48, 48))


# ---------------------------------------------------------------------------- DehazeFormer / RetinexFormer
@pytest.mark.parametrize('variant', sorted(DEHAZEFORMER_CONFIGS))
def test_dehazeformer_variants_match_their_manifests(variant):
    path = MANIFESTS / f'DehazeFormer__{variant}.json'
    if not path.is_file():
        pytest.skip('../shared is not present')
    kwargs = json.loads(path.read_text())['kwargs']
    assert {k: kwargs[k] for k in DEHAZEFORMER_CONFIGS[variant]} == DEHAZEFORMER_CONFIGS[variant]


@pytest.mark.parametrize('opt', [
    {'type': 'DehazeFormer', **DEHAZEFORMER_CONFIGS['t'], 'embed_dims': [4, 8, 8, 8, 4], 'num_heads': [1, 2, 2, 1, 1],
     'window_size': 4},
    {'type': 'RetinexFormer', 'n_feat': 4, 'stage': 2, 'num_blocks': [1, 1, 1]},
], ids=lambda o: o['type'])
def test_any_size_by_reflect_padding_and_unchanged_on_multiples_of_4(opt):
    torch.manual_seed(0)
    net = build_network(opt).eval()
    x = torch.rand(1, 3, 21, 30)
    padded = F.pad(x, (0, 2, 0, 3), mode='reflect')
    with torch.no_grad():
        out = net(x)
        assert out.shape == x.shape
        torch.testing.assert_close(out, net(padded)[:, :, :21, :30], rtol=0, atol=1e-6)
        if opt['type'] == 'RetinexFormer':  # sizes the official class accepts go through unpadded
            torch.testing.assert_close(net(padded), net.body(padded), rtol=0, atol=0)


# ---------------------------------------------------------------------------- the shared checker
@pytest.mark.slow
def test_parity_vectors_through_the_checker(shared_dir):
    """The four public vectors (the manifests: ``--all``; UniRestorer's layout is also checked above)."""
    checker = shared_dir / 'tools' / 'check_arch_vectors.py'
    run = subprocess.run([sys.executable, str(checker), '--project', str(ROOT), '--filter',
                          'DehazeFormer|RetinexFormer|DACLIPImageEncoder|UniRestorer'],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == 'arch parity: 4/4 vectors pass, 0/0 manifests pass'


# ---------------------------------------------------------------------------- inference (pipeline, preprocessing)
def test_daclip_preprocess_resizes_the_short_side_centre_crops_and_normalises():
    enc = build_network(ENCODER)
    lq = torch.rand(2, 3, 40, 64)
    x = enc.preprocess(lq)
    assert x.shape == (2, 3, 32, 32)
    resized = F.interpolate(lq, size=(32, 51), mode='bicubic', align_corners=False, antialias=True).clamp(0, 1)
    mean, std = torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711])
    expected = (resized[:, :, :, 10:42] - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)  # round((51 - 32) / 2) = 10
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)
    square = torch.rand(1, 3, 32, 32)  # already the encoder size: only normalised
    torch.testing.assert_close(enc.preprocess(square), (square - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))


def test_pipeline_routes_every_tile_like_the_whole_image(tiny):
    from basicsr.inference.pipeline import build_inference
    lq = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        whole = tiny(lq)  # encoder input from the whole image
    expert = int(tiny.last_routing.expert[0])
    assert torch.equal(tiny(lq, tiny.encoder_input(lq)).pred, whole.pred)
    seen = []
    hook = tiny.daclip_model.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    try:
        pipe = build_inference(tiny, {'tile': {'size': 24, 'overlap': 8, 'batch': 2}})
        pipe(lq)
    finally:
        hook.remove()
    assert len(seen) >= 3 and all(torch.equal(s[:1], tiny.encoder_input(lq)) for s in seen)
    assert tiny.last_routing.expert.tolist() == [expert] * len(tiny.last_routing.expert)
    record = pipe.routing_records()
    assert len(record) == 1 and record[0]['expert'] == expert
    assert record[0]['expert_type'] == type(tiny.expert(expert)).__name__ and record[0]['leaf_name']
    assert build_inference(build_network({'type': 'NAFNet', 'width': 4})).routing_records() == []


def test_instruction_masks_by_task_name(tiny):
    masks = tiny.instruction_masks('derain')
    assert masks['skip_mask'].shape == (1, 22)
    assert (~masks['skip_mask'][0]).nonzero().squeeze(1).tolist() == list(range(9, 16))
    assert (~tiny.instruction_masks('HeavyHaze')['skip_mask'][0]).nonzero().squeeze(1).tolist() == [17]
    with pytest.raises(ValueError, match="no tree node is named 'fog'"):
        tiny.instruction_masks('fog')


def test_per_image_csv_records_the_routing(tiny, tmp_path):
    from basicsr.engine.evaluator import evaluate, write_results
    from basicsr.inference.pipeline import build_inference
    g = torch.Generator().manual_seed(9)
    data = [{'lq': torch.rand(3, 24, 28, generator=g), 'gt': torch.rand(3, 24, 28, generator=g),
             'lq_path': f'img{i}.png'} for i in range(3)]
    result = evaluate(build_inference(tiny), data, {'metrics': {'psnr': {'type': 'calculate_psnr'}}},
                      torch.device('cpu'), pbar=False)
    assert list(result['mean']) == ['psnr']  # routing ids are not averaged
    for item, rec in zip(data, result['images']):
        with torch.no_grad():
            tiny(item['lq'][None])
        assert {k: rec[k] for k in ('leaf', 'level', 'expert')} == \
            {k: tiny.describe_routing()[0][k] for k in ('leaf', 'level', 'expert')}
    write_results(result, tmp_path, 'set')
    header = (tmp_path / 'set_per_image.csv').read_text().splitlines()[0].split(',')
    assert header[:1] == ['name'] and {'leaf', 'leaf_name', 'level', 'expert', 'expert_name', 'expert_type',
                                       'psnr'} <= set(header)


def test_pipeline_instruction_option(tiny):
    from basicsr.inference.pipeline import InferenceOptionError, build_inference
    lq = torch.rand(2, 3, 24, 28, generator=torch.Generator().manual_seed(10))
    pipe = build_inference(tiny, {'instruction': 'Dehaze', 'tile': {'size': 16, 'overlap': 4, 'batch': 3}})
    pipe(lq)
    assert {r['leaf_name'] for r in pipe.routing_records()} <= {'LightHaze', 'HeavyHaze'}
    assert set(tiny.last_routing.leaf.tolist()) <= {16, 17}
    with pytest.raises(InferenceOptionError, match="test.instruction: UniRestorer: no tree node is named 'fog'"):
        build_inference(tiny, {'instruction': 'fog'})
    with pytest.raises(InferenceOptionError, match='NAFNet has no instruction mode'):
        build_inference(build_network({'type': 'NAFNet', 'width': 4}), {'instruction': 'Dehaze'})


@pytest.mark.slow
def test_tlc_calibrates_every_expert(tiny):
    from basicsr.inference.pipeline import build_inference
    from basicsr.inference.tlc import local_modules
    pipe = build_inference(tiny, {'tlc': {'train_size': [1, 3, 16, 16]}})
    layers = local_modules(pipe.net)
    experts = {name.split('.')[0] + '.' + name.split('.')[1] for name, _ in layers}
    pooled = {f'l{lvl}_experts.{i}' for lvl in range(3) for i, e in enumerate(getattr(tiny, f'l{lvl}_experts'))
              if type(e).__name__ != 'RetinexFormer'}  # RetinexFormer has no global statistics
    assert experts == pooled and len(pooled) == 28  # every such expert incl. the spare, not only routed ones
    assert all(m.kernel_size is not None for _, m in layers)
    lq = torch.rand(1, 3, 40, 44, generator=torch.Generator().manual_seed(11))
    assert pipe(lq).shape == lq.shape and pipe.routing_records()[0]['expert'] == int(pipe.net.last_routing.expert[0])


@pytest.mark.slow
def test_demo_instruction_mode_and_routing_record(tmp_path):
    import yaml
    spec = {'type': 'UniRestorer', 'daclip_model': ENCODER, 'num_experts': [1, 7, 22], 'expert_overrides': TINY}
    net = build_network(spec)
    _randomise_router_(net)
    torch.save({'params': net.state_dict()}, tmp_path / 'uni.pth')
    (tmp_path / 'uni.yml').write_text(yaml.safe_dump({'name': 'uni', 'network_g': spec}))
    image = tmp_path / 'in.png'
    from basicsr.utils.img_util import tensor2img, write_image
    write_image(image, tensor2img(torch.rand(3, 36, 40, generator=torch.Generator().manual_seed(12))))
    run = subprocess.run([sys.executable, str(ROOT / 'basicsr' / 'demo.py'), '--opt', str(tmp_path / 'uni.yml'),
                          '--weights', str(tmp_path / 'uni.pth'), '--input', str(image), '--output',
                          str(tmp_path / 'out'), '--device', 'cpu', '--task', 'Lowlight'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith('image='))
    fields = dict(part.split('=', 1) for part in line.split())
    assert fields['leaf_name'] in ('LightDark', 'HeavyDark') and fields['expert_type'] in ('RetinexFormer',
                                                                                           'DehazeFormer', 'Restormer')
    assert (tmp_path / 'out' / 'in_restored.png').is_file()


def test_saving_extra_outputs_keeps_only_images(tiny):
    from basicsr.engine.evaluator import extra_outputs
    from basicsr.inference.pipeline import build_inference
    outs = extra_outputs(build_inference(tiny), torch.rand(1, 3, 20, 24))
    assert list(outs) == ['restored'] and outs['restored'].shape == (1, 3, 20, 24)


def test_tiny_vector_routes_every_sample_like_the_official_code(shared_dir):
    vec = torch.load(shared_dir / 'reference/parity/UniRestorer__tiny_small.pt', map_location='cpu', weights_only=True)
    net = build_network({'type': vec['type'], **vec['kwargs']})
    net.load_state_dict({k: v.contiguous() for k, v in vec['state_dict'].items()}, strict=True)
    net.eval()
    cases = [vec['inputs']] + [c['inputs'] for c in vec['extra_cases']]
    routing = vec['meta']['routing']
    assert len(routing) == len(cases)
    for inputs, official in zip(cases, routing):
        with torch.no_grad():
            net(*inputs['args'])
        got = [(s['leaf'], s['level'], s['expert'], s['expert_type']) for s in net.describe_routing()]
        assert got == [(s['leaf'], s['level'], s['expert'], s['expert_class']) for s in official['per_sample']]


def test_official_test_recipe_parses_with_an_instruction():
    from basicsr.utils.options import parse_options
    path = ROOT / 'options' / 'test' / 'UniRestorer' / 'UniRestorer_official.yml'
    opt = parse_options(path, overrides=['test.instruction=Derain'], is_train=False, check_paths=False, root=ROOT)
    assert opt['network_g'] == {'type': 'UniRestorer', 'num_experts': [1, 7, 22]}
    assert opt['test']['instruction'] == 'Derain' and opt['path']['strict_load_g'] is True
    with pytest.raises(ValueError, match="'test.instruction' must be str or null"):
        parse_options(path, overrides=['test.instruction=[1, 2]'], is_train=False, check_paths=False, root=ROOT)
