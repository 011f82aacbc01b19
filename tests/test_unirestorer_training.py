"""UniRestorer training pipeline on tiny data: encoder losses, the k-means tree, node data, per-node experts
(initialised from their parents, resumable), router-only training with L_dg, and parse-time checks."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from engine_helpers import make_clean_images

from basicsr.data import build_dataset
from basicsr.data.data_util import DataError
from basicsr.engine.expert_tree import plan_nodes, train_expert_tree
from basicsr.losses.degradation_loss import CentreNLLLoss, SupConLoss
from basicsr.models import build_model
from basicsr.utils.degradation_tree import kmeans_tree, label_tree, load_tree, purity, save_tree, split_counts
from basicsr.utils.options import OptionError, parse_options

# 2 degradation types x 2 severities; names <type>_<severity>
TASKS = [('noise_light', {'type': 'GaussianNoise', 'sigma': 5}),
         ('noise_heavy', {'type': 'GaussianNoise', 'sigma': 50}),
         ('blur_light', {'type': 'GaussianBlur', 'kernel_sizes': [5], 'sigma_range': [0.8, 1.0]}),
         ('blur_heavy', {'type': 'GaussianBlur', 'kernel_sizes': [9], 'sigma_range': [2.5, 3.0]})]
NAF = {'type': 'NAFNet', 'width': 4, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}
ENC = {'type': 'DegradationEncoder', 'widths': [4, 8], 'output_dim': 16, 'num_classes': 4}


def data_block(root: Path) -> dict:
    clean = make_clean_images(root / 'clean', n=3, size=32)
    tasks = [{'name': n, 'label': i, 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(clean),
              'degradation': d} for i, (n, d) in enumerate(TASKS)]
    return {'name': 'tiny4', 'type': 'MultiTaskDataset', 'tasks': tasks, 'gt_size': 16, 'phase': 'train',
            'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}


def make_tree(root: Path) -> Path:
    """Label-defined tree (root / 2 types / 4 tasks) of the tiny dataset, random 16-d centres."""
    ds = build_dataset(data_block(root))
    samples = [{'index': i, 'name': ds.sample_name(i), 'task': ds.locate(i)[0].label,
                'task_name': ds.locate(i)[0].name} for i in range(len(ds))]
    emb = np.random.default_rng(0).normal(size=(len(ds), 16))
    tree = label_tree(emb, samples, {i: n.split('_')[0] for i, (n, _) in enumerate(TASKS)})
    save_tree(tree, root / 'tree.json')
    return root / 'tree.json'


def write(root: Path, name: str, opt: dict) -> Path:
    path = root / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def expert_options(root: Path, tree: Path, level_iters=(2, 1, 1)) -> Path:
    total = sum(i * n for i, n in zip(level_iters, (1, 2, 4)))
    return write(root, 'experts', {
        'name': 'experts', 'model_type': 'ImageRestorationModel', 'num_gpu': 0, 'manual_seed': 1,
        'datasets': {'train': data_block(root)}, 'network_g': NAF,
        'path': {'experiments_root': str(root / 'experiments' / 'experts')},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False},
        'expert_tree': {'tree_file': str(tree), 'level_iters': list(level_iters)}})


def router_options(root: Path, tree: Path, encoder: Path, batch: int = 4, leaf_ce: float = 0.0) -> Path:
    return write(root, 'router', {
        'name': 'router', 'model_type': 'UniRestorerModel', 'num_gpu': 0, 'manual_seed': 1,
        'datasets': {'train': {**data_block(root), 'type': 'TreeNodeDataset', 'dataset_type': 'MultiTaskDataset',
                               'tree_file': str(tree), 'node': 0, 'batch_size_per_gpu': batch}},
        'network_g': {'type': 'UniRestorer', 'embed_dim': 16, 'daclip_model': ENC,
                      'tree': {'file': str(tree), 'arch': NAF}},
        'path': {'experiments_root': str(root / 'experiments' / 'router')},
        'unirestorer': {'tree_file': str(tree), 'experts_root': str(root / 'experiments' / 'experts'),
                        'encoder_weights': str(encoder), 'dg_weight': 0.1, 'leaf_ce_weight': leaf_ce},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'outputs': 'restored'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False}})


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)['params']


# ---------------------------------------------------------------------------------------------- losses
def test_centre_nll_matches_an_independent_loop():
    g = torch.Generator().manual_seed(0)
    mu, logvar, c = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(3))
    expected = np.mean([0.5 * sum((float(c[b, d]) - float(mu[b, d])) ** 2 / math.exp(float(logvar[b, d]))
                                  + float(logvar[b, d]) for d in range(5)) for b in range(3)])
    got = CentreNLLLoss(loss_weight=0.1)(mu, logvar, c)
    assert float(got) == pytest.approx(0.1 * expected, rel=1e-6)
    # logvar = 0 reduces it to half the squared distance
    assert float(CentreNLLLoss()(mu, torch.zeros_like(mu), c)) == pytest.approx(
        float(0.5 * ((c - mu) ** 2).sum(1).mean()), rel=1e-6)


def test_supcon_matches_its_definition_and_skips_anchors_without_positives():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(5, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2])
    z = (f / f.norm(dim=1, keepdim=True)).numpy()
    per = []
    for a in range(4):  # anchor 4 has no positive
        others = [k for k in range(5) if k != a]
        denom = sum(math.exp(z[a] @ z[k] / 0.5) for k in others)
        pos = [p for p in others if labels[p] == labels[a]]
        per.append(-np.mean([math.log(math.exp(z[a] @ z[p] / 0.5) / denom) for p in pos]))
    assert float(SupConLoss(temperature=0.5)(f, labels)) == pytest.approx(np.mean(per), rel=1e-6)
    assert float(SupConLoss()(f, torch.arange(5))) == 0.0


def test_encoder_model_trains_with_ce_and_supcon(tmp_path):
    opt = parse_options(write(tmp_path, 'enc', {
        'name': 'enc', 'model_type': 'DegradationEncoderModel', 'num_gpu': 0,
        'datasets': {'train': data_block(tmp_path)}, 'network_g': {**ENC, 'return_logits': True},
        'path': {'experiments_root': str(tmp_path / 'experiments' / 'enc')},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 1,
                  'supcon_opt': {'type': 'SupConLoss', 'temperature': 0.1, 'loss_weight': 0.5}}}), is_train=True)
    model = build_model(opt)
    ds = build_dataset(opt['datasets']['train'])
    batch = {'lq': torch.stack([ds[i]['lq'] for i in range(0, 12, 2)]), 'task': torch.tensor([0, 0, 1, 1, 2, 2])}
    losses = model.optimize_parameters([batch], 1)
    assert set(losses) == {'l_ce', 'l_supcon', 'l_total'}
    assert float(losses['l_supcon']) > 0 and float(losses['l_ce']) > 0


# ---------------------------------------------------------------------------------------------- tree
def test_split_counts_share_clusters_by_size():
    assert split_counts([50, 30, 20], 6) == [3, 2, 1]
    assert split_counts([1, 99], 4) == [1, 3]
    assert sum(split_counts([7, 5, 3, 2], 9)) == 9
    with pytest.raises(ValueError, match='at least one cluster per node'):
        split_counts([5, 5], 1)


def test_kmeans_tree_recovers_nested_blobs():
    rng = np.random.default_rng(0)
    # 3 far-apart groups, each of 2 nearby sub-blobs (labels 0..5), 20 samples each
    centres = [np.array([30.0 * g, 0, 0, 0]) + np.array([0, 6.0 * s, 0, 0]) for g in range(3) for s in range(2)]
    emb = np.concatenate([c + rng.normal(scale=0.3, size=(20, 4)) for c in centres])
    samples = [{'index': i, 'name': f's{i}', 'task': i // 20, 'task_name': f't{i // 20}', 'type': i // 40}
               for i in range(120)]
    tree = kmeans_tree(emb, [1, 3, 6], samples, seed=0)
    assert tree['levels'] == [1, 3, 6] and [n['level'] for n in tree['nodes']] == [0] + [1] * 3 + [2] * 6
    assert [r['purity'] for r in purity(tree, 'type')] == [pytest.approx(1 / 3), 1.0, 1.0]
    assert purity(tree, 'task')[2]['purity'] == 1.0
    for level in (1, 2):  # each level partitions the samples, children partition their parent
        members = sorted(i for n in tree['nodes'] if n['level'] == level for i in n['samples'])
        assert members == list(range(120))
    for n in tree['nodes'][1:]:
        assert set(n['samples']) <= set(tree['nodes'][n['parent']]['samples'])
        assert np.allclose(n['centre'], emb[n['samples']].mean(0))
    leaves = tree['nodes'][4:]
    for i, leaf in enumerate(tree['leaf_of_sample']):
        assert i in leaves[leaf]['samples']


def test_tree_file_round_trip_and_errors(tmp_path):
    tree = make_tree(tmp_path)
    loaded = load_tree(tree)
    assert loaded['levels'] == [1, 2, 4] and [n['name'] for n in loaded['nodes']][:3] == ['All', 'noise', 'blur']
    (tmp_path / 'bad.json').write_text('{"version": 1}')
    with pytest.raises(ValueError, match='missing'):
        load_tree(tmp_path / 'bad.json')
    with pytest.raises(FileNotFoundError, match='cluster_degradations'):
        load_tree(tmp_path / 'none.json')


# ---------------------------------------------------------------------------------------------- node data
def test_tree_node_dataset_selects_the_node_samples_with_leaf_labels(tmp_path):
    tree_path = make_tree(tmp_path)
    tree = load_tree(tree_path)
    block = {**data_block(tmp_path), 'type': 'TreeNodeDataset', 'dataset_type': 'MultiTaskDataset',
             'tree_file': str(tree_path)}
    full = build_dataset(data_block(tmp_path))
    for node in tree['nodes']:
        ds = build_dataset({**block, 'node': node['id']})
        assert len(ds) == len(node['samples'])
        for i, pos in enumerate(node['samples']):
            item, rec = ds[i], tree['samples'][pos]
            assert item['task'] == rec['task'] and item['leaf'] == tree['leaf_of_sample'][pos]
            assert ds.sample_name(i) == full.sample_name(rec['index'])
    noise = build_dataset({**block, 'node': 'noise'})
    assert {noise[i]['task_name'] for i in range(len(noise))} == {'noise_light', 'noise_heavy'}
    with pytest.raises(DataError, match='has no node'):
        build_dataset({**block, 'node': 9})
    other = {**block, 'node': 0, 'tasks': block['tasks'][:2]}
    with pytest.raises(DataError, match='does not match the dataset'):
        build_dataset(other)


# ---------------------------------------------------------------------------------------------- experts + router
@pytest.mark.slow
def test_experts_start_from_their_parent_resume_and_feed_a_router_that_alone_learns(tmp_path):
    tree = make_tree(tmp_path)
    opt = parse_options(expert_options(tmp_path, tree), is_train=True)
    stages = plan_nodes(opt)
    assert [s.opt['datasets']['train']['node'] for s in stages] == list(range(7))
    assert stages[0].opt['path'].get('pretrain_network_g') is None
    assert [s.opt['path']['pretrain_network_g'] for s in stages[1:]] == \
        [str(stages[p].weights) for p in (0, 0, 1, 1, 2, 2)]
    assert [s.opt['train']['total_iter'] for s in stages] == [2, 1, 1, 1, 1, 1, 1]
    runs = train_expert_tree(opt)
    assert not any(r.skipped for r in runs)
    # node 4 (leaf under node 1) starts from node 1's final weights
    parent = weights(stages[1].weights)
    start = build_model(stages[4].opt).net_g.state_dict()
    assert all(torch.equal(start[k], parent[k]) for k in parent)
    assert not all(torch.equal(weights(stages[4].weights)[k], parent[k]) for k in parent)  # and then trained
    assert all(r.skipped for r in train_expert_tree(opt))  # the same command again: every node finished

    from basicsr.archs import build_network
    encoder = build_network({**ENC})
    torch.save({'params': encoder.state_dict()}, tmp_path / 'encoder.pth')
    ropt = parse_options(router_options(tmp_path, tree, tmp_path / 'encoder.pth', leaf_ce=0.5), is_train=True)
    model = build_model(ropt)
    net = model.net_g
    for k in range(7):  # experts and encoder loaded from their runs
        sd = net.expert(k).state_dict()
        assert all(torch.equal(sd[n], v) for n, v in weights(stages[k].weights).items())
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    ds = build_dataset(ropt['datasets']['train'])
    items = [ds[i] for i in range(0, len(ds), 3)]
    batch = {k: (torch.stack([it[k] for it in items]) if k in ('lq', 'gt') else torch.tensor([it[k] for it in items]))
             for k in ('lq', 'gt', 'leaf')}
    losses = model.optimize_parameters([batch], 1)
    assert set(losses) == {'l_pixel', 'l_dg', 'l_aux', 'l_leaf_ce', 'l_total'}
    centres = torch.tensor([n['centre'] for n in load_tree(tree)['nodes'][3:]], dtype=torch.float32)
    out = {k: v.detach() for k, v in model.output.items()}
    assert float(losses['l_dg']) == pytest.approx(
        float(CentreNLLLoss(0.1)(out['mu'], out['logvar'], centres[batch['leaf']])), rel=1e-5)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.split('.')[0] in ('mu', 'sigma', 'lf_gate', 'layer_gate') for n in changed)
    assert {n.split('.')[0] for n, p in net.named_parameters() if p.requires_grad} == \
        {'mu', 'sigma', 'lf_gate', 'layer_gate'}


def test_router_training_refuses_batches_of_one_at_parse_time(tmp_path):
    tree = make_tree(tmp_path)
    with pytest.raises(OptionError, match='BatchNorm1d'):
        parse_options(router_options(tmp_path, tree, tmp_path / 'encoder.pth', batch=1), is_train=True,
                      check_paths=False)


def test_expert_tree_checks_iterations_against_the_tree(tmp_path):
    tree = make_tree(tmp_path)
    path = expert_options(tmp_path, tree, level_iters=(2, 1))
    with pytest.raises(OptionError, match='one positive iteration count per tree level'):
        parse_options(path, is_train=True)
    opt = yaml.safe_load(expert_options(tmp_path, tree).read_text())
    opt['train']['total_iter'] = 5
    with pytest.raises(OptionError, match=r"must equal the sum of the node runs \(8"):
        parse_options(write(tmp_path, 'bad', opt), is_train=True)


def test_lora_experts_keep_the_root_as_their_frozen_base(tmp_path):
    from basicsr.archs.lora_restormer_arch import LoRARestormer
    from basicsr.engine.expert_tree import lora_spec
    tree = make_tree(tmp_path)
    root = {'type': 'Restormer', 'dim': 4, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
            'heads': [1, 1, 1, 1], 'ffn_expansion_factor': 2.0}
    opt = yaml.safe_load(expert_options(tmp_path, tree, level_iters=(2, 1, 1)).read_text())
    opt['network_g'] = root
    opt['expert_tree']['lora'] = {'r': 2, 'alpha': 4}
    opt = parse_options(write(tmp_path, 'lora', opt), is_train=True)
    runs = train_expert_tree(opt)
    stages = [r.stage for r in runs]
    assert stages[1].opt['network_g'] == lora_spec(root, {'r': 2, 'alpha': 4})
    assert stages[1].opt['path']['pretrain_network_g'].endswith('node1/init_from_root.pth')
    assert stages[3].opt['path']['pretrain_network_g'] == str(stages[1].weights)
    base = weights(stages[0].weights)
    for k in (1, 2, 3, 6):
        sd = weights(stages[k].weights)
        convs = [n for n in sd if n.endswith('.conv.weight')]
        assert convs and all(torch.equal(sd[n], base[n.replace('.conv.', '.')]) for n in convs)  # frozen base
        assert any(float(sd[n].abs().max()) > 0 for n in sd if n.endswith('lora_B'))  # the update trained
    net = build_model(stages[4].opt).net_g
    assert isinstance(net, LoRARestormer)
    opt_bad = yaml.safe_load((tmp_path / 'lora.yml').read_text())
    opt_bad['network_g'] = NAF
    with pytest.raises(OptionError, match='needs a Restormer root expert'):
        parse_options(write(tmp_path, 'bad_lora', opt_bad), is_train=True)
