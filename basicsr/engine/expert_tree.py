"""UniRestorer expert training: one expert per node of a degradation tree, each on its node's data.

One option file describes every expert: an ordinary training file (``network_g`` is the expert,
``datasets.train`` the dataset the tree was clustered from) plus::

    expert_tree:
      tree_file: experiments/demo_tree/tree.json   # scripts/cluster_degradations.py
      level_iters: [400, 200, 200]                 # iterations of each node's run, per level
      lora: {r: 8, alpha: 16}                      # optional: LoRA experts on the root

Node k (tree order: root, then level by level) trains on its samples (a :class:`TreeNodeDataset` around
``datasets.train``) for ``level_iters[level]`` iterations, as a normal resumable run in
``<experiments_root>/node<k>`` with a new optimiser and scheduler (cosine periods: the node's length);
every node but the root is initialised from its parent's final weights (``models/net_g_latest.*``), as the
paper's coarse-to-fine experts. With ``lora`` (the paper's LoRA variant) the root is a ``Restormer`` and every
other node a ``LoRARestormer`` of the same configuration (rank ``r``, scale ``alpha``, every level) whose
frozen base weights are the root's: level-1 nodes start from ``node<k>/init_from_root.pth`` (written when the
node starts: the root's weights plus a zero LoRA update), deeper nodes from their parent; the UniRestorer then
uses ``tree: {file: ..., arch: [root spec, LoRA spec, LoRA spec]}`` (:func:`lora_spec`). ``train.total_iter`` must equal the sum of all node runs (the whole budget).
Running the command again skips finished nodes and resumes the unfinished one, as sequential learning
(:func:`basicsr.engine.sequential.run_stages`). The router training (``UniRestorerModel``) reads the experts
from these folders.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, List

from basicsr.engine.sequential import Stage, StageRun, raise_option_problems, run_stages, stage_options


LORA_INIT = 'init_from_root.pth'


def node_folder(root: Path, node_id: int) -> Path:
    """Run folder of node ``node_id`` of an expert-tree run rooted at ``root``."""
    return Path(root) / f'node{node_id}'


def lora_spec(root: Dict[str, Any], lora: Dict[str, Any]) -> Dict[str, Any]:
    """The LoRARestormer spec of a non-root expert: the root Restormer's kwargs plus rank / scale per level."""
    levels = len(root.get('num_blocks', (4, 6, 6, 8)))
    kwargs = {k: v for k, v in root.items() if k not in ('type', 'global_residual')}
    return {**kwargs, 'type': 'LoRARestormer', 'r': [int(lora.get('r', 8))] * levels,
            'lora_alpha': [float(lora.get('alpha', 16))] * levels}


def _lora_problems(opt: Dict[str, Any], lora: Any) -> List[str]:
    if lora is None:
        return []
    if not isinstance(lora, dict) or set(lora) - {'r', 'alpha'}:
        return [f"'expert_tree.lora' must be {{r: rank, alpha: scale}}, got {lora!r}"]
    if (opt.get('network_g') or {}).get('type') != 'Restormer':
        return [f"'expert_tree.lora' needs a Restormer root expert ('network_g.type' is "
                f"{(opt.get('network_g') or {}).get('type')!r}): the other experts are LoRARestormers on it"]
    return []


def expert_tree_problems(opt: Dict[str, Any], check_paths: bool = True) -> List[str]:
    """Problems of the ``expert_tree`` block against the tree file and the rest of ``opt``.

    With ``check_paths`` false (the file is checked before the clustering step has written its tree) a
    missing tree file is not a problem; the checks that need the tree are then left for the run itself."""
    from basicsr.utils.degradation_tree import load_tree
    block = opt.get('expert_tree')
    if not isinstance(block, dict):
        return []
    if opt.get('sequential'):
        return ["'expert_tree' and 'sequential' cannot be combined"]
    try:
        tree = load_tree(block.get('tree_file', ''))
    except FileNotFoundError as exc:
        return [f"'expert_tree.tree_file': {exc}"] if check_paths else _lora_problems(opt, block.get('lora'))
    except ValueError as exc:
        return [f"'expert_tree.tree_file': {exc}"]
    iters = block.get('level_iters')
    levels = tree['levels']
    if not isinstance(iters, list) or len(iters) != len(levels) or \
            not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in iters):
        return [f"'expert_tree.level_iters' must list one positive iteration count per tree level "
                f"({len(levels)} levels: {levels}), got {iters!r}"]
    total = sum(iters[n['level']] for n in tree['nodes'])
    errors = _lora_problems(opt, block.get('lora'))
    if (opt.get('train') or {}).get('total_iter') != total:
        errors.append(f"'train.total_iter' ({(opt.get('train') or {}).get('total_iter')}) must equal the sum of "
                      f"the node runs ({total} = level_iters {iters} x nodes per level {levels})")
    if (opt.get('path') or {}).get('resume_state'):
        errors.append("'path.resume_state' cannot be used with 'expert_tree': each node resumes from its own "
                      'folder when the same command is run again')
    return errors


def plan_nodes(opt: Dict[str, Any]) -> List[Stage]:
    """One :class:`Stage` per tree node (``index`` = node id, ``task`` = node name), in tree order."""
    from basicsr.utils.degradation_tree import load_tree
    raise_option_problems(opt, expert_tree_problems(opt))
    block = opt['expert_tree']
    tree = load_tree(block['tree_file'])
    root = Path(opt['path']['experiments_root'])
    train_ds = opt['datasets']['train']
    stages: List[Stage] = []
    for node in tree['nodes']:
        iters = int(block['level_iters'][node['level']])
        parent = None if node['parent'] is None else stages[node['parent']]
        so = stage_options(opt, 'expert_tree', node_folder(root, node['id']), f"{opt['name']}_node{node['id']}",
                           iters, [iters], parent)
        if parent is not None and block.get('lora'):
            so['network_g'] = lora_spec(opt['network_g'], block['lora'])
            if node['level'] == 1:
                so['path']['pretrain_network_g'] = str(node_folder(root, node['id']) / LORA_INIT)
        so['datasets']['train'] = {**copy.deepcopy(train_ds), 'type': 'TreeNodeDataset',
                                   'dataset_type': train_ds['type'], 'tree_file': block['tree_file'],
                                   'node': node['id']}
        stages.append(Stage(node['id'], node['name'], [node['name']], so))
    return stages


def train_expert_tree(opt: Dict[str, Any]) -> List[StageRun]:
    """Train (or finish) the expert of every tree node in order; returns what happened to each."""
    stages = plan_nodes(opt)
    prepare = _lora_init_writer(stages[0]) if opt['expert_tree'].get('lora') else None
    return run_stages(opt, stages, lambda s: f'expert {s.index}/{len(stages) - 1} ({s.task})', prepare)


def _lora_init_writer(root_stage: Stage) -> Callable[[Stage], None]:
    """``prepare`` hook: a level-1 LoRA node's initial weights (the root's plus a zero update), written once."""
    def prepare(stage: Stage) -> None:
        init = Path(stage.opt['path'].get('pretrain_network_g') or '')
        if init.name != LORA_INIT or init.is_file():
            return
        import torch

        from basicsr.archs import build_network
        from basicsr.archs.lora_restormer_arch import lora_state_from_base
        from basicsr.archs.pretrained import read_state_dict
        net = build_network(stage.opt['network_g'])
        base = read_state_dict(root_stage.weights, key='params')
        init.parent.mkdir(parents=True, exist_ok=True)
        torch.save({'params': lora_state_from_base(net, base)}, init)
    return prepare
