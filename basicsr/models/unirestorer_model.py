"""UniRestorerModel: trains UniRestorer's router with the experts and the degradation encoder frozen.

The paper's fourth stage. ``network_g`` is a :class:`~basicsr.archs.unirestorer_arch.UniRestorer` whose tree
is the tree file (``tree: {file: ..., arch: ...}``); before training, its experts are loaded from the per-node
runs of :mod:`basicsr.engine.expert_tree` and its encoder from the encoder run (unless
``path.pretrain_network_g`` already gives a whole UniRestorer)::

    unirestorer:
      tree_file: experiments/demo_tree/tree.json
      experts_root: experiments/demo_experts        # node<k>/models/net_g_latest.pth
      encoder_weights: experiments/demo_encoder/models/net_g_latest.pth
      dg_weight: 0.1          # alpha of L_dg (paper)
      leaf_ce_weight: 0       # optional addition: CE of the clean leaf logits against the leaf label

Loss: the ``train.*_opt`` terms on ``restored`` (the paper: L1) + ``dg_weight * L_dg(mu, logvar, centre of
the sample's leaf)`` (:class:`~basicsr.losses.degradation_loss.CentreNLLLoss`) + the network's ``aux_loss``
(its ``cv_loss_weight``, 0.01, is the paper's beta) + ``leaf_ce_weight * CE(clean leaf logits, leaf)``. The
CE term is not in the paper or the official code (the leaf gate otherwise learns only through the
straight-through L1 signal); it is off by default. Only the router (mu / sigma heads, leaf and level gates)
has trainable parameters. Leaf labels come from a :class:`~basicsr.data.tree_node_dataset.TreeNodeDataset`.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F

from basicsr.engine.checkpoint import network_file
from basicsr.losses.degradation_loss import CentreNLLLoss
from basicsr.models.image_restoration_model import ImageRestorationModel, unwrap
from basicsr.utils.logger import get_logger
from basicsr.utils.registry import MODEL_REGISTRY


def unirestorer_problems(opt: Dict[str, Any]) -> List[str]:
    """Training a UniRestorer needs batches of at least 2 (BatchNorm1d in the router heads): checked at parse
    time for ``datasets.train.batch_size_per_gpu`` and every progressive ``mini_batch_sizes`` entry."""
    train = (opt.get('datasets') or {}).get('train')
    if (opt.get('network_g') or {}).get('type') != 'UniRestorer' or not isinstance(train, dict) \
            or not opt.get('is_train', True):
        return []
    errors = []
    batch = train.get('batch_size_per_gpu')
    if isinstance(batch, int) and batch < 2:
        errors.append(f"'datasets.train.batch_size_per_gpu' is {batch}: UniRestorer's router heads end in "
                      'BatchNorm1d, which needs at least 2 samples per batch in training (paper: 8)')
    small = [b for b in train.get('mini_batch_sizes') or [] if isinstance(b, int) and b < 2]
    if small:
        errors.append(f"'datasets.train.mini_batch_sizes' has batches {small} below 2: UniRestorer's BatchNorm1d "
                      'router heads need at least 2 samples per batch')
    return errors


@MODEL_REGISTRY.register()
class UniRestorerModel(ImageRestorationModel):
    """Router training of a UniRestorer (see the module docstring); testing is ImageRestorationModel's."""

    def _init_training(self) -> None:
        from basicsr.utils.degradation_tree import load_tree
        block = self.opt.get('unirestorer')
        if not isinstance(block, dict):
            raise ValueError("UniRestorerModel: the option block 'unirestorer' (tree_file, experts_root, "
                             'encoder_weights, dg_weight, leaf_ce_weight) is required for training')
        net = unwrap(self.net_g)
        tree = load_tree(block['tree_file'])
        leaves = [n for n in tree['nodes'] if n['level'] == len(tree['levels']) - 1]
        if len(tree['nodes']) != len(net.nodes) or len(leaves) != net.num_leaves:
            raise ValueError(f"UniRestorerModel: unirestorer.tree_file {block['tree_file']} has "
                             f"{len(tree['nodes'])} nodes and {len(leaves)} leaves, network_g has {len(net.nodes)} and "
                             f'{net.num_leaves}; build network_g.tree from the same file')
        centres = torch.tensor([leaf['centre'] for leaf in leaves], dtype=torch.float32)
        if centres.shape[1] != net.embed_dim:
            raise ValueError(f"UniRestorerModel: the tree's centres are {centres.shape[1]}-d, network_g.embed_dim "
                             f'is {net.embed_dim}: cluster with the same encoder')
        self.centres = centres.to(self.device)
        if block.get('experts_root'):
            self._load_experts(net, Path(block['experts_root']))
        if block.get('encoder_weights'):
            self._load(net.daclip_model, Path(block['encoder_weights']), 'unirestorer.encoder_weights')
        self.dg_loss = CentreNLLLoss(float(block.get('dg_weight', 0.1)))
        self.leaf_ce_weight = float(block.get('leaf_ce_weight', 0.0))
        super()._init_training()

    def _load(self, module: torch.nn.Module, path: Path, key: str) -> None:
        from basicsr.archs.pretrained import load_pretrained
        if not path.is_file():
            raise FileNotFoundError(f'UniRestorerModel: {key}: {path} does not exist (train that stage first)')
        load_pretrained(module, path, key='params', strict=True,
                        trust_pickle=self.opt['path'].get('trust_pickle', False))

    def _load_experts(self, net: Any, root: Path) -> None:
        """Expert k <- ``root/node<k>/models/net_g_latest.*`` (the per-node runs of expert_tree)."""
        from basicsr.engine.expert_tree import node_folder
        fmt = (self.opt.get('logger') or {}).get('save_format', 'pth')
        for k in range(len(net.nodes)):
            self._load(net.expert(k), network_file(node_folder(root, k) / 'models', fmt),
                       f'unirestorer.experts_root (node {k})')
        get_logger().info(f'loaded {len(net.nodes)} experts from {root}')

    def feed_data(self, data: Dict[str, Any]) -> None:
        super().feed_data(data)
        if self.is_train and self.net_g.training:
            if 'leaf' not in data:
                raise KeyError("UniRestorerModel: the training batch has no 'leaf' labels; train on a "
                               'TreeNodeDataset of the tree file')
            self.leaf = torch.as_tensor(data['leaf']).long().to(self.device)

    def compute_losses(self) -> Tuple[Any, Dict[str, torch.Tensor]]:
        out = self.net_g(self.lq)
        losses = OrderedDict((f'l_{k[:-4]}', term(out, self.gt, lq=self.lq)) for k, term in self.loss_terms.items())
        losses['l_dg'] = self.dg_loss(out['mu'], out['logvar'], self.centres[self.leaf])
        losses['l_aux'] = out['aux_loss']
        if self.leaf_ce_weight > 0:
            logits = unwrap(self.net_g).last_routing.leaf_logits
            losses['l_leaf_ce'] = self.leaf_ce_weight * F.cross_entropy(logits.float(), self.leaf)
        return out, losses
