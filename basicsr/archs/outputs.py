"""Named multi-output structure returned by networks with several outputs (stages, uncertainty maps).

A :class:`NamedOutputs` is a tuple in the official network's output order (so code and checks that
compare against the official implementation see the same sequence), and it also answers by name:
``out['stage:1']``, ``out['var:3']``, ``out.pred`` (the output that is scored). Losses and the evaluator
address outputs only by name.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Tuple

import torch

Tensor = torch.Tensor


class NamedOutputs(tuple):
    """Tuple of tensors with names.

    Args (to ``NamedOutputs(items, pred=...)``):
        items: mapping name -> tensor, in the official output order.
        pred: name of the scored output (default: the first item).
    Naming convention: ``stage:i`` is the output of stage i counted from 1 in processing order,
    ``var:i`` the log-variance map of stage i, ``pred`` aliases the scored output.
    """

    def __new__(cls, items: Dict[str, Tensor], pred: str | None = None) -> 'NamedOutputs':
        obj = super().__new__(cls, tuple(items.values()))
        obj._names = tuple(items.keys())
        obj._pred = pred if pred is not None else obj._names[0]
        if obj._pred not in obj._names:
            raise ValueError(f"pred '{obj._pred}' is not one of the outputs {list(obj._names)}")
        return obj

    @property
    def names(self) -> Tuple[str, ...]:
        """Output names in tuple order."""
        return self._names

    @property
    def pred(self) -> Tensor:
        """The scored (final) output."""
        return self[self._pred]

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            if key == 'pred':
                key = self._pred
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise KeyError(f"no output named '{key}'; this network returns {list(self._names)} "
                               f"(and 'pred' = '{self._pred}')") from None
        return tuple.__getitem__(self, key)

    def items(self) -> Iterator[Tuple[str, Tensor]]:
        return zip(self._names, tuple(self))

    def to_dict(self) -> Dict[str, Tensor]:
        return dict(self.items())

    def map(self, fn: Callable[[Tensor], Tensor]) -> 'NamedOutputs':
        """The same names and scored output with ``fn`` applied to every tensor (e.g. cropping)."""
        return NamedOutputs({n: fn(t) for n, t in self.items()}, self._pred)

    def __reduce__(self):
        return (NamedOutputs, (self.to_dict(), self._pred))

    def __repr__(self) -> str:
        shapes = ', '.join(f'{n}={tuple(t.shape)}' for n, t in self.items())
        return f'NamedOutputs({shapes}; pred={self._pred})'


def main_output(out) -> Tensor:
    """The scored tensor of any network output: a tensor, a :class:`NamedOutputs`, or a list/tuple
    whose first element is the final output (official MPRNet/HINet-style lists)."""
    if isinstance(out, NamedOutputs):
        return out.pred
    if isinstance(out, (list, tuple)):
        return main_output(out[0])
    return out


def output_names(out) -> List[str]:
    """Names addressable in ``out`` ('pred' always works)."""
    return list(out.names) if isinstance(out, NamedOutputs) else ['pred']
