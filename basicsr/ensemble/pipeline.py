"""Ensembles inside test.py: each base model runs its own inference pipeline, then the ensembler fuses.

``ensemble:`` block of a test option file (the keys other than ``members`` go to
:func:`basicsr.ensemble.runner.build_ensemble_from_opt`)::

    ensemble:
      method: EnsIR                    # EnsIR | average | zzpm | median
      table: experiments/ensir/derain_b32.pth   # loaded if it exists, else fitted on `fit` and saved there
      fit: {models: [ref/MPRNet, ref/Restormer], gt: ref/gt}
      bin_width: 32
      members:                         # one entry per base model, in the table's model order
        - {opt: options/test/MPRNet_derain.yml, weights: experiments/pretrained_models/mprnet.pth}
        - {predictions: results/Restormer/visualization/Rain100H}   # stored outputs, found by image name

An ``opt`` member builds ``network_g`` of that file, loads ``weights`` (default: its
``path.pretrain_network_g``) and runs the inference pipeline of its ``test:``/``val:`` section (padding,
tiling, TLC, self-ensemble), so every model keeps its own test-time settings before the fusion.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence

import torch
from torch import Tensor

from basicsr.archs.conditions import condition_kwargs
from basicsr.ensemble.folders import find_image, read_image_255
from basicsr.ensemble.runner import apply_unit_range, build_ensemble_from_opt

Member = Callable[[Tensor, Mapping[str, Any]], Tensor]


def _model_member(spec: Mapping[str, Any], device: torch.device, index: int, trust_pickle: bool = False) -> Member:
    from basicsr.archs import build_network
    from basicsr.archs.pretrained import load_pretrained
    from basicsr.inference.pipeline import build_inference
    from basicsr.utils.options import load_with_bases
    opt = load_with_bases(spec['opt'])
    if 'network_g' not in opt:
        raise ValueError(f"ensemble.members[{index}].opt: {spec['opt']} has no 'network_g' block")
    weights = spec.get('weights') or (opt.get('path') or {}).get('pretrain_network_g')
    if not weights:
        raise ValueError(f"ensemble.members[{index}]: give 'weights' (or path.pretrain_network_g in {spec['opt']})")
    net = build_network(opt['network_g'])
    load_pretrained(net, str(weights), key=spec.get('param_key', 'auto'), trust_pickle=trust_pickle)
    net = net.to(device).eval()
    settings = {**(opt.get('val') or {}), **(opt.get('test') or {})}
    where = f'ensemble.members[{index}]'
    pipeline = build_inference(net, settings, where=where)

    def member(lq: Tensor, item: Mapping[str, Any]) -> Tensor:
        # networks with extra inputs (MiOIR explicit prompts: the task) read them from the sample
        return pipeline(lq, **condition_kwargs(pipeline.net, item, where, lq.device, single=True,
                                               optional=pipeline.provided_conditions))
    return member


def _item_name(item: Mapping[str, Any]) -> str:
    """Image name (file stem) of a dataset item; stored predictions are found by it."""
    return Path(item.get('lq_path') or item.get('gt_path') or '').stem


def _folder_member(spec: Mapping[str, Any], index: int) -> Member:
    folder = Path(spec['predictions'])
    if not folder.is_dir():
        raise ValueError(f'ensemble.members[{index}].predictions: folder {folder} does not exist')

    def member(lq: Tensor, item: Mapping[str, Any]) -> Tensor:
        pred = read_image_255(find_image(folder, _item_name(item))).unsqueeze(0) / 255.0
        return pred.to(lq.device)
    return member


def build_members(specs: Sequence[Mapping[str, Any]], device: torch.device, trust_pickle: bool = False
                  ) -> List[Member]:
    """One callable ``(lq (1, C, H, W) in [0, 1], dataset item) -> (1, 3, H', W')`` per member; ``trust_pickle``
    (``--trust-pickle``) lets member weights pickle objects other than tensors."""
    if not specs:
        raise ValueError("ensemble.members: list at least one base model ({opt, weights} or {predictions})")
    members = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or ('opt' in spec) == ('predictions' in spec):
            raise ValueError(f"ensemble.members[{i}]: expected {{opt: FILE, weights: FILE}} or "
                             f'{{predictions: DIR}}, got {spec!r}')
        members.append(_model_member(spec, device, i, trust_pickle) if 'opt' in spec else _folder_member(spec, i))
    return members


class EnsemblePipeline:
    """Callable like an inference pipeline, but needs the sample (for stored predictions by name).

    After each call, ``member_outputs`` holds the base models' outputs, so the evaluator can score each
    model next to the ensemble.
    """
    takes_item = True

    def __init__(self, members: List[Member], ensembler: Any, names: Sequence[str]) -> None:
        self.members, self.ensembler, self.member_names = members, ensembler, list(names)
        self.member_outputs: List[Tensor] = []

    @torch.no_grad()
    def __call__(self, lq: Tensor, item: Dict[str, Any]) -> Tensor:
        if lq.shape[0] != 1:
            raise ValueError(f'the ensemble pipeline restores one image at a time, got a batch of {lq.shape[0]}')
        name = _item_name(item)
        outs = [m(lq, item).float() for m in self.members]
        sizes = {tuple(o.shape) for o in outs}
        if len(sizes) != 1:
            raise ValueError(f'image {name!r}: the base models gave outputs of different shapes {sorted(sizes)}')
        self.member_outputs = [o[0].clamp(0, 1).cpu() for o in outs]
        fused = apply_unit_range(self.ensembler, torch.stack([o[0].cpu() for o in outs]))
        return fused.unsqueeze(0).to(lq.device)


def build_ensemble_pipeline(opt: Mapping[str, Any], device: torch.device, trust_pickle: bool = False
                            ) -> EnsemblePipeline:
    """The pipeline of an ``ensemble:`` block (see the module docstring)."""
    specs = opt.get('members') or []
    members = build_members(specs, device, trust_pickle)
    ensembler = build_ensemble_from_opt({k: v for k, v in opt.items() if k != 'members'}, num_models=len(members))
    names = [Path(s.get('opt') or s.get('predictions')).stem for s in specs]
    return EnsemblePipeline(members, ensembler, names)
