"""UniRestorer stage 2: cluster the degradation embeddings of every training LQ image into a tree file.

    python scripts/cluster_degradations.py -opt options/train/UniRestorer/demo/encoder.yml \
        --weights experiments/UniRestorer_demo_encoder/models/net_g_latest.pth --levels 1 3 6 \
        --out experiments/UniRestorer_demo_tree

The option file gives the encoder (``network_g``, built with ``return_logits: false``) and the training data
(``datasets.train``, a labelled dataset such as a MultiTaskDataset of degradation type x severity tasks: the
expert and router runs must use the same dataset block). Every training sample (its epoch-0 crop and
degradation) is embedded by the frozen encoder; then either recursive k-means with ``--levels`` nodes per
level (``1 7 22``, ``1 4 8``, ...) or, with ``--label-tree``, the tree root -> degradation type (task name up
to ``--group-sep``) -> task. Outputs in ``--out``: ``tree.json`` (basicsr/utils/degradation_tree.py),
``clusters.png`` (2-D PCA of the embeddings coloured by true task, leaf centres marked and numbered) and
``purity.md`` (per level: purity against the task and against the degradation type; per leaf: its tasks).
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.degradation_tree import kmeans_tree, label_tree, purity, save_tree  # noqa: E402
from basicsr.utils.options import parse_options_or_exit  # noqa: E402

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@torch.no_grad()
def embed_dataset(encoder: torch.nn.Module, dataset: Any, batch: int = 32) -> tuple:
    """``(embeddings (N, D), sample records)`` of every sample of ``dataset`` (its epoch-0 draw)."""
    embs, records, pending = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if 'task' not in item:
            raise KeyError(f"sample {i} has no 'task' label: cluster a labelled dataset (MultiTaskDataset)")
        records.append({'index': i, 'name': dataset.sample_name(i), 'task': int(item['task']),
                        'task_name': str(item.get('task_name', item['task']))})
        pending.append(item['lq'])
        if len(pending) == batch or i == len(dataset) - 1:
            x = torch.stack(pending)
            pre = getattr(encoder, 'preprocess', None)
            embs.append(encoder(pre(x) if pre else x).float().numpy())
            pending = []
    return np.concatenate(embs), records


def pca2(x: np.ndarray) -> np.ndarray:
    """2-D principal-component projection of ``x`` (N, D)."""
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:2].T


def draw_clusters(emb: np.ndarray, tree: Dict[str, Any], path: Path, size: int = 560) -> None:
    """PNG: PCA of the embeddings, dots coloured by true task (legend), leaf centres as numbered crosses."""
    leaves = [n for n in tree['nodes'] if n['level'] == len(tree['levels']) - 1]
    pts = pca2(np.concatenate([emb, np.asarray([n['centre'] for n in leaves])]))
    lo, hi = pts.min(0), pts.max(0)
    margin, legend_w = 30, 170
    xy = margin + (pts - lo) / np.maximum(hi - lo, 1e-12) * (size - 2 * margin)
    xy[:, 1] = size - xy[:, 1]
    img = np.full((size, size + legend_w, 3), 255, np.uint8)
    names = {s['task']: s['task_name'] for s in tree['samples']}
    colour = {t: _PALETTE[i % len(_PALETTE)][::-1] for i, t in enumerate(sorted(names))}
    for (x, y), s in zip(xy[:len(emb)], tree['samples']):
        cv2.circle(img, (int(x), int(y)), 3, colour[s['task']], -1, cv2.LINE_AA)
    for j, (x, y) in enumerate(xy[len(emb):]):
        cv2.drawMarker(img, (int(x), int(y)), (0, 0, 0), cv2.MARKER_CROSS, 14, 2)
        cv2.putText(img, str(j), (int(x) + 6, int(y) - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, t in enumerate(sorted(names)):
        cv2.circle(img, (size + 12, 24 + 20 * i), 5, colour[t], -1, cv2.LINE_AA)
        cv2.putText(img, names[t], (size + 24, 29 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, 'PCA of embeddings; + = leaf centre', (8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f'could not write {path}')


def purity_report(tree: Dict[str, Any]) -> str:
    """Markdown: purity per level (vs task, vs degradation type) and the task counts of every leaf."""
    by_task = purity(tree, 'task')
    by_type = purity(tree, 'type')
    lines = ['| level | clusters | purity (task) | purity (type) |', '|---|---|---|---|']
    lines += [f"| {a['level']} | {a['clusters']} | {a['purity']:.3f} | {b['purity']:.3f} |"
              for a, b in zip(by_task, by_type)]
    lines += ['', '| leaf | node | parent | samples | tasks |', '|---|---|---|---|---|']
    leaves = [n for n in tree['nodes'] if n['level'] == len(tree['levels']) - 1]
    for j, n in enumerate(leaves):
        counts = Counter(tree['samples'][i]['task_name'] for i in n['samples'])
        lines.append(f"| {j} | {n['id']} | {n['parent']} | {len(n['samples'])} | "
                     + ', '.join(f'{k} {v}' for k, v in counts.most_common()) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: List[str] = None) -> Dict[str, Any]:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('-opt', '--opt', required=True, help='option file: network_g = encoder, datasets.train')
    parser.add_argument('--weights', required=True, help='the trained encoder weights (params)')
    parser.add_argument('--levels', type=int, nargs='+', default=[1, 7, 22], help='nodes per level (k-means)')
    parser.add_argument('--label-tree', action='store_true', help='tree from the labels: root / type / task')
    parser.add_argument('--group-sep', default='_', help='task name = <type><sep><severity> (default _)')
    parser.add_argument('--seed', type=int, default=0, help='k-means seed')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    opt = parse_options_or_exit(args.opt, args.set, is_train=True)
    from basicsr.archs import build_network
    from basicsr.archs.pretrained import load_pretrained
    from basicsr.data import build_dataset
    torch.manual_seed(0)
    encoder = build_network({**opt['network_g'], 'return_logits': False})
    load_pretrained(encoder, args.weights, key='params', strict=True)
    encoder.eval()
    dataset = build_dataset(opt['datasets']['train'])
    dataset.set_seed(int(opt.get('manual_seed') or 0))
    emb, samples = embed_dataset(encoder, dataset)
    for s in samples:
        s['type'] = s['task_name'].rsplit(args.group_sep, 1)[0]
    if args.label_tree:
        tree = label_tree(emb, samples, {s['task']: s['type'] for s in samples})
    else:
        tree = kmeans_tree(emb, args.levels, samples, seed=args.seed)
    out = Path(args.out)
    save_tree(tree, out / 'tree.json')
    draw_clusters(emb, tree, out / 'clusters.png')
    report = purity_report(tree)
    (out / 'purity.md').write_text(report)
    print(report)
    print(f'tree with levels {tree["levels"]} of {len(samples)} samples written to {out / "tree.json"}')
    return tree


if __name__ == '__main__':
    sys.exit(run_cli(main))
