"""Evaluate a trained UniRestorer against its own experts under oracle routing, task by task.

    python scripts/eval_unirestorer_tree.py -opt options/test/UniRestorer/demo_eval.yml

The option file gives ``network_g`` (the UniRestorer, tree from the tree file), ``path.pretrain_network_g``
(the router run's weights, which hold the experts and the encoder too), ``unirestorer.tree_file`` and test
sets with task labels (MultiTaskDataset blocks whose task labels are those the tree was clustered from).
For every image of task t, PSNR (RGB, 8-bit) of:

- ``root``: the root expert alone;
- ``level-1 oracle``: the level-1 ancestor of t's oracle leaf; ``level-2 oracle``: t's oracle leaf, where the
  oracle leaf of t is the leaf holding most training samples of task t (for a label-defined tree: t's leaf);
- ``UniRestorer``: the network's own routing (eval mode: clean gate logits, top-1 leaf x top-1 level).

Also, per task: leaf accuracy (the routed leaf is t's oracle leaf), type accuracy (the routed leaf's level-1
ancestor is the oracle's) and how often each level was picked. Writes ``unirestorer_eval.md`` and
``unirestorer_eval.json`` under ``results/<name>/`` and prints the table.
"""
from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.utils.cli import option_file_args, run_cli  # noqa: E402
from basicsr.utils.options import OptionError  # noqa: E402


def oracle_leaves(tree: Dict[str, Any]) -> Dict[int, int]:
    """Task label -> leaf label holding most of that task's training samples."""
    votes: Dict[int, Counter] = defaultdict(Counter)
    for s, leaf in zip(tree['samples'], tree['leaf_of_sample']):
        votes[s['task']][leaf] += 1
    return {t: c.most_common(1)[0][0] for t, c in votes.items()}


def psnr(out: torch.Tensor, gt: torch.Tensor) -> float:
    from basicsr.metrics.psnr_ssim import calculate_psnr
    from basicsr.utils.img_util import tensor2img
    return calculate_psnr(tensor2img(out), tensor2img(gt))


def format_table(rows: List[Dict[str, Any]], num_levels: int) -> str:
    head = ['task', 'images', 'input', 'root', 'level-1 oracle', 'level-2 oracle', 'UniRestorer', 'leaf acc',
            'type acc', 'levels picked (' + '/'.join(f'L{i}' for i in range(num_levels)) + ')']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        lines.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['root']:.2f} | {r['oracle_l1']:.2f} | "
                     f"{r['oracle_l2']:.2f} | {r['routed']:.2f} | {r['leaf_acc']:.2f} | {r['type_acc']:.2f} | "
                     + '/'.join(str(r['levels'].get(i, 0)) for i in range(num_levels)) + ' |')
    return '\n'.join(lines) + '\n'


@torch.no_grad()
def main(argv=None) -> List[Dict[str, Any]]:
    opt_path, opt = option_file_args(__doc__, argv)
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    from basicsr.utils.degradation_tree import load_tree
    if not isinstance(opt.get('unirestorer'), dict):
        raise OptionError(f"option file {opt_path}: 'unirestorer.tree_file' is required (the oracle routing)")
    tree = load_tree(opt['unirestorer']['tree_file'])
    oracle = oracle_leaves(tree)
    net = build_model(opt).inference_network()
    table = net.routing_table.cpu()
    rows: List[Dict[str, Any]] = []
    for key, ds_opt in (opt.get('datasets') or {}).items():
        dataset = build_dataset(ds_opt)
        per_task: Dict[str, Dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for i in range(len(dataset)):
            item = dataset[i]
            lq, gt, task = item['lq'][None], item['gt'][None], int(item['task'])
            if task not in oracle:
                raise OptionError(f"datasets.{key}: task label {task} has no training samples in the tree")
            leaf = oracle[task]
            acc = per_task[str(item.get('task_name', task))]
            acc['input'].append(psnr(lq, gt))
            acc['root'].append(psnr(net.expert(int(table[leaf, 0]))(lq), gt))
            acc['oracle_l1'].append(psnr(net.expert(int(table[leaf, 1]))(lq), gt))
            acc['oracle_l2'].append(psnr(net.expert(int(table[leaf, -1]))(lq), gt))
            acc['routed'].append(psnr(net(lq)['restored'], gt))
            routing = net.last_routing
            acc['leaf_acc'].append(float(int(routing.leaf) == leaf))
            acc['type_acc'].append(float(int(table[int(routing.leaf), 1]) == int(table[leaf, 1])))
            acc['level'].append(int(routing.level))
        for task, acc in per_task.items():
            rows.append({'task': task, 'images': len(acc['input']),
                         **{k: float(np.mean(acc[k])) for k in ('input', 'root', 'oracle_l1', 'oracle_l2', 'routed',
                                                                'leaf_acc', 'type_acc')},
                         'levels': dict(Counter(acc['level']))})
    n = sum(r['images'] for r in rows)
    mean = {'task': 'mean', 'images': n, 'levels': dict(sum((Counter(r['levels']) for r in rows), Counter()))}
    for k in ('input', 'root', 'oracle_l1', 'oracle_l2', 'routed', 'leaf_acc', 'type_acc'):
        mean[k] = float(np.mean([r[k] for r in rows]))
    rows.append(mean)
    text = format_table(rows, len(tree['levels']))
    out = Path(opt['path']['results_root'])
    out.mkdir(parents=True, exist_ok=True)
    (out / 'unirestorer_eval.md').write_text(text)
    (out / 'unirestorer_eval.json').write_text(json.dumps(rows, indent=1))
    print(text)
    return rows


if __name__ == '__main__':
    sys.exit(run_cli(main))
