"""UniRestorer's degradation tree: hierarchical k-means of degradation embeddings, stored as a JSON tree file.

The tree file (written by ``scripts/cluster_degradations.py``, read by the expert and router training and by
``UniRestorer(tree={file: ...})``) holds::

    {"version": 1, "levels": [1, 3, 6], "embed_dim": 512, "method": "kmeans" | "labels",
     "samples": [{"index": dataset index, "name": sample name, "task": label, "task_name": ...}, ...],
     "nodes": [{"id", "level", "parent", "name", "centre": [embed_dim floats], "samples": [sample positions]}],
     "leaf_of_sample": [leaf label per sample]}

Nodes are listed level by level (root first), so a node's ``id`` is its UniRestorer pool id; leaves are the
last-level nodes and a leaf label is a leaf's position among them (the row of UniRestorer's routing table).
A node's ``samples`` are positions in ``samples``; every level partitions all samples; a node's centre is the
mean embedding of its samples (the k-means centre).

Recursive k-means (the paper): level 1 clusters all samples into ``levels[1]`` groups; level l+1 runs k-means
inside every level-l node, giving each node a share of the ``levels[l+1]`` clusters proportional to its size
(at least one, at most its sample count; largest remainders first). k-means is k-means++ seeded, Lloyd
iterations, best of ``restarts`` by inertia, all from one numpy generator (reproducible).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

TREE_VERSION = 1


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 100,
           restarts: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """``(labels (N,), centres (k, D))`` of k-means on ``x`` (N, D) float; k <= N; best of ``restarts``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f'kmeans: need 1 <= k <= number of samples, got k={k}, {n} samples')
    best: Optional[Tuple[float, np.ndarray, np.ndarray]] = None
    for _ in range(restarts if k > 1 else 1):
        centres = x[[int(rng.integers(n))]]
        while len(centres) < k:  # k-means++ seeding
            d2 = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres = np.concatenate([centres, x[[int(rng.choice(n, p=p))]]])
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(iters):
            labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            new = np.stack([x[labels == j].mean(0) if np.any(labels == j) else centres[j] for j in range(k)])
            if np.allclose(new, centres):
                break
            centres = new
        labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        inertia = float(((x - centres[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    return best[1], best[2]


def split_counts(sizes: Sequence[int], total: int) -> List[int]:
    """Children per node: ``total`` shared in proportion to ``sizes``, each in [1, size] (largest remainders)."""
    if not len(sizes) <= total <= sum(sizes):
        raise ValueError(f'cannot split {len(sizes)} nodes with {list(sizes)} samples into {total} clusters: '
                         f'need at least one cluster per node and at most one per sample')
    share = np.asarray(sizes, dtype=np.float64) * total / sum(sizes)
    counts = np.clip(np.floor(share).astype(int), 1, sizes)
    order = np.argsort(-(share - np.floor(share)), kind='stable')
    while counts.sum() < total:
        for i in order:
            if counts.sum() < total and counts[i] < sizes[i]:
                counts[i] += 1
    while counts.sum() > total:
        i = int(np.argmax(counts - share))
        counts[i] -= 1
    return counts.tolist()


def _node(level: int, parent: Optional[int], name: str, members: np.ndarray, emb: np.ndarray) -> Dict[str, Any]:
    return {'level': level, 'parent': parent, 'name': name, 'centre': emb[members].mean(0).tolist(),
            'samples': sorted(int(i) for i in members)}


def _finish(nodes: List[Dict[str, Any]], levels: List[int], samples: List[Dict[str, Any]], emb: np.ndarray,
            method: str) -> Dict[str, Any]:
    for i, node in enumerate(nodes):
        node['id'] = i
    leaves = [n for n in nodes if n['level'] == len(levels) - 1]
    leaf_of = np.full(len(samples), -1, dtype=np.int64)
    for j, leaf in enumerate(leaves):
        leaf_of[leaf['samples']] = j
    return {'version': TREE_VERSION, 'levels': levels, 'embed_dim': int(emb.shape[1]), 'method': method,
            'samples': samples, 'nodes': nodes, 'leaf_of_sample': leaf_of.tolist()}


def kmeans_tree(emb: np.ndarray, levels: Sequence[int], samples: List[Dict[str, Any]], seed: int = 0,
                restarts: int = 4) -> Dict[str, Any]:
    """Recursive k-means tree of embeddings ``emb`` (N, D) with ``levels`` nodes per level (first must be 1)."""
    levels = [int(v) for v in levels]
    if not levels or levels[0] != 1 or any(b < a for a, b in zip(levels, levels[1:])):
        raise ValueError(f'levels must start with 1 (the root) and never decrease, got {levels}')
    rng = np.random.default_rng(seed)
    emb = np.asarray(emb, dtype=np.float64)
    nodes = [_node(0, None, 'L0', np.arange(len(emb)), emb)]
    current = [0]
    for level, total in enumerate(levels[1:], start=1):
        counts = split_counts([len(nodes[p]['samples']) for p in current], total)
        nxt = []
        for parent, k in zip(current, counts):
            members = np.asarray(nodes[parent]['samples'])
            labels, _ = kmeans(emb[members], k, rng, restarts=restarts)
            for j in range(k):
                nodes.append(_node(level, parent, f'L{level}_{len(nxt)}', members[labels == j], emb))
                nxt.append(len(nodes) - 1)
        current = nxt
    return _finish(nodes, levels, samples, emb, 'kmeans')


def label_tree(emb: np.ndarray, samples: List[Dict[str, Any]], group_of: Mapping[int, str]) -> Dict[str, Any]:
    """Label-defined 3-level tree: root, one node per group (e.g. degradation type), one leaf per task label.

    ``group_of`` maps each task label to its group name; nodes are named by group and by task name."""
    emb = np.asarray(emb, dtype=np.float64)
    tasks = np.asarray([s['task'] for s in samples])
    groups = list(dict.fromkeys(group_of[int(t)] for t in sorted(set(tasks.tolist()))))
    nodes = [_node(0, None, 'All', np.arange(len(emb)), emb)]
    for g in groups:
        members = np.flatnonzero([group_of[int(t)] == g for t in tasks])
        nodes.append(_node(1, 0, g, members, emb))
    for gi, g in enumerate(groups):
        for t in sorted({int(t) for t in tasks if group_of[int(t)] == g}):
            name = next(s['task_name'] for s in samples if s['task'] == t)
            nodes.append(_node(2, 1 + gi, str(name), np.flatnonzero(tasks == t), emb))
    return _finish(nodes, [1, len(groups), len(nodes) - 1 - len(groups)], samples, emb, 'labels')


def save_tree(tree: Mapping[str, Any], path: Union[str, Path]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(tree))


def load_tree(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a tree file (errors name the file and what is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'tree file {path} does not exist; make it with scripts/cluster_degradations.py')
    try:
        tree = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f'tree file {path} is not valid JSON: {exc}') from exc
    missing = {'version', 'levels', 'samples', 'nodes', 'leaf_of_sample'} - set(tree)
    if missing or tree.get('version') != TREE_VERSION:
        raise ValueError(f'tree file {path}: expected a version-{TREE_VERSION} tree with keys version, levels, '
                         f'samples, nodes, leaf_of_sample; missing {sorted(missing)}, version {tree.get("version")}')
    n = len(tree['samples'])
    for node in tree['nodes']:
        if any(not 0 <= s < n for s in node['samples']):
            raise ValueError(f"tree file {path}: node {node['id']} lists samples outside 0..{n - 1}")
    return tree


def tree_nodes(tree: Mapping[str, Any], arch: Union[Any, Sequence[Any]]) -> List[Dict[str, Any]]:
    """UniRestorer node list ``{level, parent, arch, name}`` of a tree; ``arch`` is one expert (a name of
    ``EXPERT_SPECS`` or a network spec) for every node, or a list with one per level."""
    num_levels = len(tree['levels'])
    per_level = list(arch) if isinstance(arch, (list, tuple)) else [arch] * num_levels
    if len(per_level) != num_levels:
        raise ValueError(f'tree arch: give one expert for every node or one per level ({num_levels}), got '
                         f'{len(per_level)}')
    return [{'level': n['level'], 'parent': n['parent'], 'arch': per_level[n['level']], 'name': n['name']}
            for n in tree['nodes']]


def purity(tree: Mapping[str, Any], key: str = 'task') -> List[Dict[str, Any]]:
    """Per level: ``{'level', 'clusters', 'purity'}`` where purity is the fraction of samples whose cluster's
    majority value of ``samples[i][key]`` is their own (1 = every cluster holds one true class)."""
    truth = [s[key] for s in tree['samples']]
    rows = []
    for level in range(len(tree['levels'])):
        nodes = [n for n in tree['nodes'] if n['level'] == level]
        hit = 0
        for n in nodes:
            values = [truth[i] for i in n['samples']]
            hit += max(values.count(v) for v in set(values)) if values else 0
        rows.append({'level': level, 'clusters': len(nodes), 'purity': hit / max(1, len(truth))})
    return rows
