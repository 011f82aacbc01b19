"""Network options (``{'type': ..., **kwargs}``) from command-line style inputs, shared by the scripts.

A network is named either by ``type`` + JSON ``kwargs`` or by an option file whose ``network_g`` block is
used (``type`` / ``kwargs`` given as well override it), or by a manifest JSON of ``shared/reference``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ['network_opt', 'manifest_network_opt']


def network_opt(type_: Optional[str] = None, kwargs_json: Optional[str] = None,
                opt_path: Optional[str] = None) -> Dict[str, Any]:
    """``{'type': T, **kwargs}`` from ``--type``, ``--kwargs '{"a": 1}'`` and / or ``--opt file.yml``."""
    spec: Dict[str, Any] = {}
    if opt_path:
        from basicsr.utils.options import load_with_bases
        opt = load_with_bases(opt_path)
        block = opt.get('network_g')
        if not isinstance(block, dict):
            raise ValueError(f"option file {opt_path} has no 'network_g' mapping")
        spec.update(block)
    if kwargs_json:
        try:
            kwargs = json.loads(kwargs_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f'--kwargs is not valid JSON ({exc}): {kwargs_json!r}') from exc
        if not isinstance(kwargs, dict):
            raise ValueError(f'--kwargs must be a JSON object, got {kwargs_json!r}')
        spec.update(kwargs)
    if type_:
        spec['type'] = type_
    if 'type' not in spec:
        raise ValueError('name the network with --type (and --kwargs) or --opt (an option file with network_g)')
    return spec


def manifest_network_opt(path: str | Path) -> Dict[str, Any]:
    """``{'type': registry_type, **kwargs}`` of an architecture manifest JSON."""
    data = json.loads(Path(path).read_text())
    return {'type': data['registry_type'], **data.get('kwargs', {})}
