"""Inference wrappers: padding, tiling, grids, self-ensemble, TLC, composed by :func:`build_inference`.

``build_inference(net, opt['test'])(lq)`` is the one call validation, test.py and demo.py make; see
:mod:`basicsr.inference.pipeline`. ``to_local(net, train_size=...)`` is TLC on any network
(:mod:`basicsr.inference.tlc`). Names are imported on first use.
"""
import importlib
from typing import Any

_EXPORTS = {
    'build_inference': 'pipeline', 'InferencePipeline': 'pipeline', 'to_local': 'tlc', 'convert_local_': 'tlc',
    'tile_forward': 'tiling', 'grids_forward': 'grids',
    'center_crop_to_multiple': 'padding',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'basicsr.inference' has no attribute '{name}'")
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
