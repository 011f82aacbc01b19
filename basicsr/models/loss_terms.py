"""Loss terms: the ``train.*_opt`` blocks bound to named network outputs.

A network returns a tensor or a :class:`~basicsr.archs.outputs.NamedOutputs`. Each ``*_opt`` block is a
registered loss plus an optional ``outputs`` entry saying which outputs it scores:

- omitted: every ``stage:*`` output if the network has stages (MPRNet/HINet/DSRIR official losses sum
  over stages), otherwise ``pred``;
- a name (``'pred'``, ``'stage:2'``) or a list of names, summed;
- a list of mappings, each giving the loss's keyword arguments by output name, e.g. DSRIR's uncertainty
  loss ``[{pred: 'stage:1', log_var: 'var:1'}, ...]``; a value may also be a list of names (passed as a list
  of tensors) and the name ``lq`` means the network input, e.g. DSRIR's contrastive loss
  ``[{pred: 'stage:3', positives: ['stage:2', 'stage:1'], negative: lq}]``.

``stage_weights`` (same length as the resolved outputs) weights the summands. ``clamp: [lo, hi]`` clamps the
scored outputs first (MPRNet's denoising loss scores ``clamp(stage, 0, 1)``; no gradient flows where an output
is outside). The target is always the ground truth, passed as the second positional argument.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from basicsr.archs.outputs import NamedOutputs, output_names
from basicsr.losses import build_loss

OutputSpec = Union[str, Dict[str, Union[str, List[str]]]]
# output name that means the network input (a degraded image), e.g. the negative of DSRIR's contrastive loss
INPUT_NAME = 'lq'


class LossTerm(nn.Module):
    """One ``train.<key>`` loss applied to selected outputs."""

    def __init__(self, key: str, opt: Dict[str, Any]) -> None:
        super().__init__()
        opt = dict(opt)
        self.key = key
        self.outputs: Optional[List[OutputSpec]] = _as_list(opt.pop('outputs', None))
        self.stage_weights: Optional[List[float]] = opt.pop('stage_weights', None)
        self.clamp = opt.pop('clamp', None)
        if self.clamp is not None and not (isinstance(self.clamp, (list, tuple)) and len(self.clamp) == 2):
            raise ValueError(f'train.{key}.clamp must be [low, high], got {self.clamp!r}')
        if self.stage_weights is not None and self.outputs is not None \
                and len(self.stage_weights) != len(self.outputs):
            raise ValueError(self._weights_message(self.outputs))
        try:
            self.loss = build_loss(opt)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            # e.g. a missing or wrong-shaped VGG weight file: say which loss block asked for it
            given = ', '.join(f'{k}={v!r}' for k, v in opt.items() if k != 'type')
            raise type(exc)(f'train.{key} ({opt.get("type")}{", " + given if given else ""}): {exc}') from exc

    def _weights_message(self, specs: List[OutputSpec]) -> str:
        return (f'train.{self.key}.stage_weights has {len(self.stage_weights)} entries but the loss scores '
                f'{len(specs)} outputs {specs} (stage_weights: {self.stage_weights}); give one weight per output')

    def resolve(self, out: Any) -> List[OutputSpec]:
        """The output specs this term scores for the network output ``out``."""
        names = output_names(out)
        specs = self.outputs
        if specs is None:
            stages = [n for n in names if n.startswith('stage:')]
            specs = stages or ['pred']
        for spec in specs:
            for name in _spec_names(spec):
                if name not in ('pred', INPUT_NAME) and name not in names:
                    raise ValueError(f"train.{self.key}.outputs: the network has no output '{name}'; it returns "
                                     f"{names} (and 'pred')")
        if self.stage_weights is not None and len(self.stage_weights) != len(specs):
            raise ValueError(self._weights_message(specs))
        return specs

    def forward(self, out: Any, gt: torch.Tensor, lq: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Weighted sum of the loss over the resolved outputs; ``lq`` (the network input) serves ``lq`` names."""
        specs = self.resolve(out)
        weights = self.stage_weights or [1.0] * len(specs)
        total = 0.0
        for w, spec in zip(weights, specs):
            if isinstance(spec, str):
                total = total + w * _summed(self.loss(self._pick(out, spec, lq), gt))
            else:
                kwargs = {k: ([self._pick(out, n, lq) for n in v] if isinstance(v, (list, tuple))
                              else self._pick(out, v, lq)) for k, v in spec.items()}
                total = total + w * _summed(self.loss(target=gt, **kwargs))
        return total

    def _pick(self, out: Any, name: str, lq: Optional[torch.Tensor]) -> torch.Tensor:
        if name == INPUT_NAME:
            if lq is None:
                raise ValueError(f"train.{self.key}.outputs asks for '{INPUT_NAME}' (the network input) but the "
                                 'model did not pass it to the loss')
            return lq
        picked = _pick(out, name)
        return picked if self.clamp is None else picked.clamp(float(self.clamp[0]), float(self.clamp[1]))


def _summed(value: Any) -> torch.Tensor:
    """A loss value; a tuple of parts (BasicSR's PerceptualLoss: perceptual, style) is summed, None parts skipped."""
    if isinstance(value, tuple):
        return sum(v for v in value if v is not None)
    return value


def _spec_names(spec: OutputSpec) -> List[str]:
    """Every output name a spec refers to (a name, or the values of a mapping, which may be lists)."""
    if isinstance(spec, str):
        return [spec]
    names: List[str] = []
    for value in spec.values():
        names += list(value) if isinstance(value, (list, tuple)) else [value]
    return names


def _pick(out: Any, name: str) -> torch.Tensor:
    if isinstance(out, NamedOutputs):
        return out[name]
    if name != 'pred':
        raise ValueError(f"output '{name}' requested but the network returns a single tensor ('pred')")
    return out


def _as_list(x: Any) -> Optional[List[OutputSpec]]:
    if x is None:
        return None
    return list(x) if isinstance(x, (list, tuple)) else [x]


def build_loss_terms(train_opt: Dict[str, Any]) -> nn.ModuleDict:
    """Every ``*_opt`` block of ``train`` as a :class:`LossTerm`, in option-file order."""
    terms = nn.ModuleDict()
    for key, value in train_opt.items():
        if key.endswith('_opt') and isinstance(value, dict):
            terms[key] = LossTerm(key, value)
    if not terms:
        raise ValueError("train: no loss configured; add e.g. 'pixel_opt: {type: L1Loss, loss_weight: 1.0}'")
    return terms


def loss_names(terms: Sequence[str]) -> List[str]:
    """Log names (``l_pixel`` for ``pixel_opt``)."""
    return ['l_' + k[:-4] for k in terms]
