"""Reading and writing EnsIR weight tables: this toolbox's format and the official lookup-table files.

Own format (``torch.save`` of a plain dict, loadable with ``weights_only=True``)::

    {'format': 'basicsr.EnsIR', 'version': 1, 'bin_width': b, 'num_models': M,
     'table': float32 (nb**M, 3, M), 'options': {...estimation options...}}

or, for a ``.safetensors`` path, the tensor ``table`` with the other entries as metadata strings (``options`` as
JSON). Torch files are read with tensors and containers only: one that pickles anything else is refused.

Official format (``precompute_weight/*.pth`` of sunshangquan/EnsIR): a dict whose keys are the M-tuples
of bin lower bounds (a bare int for M = 1), lexicographic, and whose values are lists
``[w_R, w_G, w_B]`` of float32 tensors of M weights.
"""
import json
import math
from functools import reduce
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from basicsr.ensemble.bins import bins_per_model
from basicsr.utils.serialization import (UnreadableFileError, is_safetensors, load_torch_file, read_safetensors,
                                         write_safetensors)

Tensor = torch.Tensor
PathLike = Union[str, Path]

FORMAT_NAME = 'basicsr.EnsIR'
FORMAT_VERSION = 1


def save_table(path: PathLike, table: Tensor, bin_width: int, options: Dict[str, Any],
               official_format: bool = False) -> None:
    """Write ``table`` (nb**M, 3, M) to ``path`` (a ``.safetensors`` name: safetensors); ``official_format=True``
    writes the official dict layout (a torch file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.detach().float().cpu().contiguous()
    if official_format:
        torch.save(_to_official(table, bin_width), path)
    elif is_safetensors(path):
        write_safetensors({'table': table}, path, {
            'format': FORMAT_NAME, 'version': str(FORMAT_VERSION), 'bin_width': str(int(bin_width)),
            'num_models': str(int(table.shape[-1])), 'options': json.dumps(dict(options), default=str)})
    else:
        torch.save({'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'bin_width': int(bin_width),
                    'num_models': int(table.shape[-1]), 'table': table, 'options': dict(options)}, path)


def load_table(path: PathLike, bin_width: Optional[int] = None) -> Tuple[Tensor, int, Dict[str, Any]]:
    """Read a table file of either format; return (table (nb**M, 3, M) float32, bin_width, options).

    ``bin_width`` is only needed for official files with a single bin per model (b >= 256), where the
    keys cannot tell it; otherwise it is inferred from the keys and, if given, checked.
    Raises ValueError when the file is not an EnsIR table.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'EnsIR table file {path}: expected an existing .pth or .safetensors file, got no such file')
    if is_safetensors(path):
        return _from_own(_own_from_safetensors(path), path, bin_width)
    try:
        obj = load_torch_file(path)
    except UnreadableFileError as exc:
        raise ValueError(f'{path} is not an EnsIR table: expected a torch.save dict (this toolbox\'s format or '
                         f'the official lookup table), got a file torch.load cannot read ({exc})') from exc
    if isinstance(obj, dict) and obj.get('format') == FORMAT_NAME:
        return _from_own(obj, path, bin_width)
    if isinstance(obj, dict) and obj and all(isinstance(k, (int, tuple)) for k in obj):
        return _from_official(obj, path, bin_width)
    got = f'dict with keys {list(obj)[:5]}' if isinstance(obj, dict) else type(obj).__name__
    raise ValueError(f'{path} is not an EnsIR table: expected a dict with format {FORMAT_NAME!r} or the official '
                     f'dict of bin lower-bound keys -> [w_R, w_G, w_B], got {got}')


def _own_from_safetensors(path: Path) -> Dict[str, Any]:
    """The own-format dict of a safetensors table file (metadata strings back to numbers and options)."""
    tensors, meta = read_safetensors(path)
    if meta.get('format') != FORMAT_NAME or 'table' not in tensors:
        raise ValueError(f'{path} is not an EnsIR table: expected the tensor table and metadata format '
                         f'{FORMAT_NAME!r}, got tensors {sorted(tensors)[:5]} and metadata {sorted(meta)[:5]}')
    try:
        return {'table': tensors['table'], 'bin_width': int(meta['bin_width']), 'num_models': int(meta['num_models']),
                'options': json.loads(meta.get('options') or '{}')}
    except (KeyError, ValueError) as exc:
        raise ValueError(f'{path} is not a valid EnsIR table: metadata bin_width, num_models (integers) and '
                         f'options (JSON) expected, got {meta}') from exc


