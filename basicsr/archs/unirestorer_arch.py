"""UniRestorer: a tree of frozen restoration experts, routed by degradation (leaf) and granularity (level).

Lin et al., "Universal Image Restoration via Adaptively Estimating Image Degradation at Proper Granularity"
(arXiv 2412.20157; official code mrluin/UniRestorer ``basicsr/models/archs/{unirestorer,init_experts}_arch.py``,
inference only). A frozen degradation encoder embeds the image (``daclip_model``: DA-CLIP's degradation feature
of the CLIP-preprocessed image); two heads turn the embedding into a degradation estimate ``mu`` and a
log-variance ``logvar`` (each five bias-free linears with LeakyReLU(0.1) between them, then BatchNorm1d); the
leaf gate on ``mu`` scores the finest-level nodes (leaves) and the level gate on ``logvar`` scores the levels.
The top-1 leaf and the top-1 level pick one expert through a fixed table: the ancestor of the leaf at that
level. Each expert runs under ``no_grad`` on its own sub-batch; the output is the expert's image times
``g / g.detach()`` with ``g = p_leaf + p_level``, so its value is the expert output and the router gets a
straight-through gradient. The auxiliary loss is ``cv_loss_weight * CV^2`` of the batch-summed, L1-normalised
level probabilities (load balancing over levels only). Gates are zero-initialised and bias-free; in training
their logits get Shazeer's learned Gaussian noise (``softplus(raw) + 0.01`` std), in eval mode they are clean.

Tree (``tree``): the official layout (default, ``'official'``) reproduces ``init_experts.py`` exactly so the
released ``model.pth`` loads strictly: it builds one WithBias Restormer too many at level 2, which shifts the
haze / low-light / blur leaves to the neighbouring expert types (LightHaze -> Restormer, LightDark ->
DehazeFormer, LightBlur -> RetinexFormer) and leaves a 23rd level-2 module (a NAFNetLocal) in the state dict
that is never routed to. ``'intended'`` is the same tree with two experts of its parent's type under each of
the haze, low-light and blur nodes and no spare module -- the tree to train from scratch (the class default
stays ``'official'`` so that the released checkpoint and the official manifest build). Any tree is a list of
nodes ``{level, parent, arch[, name]}`` listed level by level (pool ids = list positions).

Differences from the official class (all documented choices):
* instruction mode: ``skip_mask`` (leaves) and ``layer_skip_mask`` (levels) mask the leaf and the level
  probabilities respectively before the top-1 (the official code swaps them, which cannot run);
* it runs on CPU (the official table is created with ``.to('cuda')``); the table is a non-persistent buffer;
* ``daclip_lq`` is optional: by default the encoder's ``preprocess`` makes it from ``lq`` (the inference
  pipeline makes it once from the whole image, see :meth:`UniRestorer.whole_image_inputs`);
* experts and encoder are frozen (``requires_grad=False``) and stay in eval mode under ``train()``;
* ``topk`` must be 1 (the official code only works with 1); ``embed_dim`` is the router width (official:
  stored, router hard-coded to 512, the only value it is used with). ``num_feat`` is accepted for the
  official signature and unused, as officially.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs.dehazeformer_arch import DEHAZEFORMER_CONFIGS
from basicsr.archs.outputs import NamedOutputs
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['UniRestorer', 'Routing', 'EXPERT_SPECS', 'expert_tree', 'cv_squared']

Tensor = torch.Tensor
NodeSpec = Mapping[str, Any]

_RESTORMER = dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
                  heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, dual_pixel_task=False)
#: the official expert builders (init_experts.py) as network specs, by name
EXPERT_SPECS: Dict[str, dict] = {
    'restormer_withbias': {'type': 'Restormer', **_RESTORMER, 'LayerNorm_type': 'WithBias'},
    'restormer_biasfree': {'type': 'Restormer', **_RESTORMER, 'LayerNorm_type': 'BiasFree'},
    'lora_restormer': {'type': 'LoRARestormer', **_RESTORMER, 'LayerNorm_type': 'WithBias', 'r': [8, 8, 8, 8],
                       'lora_alpha': [16, 16, 16, 16]},
    'dehazeformer_l': {'type': 'DehazeFormer', **DEHAZEFORMER_CONFIGS['l']},
    'retinexformer': {'type': 'RetinexFormer', 'in_channels': 3, 'out_channels': 3, 'n_feat': 40, 'stage': 1,
                      'num_blocks': [1, 2, 2]},
    'nafnet_local': {'type': 'NAFNetLocal', 'width': 64, 'enc_blk_nums': [1, 1, 1, 28], 'middle_blk_num': 1,
                     'dec_blk_nums': [1, 1, 1, 1]},
}

# level-1 nodes of the official tree: (name, expert, names of its leaves)
_LEVEL1 = [
    ('Denoise', 'restormer_biasfree', ['Denoise-light', 'Denoise-medium', 'Denoise-heavy']),
    ('CAR', 'restormer_biasfree', ['CAR-light', 'CAR-medium', 'CAR-heavy']),
    ('Desnow', 'restormer_biasfree', ['Snow-S', 'Snow-M', 'Snow-L']),
    ('Derain', 'restormer_biasfree', ['DDNLightRain', 'DDNLargeRain', 'DIDLightRain', 'DIDMediumRain',
                                      'DIDHeavyRain', 'Rain200H', 'Rain200L']),
    ('Dehaze', 'dehazeformer_l', ['LightHaze', 'HeavyHaze']),
    ('Lowlight', 'retinexformer', ['LightDark', 'HeavyDark']),
    ('Deblur', 'nafnet_local', ['LightBlur', 'HeavyBlur']),
]
# level-2 expert types of the released checkpoint, leaf by leaf (the off-by-one of init_experts.py)
_OFFICIAL_LEAF_EXPERTS = (['restormer_biasfree'] * 3 + ['lora_restormer'] * 4 + ['restormer_withbias'] * 10
                          + ['dehazeformer_l'] * 2 + ['retinexformer'] * 2 + ['nafnet_local'])
_OFFICIAL_SPARE = ['nafnet_local']  # the 23rd level-2 module: in the state dict, never routed to
_INTENDED_LEAF_EXPERTS = (['restormer_biasfree'] * 3 + ['lora_restormer'] * 4 + ['restormer_withbias'] * 9
                          + ['dehazeformer_l'] * 2 + ['retinexformer'] * 2 + ['nafnet_local'] * 2)


def expert_tree(name: str) -> Tuple[List[dict], List[str]]:
    """The named trees: ``(nodes, spare level-2 experts)`` for ``'official'`` or ``'intended'`` (1 + 7 + 22)."""
    if name not in ('official', 'intended'):
        raise ValueError(f"UniRestorer: tree must be 'official', 'intended' or a list of nodes "
                         f"{{level, parent, arch[, name]}}, got {name!r}")
    leaf_experts = _OFFICIAL_LEAF_EXPERTS if name == 'official' else _INTENDED_LEAF_EXPERTS
    nodes = [dict(level=0, parent=None, arch='restormer_withbias', name='All-in-One')]
    nodes += [dict(level=1, parent=0, arch=arch, name=n) for n, arch, _ in _LEVEL1]
    leaves = [(1 + i, leaf) for i, (_, _, names) in enumerate(_LEVEL1) for leaf in names]
    nodes += [dict(level=2, parent=p, arch=a, name=n) for (p, n), a in zip(leaves, leaf_experts)]
    return nodes, (list(_OFFICIAL_SPARE) if name == 'official' else [])


def cv_squared(x: Tensor) -> Tensor:
    """Squared coefficient of variation ``var(x) / (mean(x)^2 + 1e-10)`` (unbiased var; 0 for one value)."""
    if x.numel() < 2:
        return x.new_zeros(())
    x = x.float()
    return x.var() / (x.mean() ** 2 + 1e-10)


@dataclass
class Routing:
    """What the router chose, per sample (all ``(B,)`` long unless noted).

    leaf / level / expert: the top-1 leaf, level and the expert's pool id; gate: ``p_leaf + p_level`` (float,
    detached); leaf_logits: the clean leaf logits ``(B, num_leaves)`` (attached to the graph, for an optional
    cross-entropy on leaf labels).
    """

    leaf: Tensor
    level: Tensor
    expert: Tensor
    gate: Tensor
    leaf_logits: Tensor


def _head(width: int) -> nn.Sequential:
    """The mu / sigma head: [bias-free Linear, LeakyReLU(0.1)] x 4, bias-free Linear, BatchNorm1d."""
    layers: List[nn.Module] = []
    for _ in range(4):
        layers += [nn.Linear(width, width, bias=False), nn.LeakyReLU(negative_slope=0.1, inplace=True)]
    return nn.Sequential(*layers, nn.Linear(width, width, bias=False), nn.BatchNorm1d(width))


def _gate(width: int, outputs: int) -> nn.Sequential:
    """Zero-initialised bias-free gate (``Sequential`` for the official ``*.0.weight`` name)."""
    gate = nn.Sequential(nn.Linear(width, outputs, bias=False))
    nn.init.zeros_(gate[0].weight)
    return gate


@ARCH_REGISTRY.register()
class UniRestorer(nn.Module):
    """Degradation- and granularity-routed mixture of frozen experts (official layout by default).

    Args:
        daclip_model: network spec of the frozen degradation encoder (``{type: DACLIPImageEncoder, ...}``;
            default: DA-CLIP ViT-B/32) or a built module; its output size (``output_dim``) must equal
            ``embed_dim``. Child name ``daclip_model``.
        embed_dim: embedding size and router width (512 officially).
        num_feat: official signature only (unused, as officially).
        topk: experts per sample; only 1 is supported (as in the official code).
        num_experts: nodes per level; checked against the tree (official ``[1, 7, 22]``).
        tree: ``'official'`` (released layout), ``'intended'``, a tree file ``{file: tree.json, arch: expert or
            [one per level]}`` or a list of nodes ``{level, parent, arch, name?}`` listed level by level;
            ``arch`` is a name of :data:`EXPERT_SPECS` or a network spec; every leaf must be at the last level;
            ``parent`` is the pool id (list position) of a node one level up.
        expert_overrides: ``{expert type: kwargs}`` replacing, for every expert of that type, the kwargs of its
            spec (e.g. small experts for tests).
        noisy_topk_gating: learned gate noise in training (the gates then output ``2 x`` logits).
        cv_loss_weight: weight of the level load-balancing loss.
    ``forward(lq, daclip_lq=None, layer_skip_mask=None, skip_mask=None)``: ``lq`` (B, 3, H, W) in [0, 1] (sizes
    as the experts accept: all official experts pad internally), ``daclip_lq`` the encoder input (default:
    :meth:`encoder_input` of ``lq``; the inference pipeline makes it once from the whole image); optional
    boolean masks, True = excluded: ``skip_mask`` (B or 1, num_leaves) or (num_leaves,), ``layer_skip_mask``
    (B or 1, num_levels) or (num_levels,). Returns ``NamedOutputs`` ``restored`` (pred, float32), ``mu``, ``logvar``
    (B, embed_dim) and ``aux_loss`` (scalar); :attr:`last_routing` holds the :class:`Routing` of that call.
    """

    def __init__(self, daclip_model: Union[None, Mapping[str, Any], nn.Module] = None, embed_dim: int = 512,
                 num_feat: int = 48, topk: int = 1, num_experts: Optional[Sequence[int]] = None,
                 tree: Union[str, Mapping[str, Any], Sequence[NodeSpec]] = 'official',
                 expert_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 noisy_topk_gating: bool = True, cv_loss_weight: float = 0.01) -> None:
        super().__init__()
        from basicsr.archs import build_network  # the package imports this module lazily
        if topk != 1:
            raise ValueError(f'UniRestorer: only topk=1 is supported (one expert per sample), got topk={topk}')
        if isinstance(tree, Mapping):
            tree = self._file_nodes(tree)
        nodes, spare = expert_tree(tree) if isinstance(tree, str) else (self._check_nodes(tree), [])
        self.nodes = [dict(n) for n in nodes]
        self.num_levels = max(n['level'] for n in nodes) + 1
        counts = [sum(n['level'] == lvl for n in nodes) for lvl in range(self.num_levels)]
        if num_experts is not None and list(num_experts) != counts:
            raise ValueError(f'UniRestorer: num_experts={list(num_experts)} does not match the tree, which has '
                             f'{counts} nodes per level')
        self.num_leaves = counts[-1]
        self.embed_dim = embed_dim
        self.num_feat = num_feat
        self.noisy_topk_gating = noisy_topk_gating
        self.cv_loss_weight = cv_loss_weight

        # official state-dict slots, unused in the forward pass (PFE scale/shift constants, normalisation);
        # frozen so that optimisers and DDP (unused parameters) ignore them
        self.gamma = nn.Parameter(torch.ones(1) * 1e-4, requires_grad=False)
        self.beta = nn.Parameter(torch.ones(1) * (-7), requires_grad=False)
        self.register_buffer('mean', torch.tensor([0.0]))
        self.register_buffer('std', torch.tensor([1.0]))

        self.daclip_model = daclip_model if isinstance(daclip_model, nn.Module) else \
            build_network(dict(daclip_model or {'type': 'DACLIPImageEncoder'}))
        out_dim = getattr(self.daclip_model, 'output_dim', embed_dim)
        if out_dim != embed_dim:
            raise ValueError(f'UniRestorer: the encoder daclip_model outputs {out_dim}-d features but embed_dim is '
                             f'{embed_dim}; set them equal')
        self.daclip_model.requires_grad_(False)

        specs = [self._spec(n['arch']) for n in nodes] + [self._spec(a) for a in spare]
        overrides = dict(expert_overrides or {})
        unknown = sorted(set(overrides) - {s['type'] for s in specs})
        if unknown:
            raise ValueError(f'UniRestorer: expert_overrides names types {unknown} that no expert of the tree has '
                             f'(expert types: {sorted({s["type"] for s in specs})})')
        self._pool: List[Tuple[int, int]] = []  # pool id -> (level, index in l{level}_experts)
        levels = [n['level'] for n in nodes] + [self.num_levels - 1] * len(spare)
        per_level: List[List[nn.Module]] = [[] for _ in range(self.num_levels)]
        for i, (lvl, spec) in enumerate(zip(levels, specs)):
            net = build_network({**spec, **overrides.get(spec['type'], {})})
            if i < len(nodes):
                self._pool.append((lvl, len(per_level[lvl])))
            per_level[lvl].append(net.requires_grad_(False))
        for lvl, nets in enumerate(per_level):
            setattr(self, f'l{lvl}_experts', nn.ModuleList(nets))

        self.mu = _head(embed_dim)
        self.sigma = _head(embed_dim)
        noisy = 2 if noisy_topk_gating else 1
        self.lf_gate = _gate(embed_dim, noisy * self.num_leaves)
        self.layer_gate = _gate(embed_dim, noisy * self.num_levels)
        self.register_buffer('routing_table', self._routing_table(nodes), persistent=False)
        self.last_routing: Optional[Routing] = None
        self.train(self.training)

    # ------------------------------------------------------------------ tree
    @staticmethod
    def _file_nodes(tree: Mapping[str, Any]) -> List[dict]:
        """Nodes of a tree file (``scripts/cluster_degradations.py``): ``{file: path, arch: one expert or one
        per level}``."""
        from basicsr.utils.degradation_tree import load_tree, tree_nodes
        if set(tree) != {'file', 'arch'}:
            raise ValueError(f'UniRestorer: a tree from a file is {{file: tree.json, arch: expert or [one per '
                             f'level]}}, got keys {sorted(tree)}')
        return tree_nodes(load_tree(tree['file']), tree['arch'])

    @staticmethod
    def _spec(arch: Union[str, Mapping[str, Any]]) -> dict:
        if isinstance(arch, str):
            if arch not in EXPERT_SPECS:
                raise ValueError(f'UniRestorer: unknown expert {arch!r}; use one of {sorted(EXPERT_SPECS)} or a '
                                 f'network spec {{type: ..., kwargs}}')
            return copy.deepcopy(EXPERT_SPECS[arch])
        if not isinstance(arch, Mapping) or 'type' not in arch:
            raise ValueError(f'UniRestorer: a node arch must be a name or a mapping with a type, got {arch!r}')
        return copy.deepcopy(dict(arch))

    @staticmethod
    def _check_nodes(nodes: Sequence[NodeSpec]) -> List[dict]:
        """Validate a user tree: keys, one root first, listed level by level, parents one level up, no dead end."""
        out = []
        for i, node in enumerate(nodes):
            if not isinstance(node, Mapping) or not {'level', 'parent', 'arch'} <= set(node) \
                    or set(node) - {'level', 'parent', 'arch', 'name'}:
                raise ValueError(f'UniRestorer: tree[{i}] must be a mapping with keys level, parent, arch (and '
                                 f'optionally name), got {node!r}')
            level, parent = node['level'], node['parent']
            if i == 0 and (level != 0 or parent is not None):
                raise ValueError(f'UniRestorer: tree[0] must be the root (level 0, parent null), got {dict(node)}')
            if i > 0:
                prev = out[-1]['level']
                ok_parent = isinstance(parent, int) and 0 <= parent < i and out[parent]['level'] == level - 1
                if not isinstance(level, int) or level < max(prev, 1) or level > prev + 1 or not ok_parent:
                    raise ValueError(f'UniRestorer: tree[{i}] = {dict(node)}: nodes are listed level by level '
                                     f'after the single root, and parent is the list position of a node one '
                                     f'level up')
            out.append(dict(node))
        if not out:
            raise ValueError('UniRestorer: tree is empty')
        last = max(n['level'] for n in out)
        childless = [i for i, n in enumerate(out) if n['level'] < last and not any(m['parent'] == i for m in out)]
        if childless:
            raise ValueError(f'UniRestorer: every leaf must be at the last level ({last}); nodes {childless} have '
                             f'no children')
        return out

    def _routing_table(self, nodes: Sequence[NodeSpec]) -> Tensor:
        """``(num_leaves, num_levels)``: pool id of each leaf's ancestor at each level."""
        rows = []
        for i, node in enumerate(nodes):
            if node['level'] == self.num_levels - 1:
                path = [i]
                while nodes[path[-1]]['parent'] is not None:
                    path.append(nodes[path[-1]]['parent'])
                rows.append(path[::-1])
        return torch.tensor(rows, dtype=torch.long)

    def expert(self, pool_id: int) -> nn.Module:
        """The expert network of node ``pool_id`` (tree list position)."""
        level, index = self._pool[pool_id]
        return getattr(self, f'l{level}_experts')[index]

    def leaf_mask(self, nodes: Sequence[int]) -> Tensor:
        """``skip_mask`` row (num_leaves,) that keeps only the leaves under any of ``nodes`` (pool ids)."""
        keep = torch.zeros(self.num_leaves, dtype=torch.bool)
        for node in nodes:
            level = self.nodes[node]['level']
            keep |= (self.routing_table[:, level] == node).cpu()
        return ~keep

    def encoder_input(self, lq: Tensor) -> Tensor:
        """The encoder's input made from images ``lq`` (its ``preprocess``; DA-CLIP: resize, centre crop, CLIP
        normalisation)."""
        preprocess = getattr(self.daclip_model, 'preprocess', None)
        if preprocess is None:
            raise ValueError(f'UniRestorer: the encoder {type(self.daclip_model).__name__} has no preprocess(lq); '
                             f'pass daclip_lq to forward')
        return preprocess(lq)

    def whole_image_inputs(self, lq: Tensor) -> Dict[str, Tensor]:
        """Inputs the inference pipeline computes once from the whole image (so tiles, crops and flips of an
        image are routed like the whole image, as the official inference does): ``{'daclip_lq': ...}``."""
        return {'daclip_lq': self.encoder_input(lq)}

    def instruction_masks(self, task: str) -> Dict[str, Tensor]:
        """Instruction mode: ``{'skip_mask': (1, num_leaves)}`` keeping the leaves under the node(s) named
        ``task`` (case-insensitive node ``name``s of the tree, e.g. ``Derain`` or ``HeavyHaze``)."""
        wanted = [i for i, n in enumerate(self.nodes) if str(n.get('name', '')).lower() == task.lower()]
        if not wanted:
            names = [n['name'] for n in self.nodes if n.get('name')]
            raise ValueError(f'UniRestorer: no tree node is named {task!r}; named nodes: {names}')
        return {'skip_mask': self.leaf_mask(wanted)[None]}

    def describe_routing(self, routing: Optional[Routing] = None) -> List[Dict[str, Any]]:
        """One record per sample of ``routing`` (default: the last call): leaf, level and expert ids, the
        leaf's and the expert's node names (if the tree names them) and the expert type."""
        routing = routing or self.last_routing
        if routing is None:
            return []
        rows = []
        for leaf, level, expert in zip(routing.leaf.tolist(), routing.level.tolist(), routing.expert.tolist()):
            leaf_node = int(self.routing_table[leaf, -1])
            rows.append({'leaf': leaf, 'leaf_name': self.nodes[leaf_node].get('name', str(leaf_node)),
                         'level': level, 'expert': expert,
                         'expert_name': self.nodes[expert].get('name', str(expert)),
                         'expert_type': type(self.expert(expert)).__name__})
        return rows

    def calibration_forward(self, lq: Tensor) -> None:
        """Every expert (the spare included) once on ``lq``: TLC calibrates the pooling windows of each expert,
        whereas a routed forward reaches only the chosen ones."""
        for lvl in range(self.num_levels):
            for net in getattr(self, f'l{lvl}_experts'):
                net(lq)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> 'UniRestorer':
        """Router modules follow ``mode``; the frozen encoder and experts always stay in eval mode."""
        super().train(mode)
        self.daclip_model.eval()
        for lvl in range(self.num_levels):
            getattr(self, f'l{lvl}_experts').eval()
        return self

    # ------------------------------------------------------------------ routing
    def _logits(self, gate: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(logits used for routing, clean logits): noisy in training when ``noisy_topk_gating``."""
        logits = gate(x)
        if not self.noisy_topk_gating:
            return logits, logits
        clean, raw_std = logits.chunk(2, dim=-1)
        if not self.training:
            return clean, clean
        return clean + torch.randn_like(clean) * (F.softplus(raw_std) + 1e-2), clean

    @staticmethod
    def _mask(mask: Optional[Tensor], probs: Tensor, what: str) -> Tensor:
        if mask is None:
            return probs
        if mask.dtype != torch.bool or mask.shape[-1] != probs.shape[-1] or mask.dim() > 2 \
                or (mask.dim() == 2 and mask.shape[0] not in (1, probs.shape[0])):
            raise ValueError(f'UniRestorer: {what} must be a bool tensor of shape ({probs.shape[-1]},), '
                             f'(1, {probs.shape[-1]}) or ({probs.shape[0]}, {probs.shape[-1]}) (True = excluded), '
                             f'got {mask.dtype} {tuple(mask.shape)}')
        if bool(mask.all(dim=-1).any()):
            raise ValueError(f'UniRestorer: {what} excludes every choice for some sample; keep at least one')
        return probs.masked_fill(mask.to(probs.device), 0)

    def route(self, mu: Tensor, logvar: Tensor, layer_skip_mask: Optional[Tensor] = None,
              skip_mask: Optional[Tensor] = None) -> Tuple[Routing, Tensor, Tensor]:
        """Top-1 leaf (from ``mu``) and level (from ``logvar``) -> ``(routing, gate g with grad, level probs)``."""
        leaf_logits, leaf_clean = self._logits(self.lf_gate, mu)
        level_logits, _ = self._logits(self.layer_gate, logvar)
        leaf_probs = self._mask(skip_mask, leaf_logits.softmax(dim=-1), 'skip_mask (leaves)')
        level_probs = self._mask(layer_skip_mask, level_logits.softmax(dim=-1), 'layer_skip_mask (levels)')
        p_leaf, leaf = leaf_probs.topk(1, dim=-1)
        p_level, level = level_probs.topk(1, dim=-1)
        gate = (p_leaf + p_level).squeeze(-1)
        leaf, level = leaf.squeeze(-1), level.squeeze(-1)
        routing = Routing(leaf=leaf, level=level, expert=self.routing_table[leaf, level], gate=gate.detach(),
                          leaf_logits=leaf_clean)
        return routing, gate, level_probs

    def run_experts(self, lq: Tensor, expert: Tensor) -> Tensor:
        """Each chosen expert on its own sub-batch, frozen (no_grad); ``(B, C, H, W)`` float32."""
        out: Optional[Tensor] = None
        for pool_id in torch.unique(expert).tolist():
            idx = (expert == pool_id).nonzero().squeeze(1)
            with torch.no_grad():
                y = self.expert(pool_id)(lq[idx]).float()
            if out is None:
                out = y.new_zeros((lq.shape[0],) + tuple(y.shape[1:]))
            out[idx] = y
        return out

    def forward(self, lq: Tensor, daclip_lq: Optional[Tensor] = None, layer_skip_mask: Optional[Tensor] = None,
                skip_mask: Optional[Tensor] = None) -> NamedOutputs:
        if self.training and lq.shape[0] < 2:
            raise ValueError('UniRestorer: training needs batches of at least 2 images (BatchNorm1d in the mu / '
                             'sigma heads); raise the batch size')
        with torch.no_grad():
            embedding = self.daclip_model(self.encoder_input(lq) if daclip_lq is None else daclip_lq)
        mu, logvar = self.mu(embedding), self.sigma(embedding)
        routing, gate, level_probs = self.route(mu, logvar, layer_skip_mask, skip_mask)
        self.last_routing = routing
        restored = self.run_experts(lq, routing.expert) * (gate / gate.detach())[:, None, None, None]
        aux = self.cv_loss_weight * cv_squared(F.normalize(level_probs.sum(0), p=1, dim=-1))
        return NamedOutputs({'restored': restored, 'mu': mu, 'logvar': logvar, 'aux_loss': aux})
