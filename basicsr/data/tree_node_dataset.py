"""The training samples of one node of a UniRestorer degradation tree (expert and router training).

::

    type: TreeNodeDataset
    tree_file: experiments/tree/tree.json   # scripts/cluster_degradations.py
    node: 2                                 # node id (pool id) or node name; 0 = the root = every sample
    dataset_type: MultiTaskDataset          # the type of the dataset the tree was made from
    tasks: [...]                            # ... and its options, as they were

Every key besides ``tree_file``, ``node`` and ``dataset_type`` belongs to the inner dataset, so an option file
turns its training set into a node's subset by setting ``type: TreeNodeDataset`` and adding those three.
The inner dataset must be the one the tree was clustered from (checked: same sample names at the recorded
indices). Samples are the inner dataset's plus ``'leaf'`` (the sample's leaf label, the
target of UniRestorer's centre loss) and ``'node'``.
"""
from __future__ import annotations

from typing import Any, Dict, Union

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError
from basicsr.utils.degradation_tree import load_tree
from basicsr.utils.registry import DATASET_REGISTRY

_OWN_KEYS = ('type', 'tree_file', 'node', 'dataset_type')


def find_node(tree: Dict[str, Any], node: Union[int, str], where: str) -> Dict[str, Any]:
    """The node of ``tree`` with id ``node`` (int) or name ``node`` (str)."""
    for n in tree['nodes']:
        if (isinstance(node, int) and not isinstance(node, bool) and n['id'] == node) or n['name'] == node:
            return n
    raise DataError(f"{where}: the tree has no node {node!r}; ids 0..{len(tree['nodes']) - 1}, names "
                    f"{[n['name'] for n in tree['nodes']]}")


@DATASET_REGISTRY.register()
class TreeNodeDataset(RestorationDataset):
    """Subset of the inner dataset listed by node ``node`` of the tree file ``tree_file``; see the module docstring."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        from basicsr.data import build_dataset
        for key in ('tree_file', 'node', 'dataset_type'):
            if opt.get(key) is None:
                raise DataError(f"{self.owner}: option '{key}' is required")
        try:
            tree = load_tree(opt['tree_file'])
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"{self.owner}: option 'tree_file': {exc}") from exc
        self.node = find_node(tree, opt['node'], f"{self.owner}: option 'node'")
        inner = {**{k: v for k, v in opt.items() if k not in _OWN_KEYS}, 'type': opt['dataset_type']}
        self.inner = build_dataset(inner)
        self._state = self.inner._state  # seed, epoch and patch size set on this dataset reach the inner one
        self.excluded += self.inner.excluded
        samples = tree['samples']
        for pos in self.node['samples']:
            rec = samples[pos]
            if rec['index'] >= len(self.inner) or self.inner.sample_name(rec['index']) != rec['name']:
                raise DataError(f"{self.owner}: tree file {opt['tree_file']} does not match the dataset: its "
                                f"sample {pos} is '{rec['name']}' at index {rec['index']}, the dataset has "
                                f"{len(self.inner)} samples; cluster this dataset again")
        self.indices = [samples[p]['index'] for p in self.node['samples']]
        self.leaves = [tree['leaf_of_sample'][p] for p in self.node['samples']]
        if not self.indices:
            raise DataError(f"{self.owner}: node {self.node['id']} ({self.node['name']}) has no samples")

    def __len__(self) -> int:
        return len(self.indices)

    def sample_name(self, index: int) -> str:
        return self.inner.sample_name(self.indices[index])

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        sample = self.inner.load_sample(self.indices[index], rng)
        sample['leaf'] = self.leaves[index]
        sample['node'] = self.node['id']
        return sample