def _from_own(obj: Dict[str, Any], path: Path, bin_width: Optional[int]) -> Tuple[Tensor, int, Dict[str, Any]]:
    table, b = obj.get('table'), obj.get('bin_width')
    m = obj.get('num_models')
    if not isinstance(table, Tensor) or not isinstance(b, int) or not isinstance(m, int):
        raise ValueError(f'{path} is not a valid EnsIR table: expected keys table (tensor), bin_width (int), '
                         f'num_models (int), got {sorted(obj)}')
    expected = (bins_per_model(b)**m, 3, m)
    if tuple(table.shape) != expected:
        raise ValueError(f'{path} is not a valid EnsIR table: expected a table of shape {expected} for '
                         f'bin_width {b} and M = {m}, got {tuple(table.shape)}')
    if bin_width is not None and int(bin_width) != b:
        raise ValueError(f'{path}: the table was estimated with bin_width {b}, got bin_width {bin_width}')
    return table.float(), b, dict(obj.get('options', {}))


def _from_official(obj: Dict[Any, Any], path: Path,
                   bin_width: Optional[int]) -> Tuple[Tensor, int, Dict[str, Any]]:
    keys = [k if isinstance(k, tuple) else (k, ) for k in obj]
    num_models = len(keys[0])
    if num_models == 0 or any(len(k) != num_models for k in keys) or \
            not all(isinstance(v, int) and v >= 0 for k in keys for v in k):
        raise ValueError(f'{path} is not an EnsIR table: expected keys that are M-tuples of non-negative bin '
                         f'lower bounds, got keys such as {keys[:3]}')
    bounds = sorted({v for k in keys for v in k})
    positive = [v for v in bounds if v > 0]
    inferred = reduce(math.gcd, positive) if positive else None
    if bin_width is None:
        if inferred is None:
            bin_width = 256  # a single bin per model: every width >= 256 is equivalent
        else:
            bin_width = inferred
    elif inferred is not None and inferred != int(bin_width):
        raise ValueError(f'{path}: its keys have bin width {inferred}, got bin_width {bin_width}')
    bin_width = int(bin_width)
    nb = bins_per_model(bin_width)
    if len(obj) != nb**num_models or bounds != [i * bin_width for i in range(len(bounds))] or len(bounds) != nb:
        raise ValueError(f'{path} is not a complete EnsIR table: expected {nb**num_models} keys over the lower '
                         f'bounds 0, {bin_width}, ..., {(nb - 1) * bin_width} for M = {num_models}, got '
                         f'{len(obj)} keys over {bounds[:10]}')
    table = torch.empty(nb**num_models, 3, num_models)
    for key, value in zip(keys, obj.values()):
        index = 0
        for lower in key:
            index = index * nb + lower // bin_width
        if not isinstance(value, (list, tuple)) or len(value) != 3 or \
                not all(isinstance(w, Tensor) and w.numel() == num_models for w in value):
            raise ValueError(f'{path} is not an EnsIR table: expected each value to be [w_R, w_G, w_B] with '
                             f'{num_models} weights each, got {value!r:.200} for key {key}')
        for c, w in enumerate(value):
            table[index, c] = w.detach().float().reshape(-1)
    return table, bin_width, {'source': 'official'}


def _to_official(table: Tensor, bin_width: int) -> Dict[Any, list]:
    num_models = table.shape[-1]
    nb = bins_per_model(bin_width)
    out: Dict[Any, list] = {}
    for index in range(table.shape[0]):
        digits, rest = [], index
        for _ in range(num_models):
            digits.append(rest % nb)
            rest //= nb
        key = tuple(d * bin_width for d in reversed(digits))
        out[key[0] if num_models == 1 else key] = [table[index, c].clone() for c in range(3)]
    return out
