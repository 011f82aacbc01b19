"""MiOIR's training lists (``meta_info``): one degraded-image path per line, task and ground truth by name.

MiOIR's ``MiODateset`` / ``MiO_EP_Dateset`` / ``ClassifierDataset`` read ``meta_info`` (a text file of absolute
LQ paths, unlike BasicSR's ``meta_info_file``, which lists names inside ``dataroot_gt``). A path's task is the
first of ``rain_``, ``haze_``, ``blur_``, ``noise_``, ``jpeg_``, ``dark_``, ``sr_`` found in it (MiOIR's order);
its ground truth is the path with ``LQ_sub`` -> ``GT_sub`` and that prefix -> ``GT_``
(``.../LQ_sub/rain_0001.png`` -> ``.../GT_sub/GT_0001.png``). Samples carry ``task``, the id of
``basicsr.archs.prompt_blocks.MIOIR_TASKS`` that selects the explicit prompt (MiOIR's ``type7.npy`` rows).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from basicsr.archs.prompt_blocks import MIOIR_TASKS
from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError, preview
from basicsr.utils.img_util import img2tensor, read_image
from basicsr.utils.options import Key
from basicsr.utils.registry import DATASET_REGISTRY

# the order in which MiOIR looks for the task prefixes in a path
_SEARCH_ORDER = ('rain', 'haze', 'blur', 'noise', 'jpeg', 'dark', 'sr')


def mioir_task_of(path: str) -> str:
    """MiOIR's task of an LQ path (first prefix of ``_SEARCH_ORDER`` found); DataError when none is."""
    if 'snow_' in path:
        raise DataError(f"'{path}': snow is not one of the MiOIR tasks ({', '.join(MIOIR_TASKS)})")
    for task in _SEARCH_ORDER:
        if f'{task}_' in path:
            return task
    raise DataError(f"'{path}': no MiOIR task prefix ({', '.join(t + '_' for t in _SEARCH_ORDER)}) in the path")


# MiOIR's EP validation: the task from the LQ file-name suffix (``0801_r.png``)
_SUFFIXES = {'_b.': 'blur', '_n.': 'noise', '_j.': 'jpeg', '_r.': 'rain', '_h.': 'haze', '_d.': 'dark', '_s.': 'sr'}


def mioir_task_of_suffix(name: str) -> int:
    """Task id of a validation image named with MiOIR's suffix (``_r.`` rain, ``_h.`` haze, ``_b.`` blur, ``_n.``
    noise, ``_j.`` jpeg, ``_d.`` dark, ``_s.`` sr), as MiOIR's ``*_EP`` models read it; DataError without one."""
    for suffix, task in _SUFFIXES.items():
        if suffix in name:
            return MIOIR_TASKS.index(task)
    raise DataError(f"'{name}': task_from_name 'mioir' needs one of the suffixes {', '.join(_SUFFIXES)} in the file "
                    'name (MiOIR names its validation images so), or use a dataset that gives the task')


def mioir_gt_path(lq_path: str, task: str) -> str:
    """The ground truth MiOIR pairs with ``lq_path`` (string replacements, as the official datasets do)."""
    return lq_path.replace('LQ_sub', 'GT_sub').replace(f'{task}_', 'GT_')


class _MiOIRList(RestorationDataset):
    """Shared reading of a MiOIR ``meta_info`` list; subclasses say whether the ground truth is read."""

    option_keys = {'meta_info': Key(str, path=True, doc='MiOIR list of absolute LQ paths, one per line')}
    reads_gt = True

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        meta = opt.get('meta_info')
        if not meta:
            raise DataError(f"{self.owner}: option 'meta_info' (a text file listing LQ image paths) is required")
        meta = os.path.expanduser(str(meta))
        try:
            lines = [ln.strip() for ln in Path(meta).read_text(encoding='utf-8').splitlines()]
        except OSError as exc:
            raise DataError(f"{self.owner}: cannot read meta_info '{meta}': {exc}") from None
        self.items: List[Tuple[str, str, int]] = []
        missing = []
        for number, lq in enumerate(lines, start=1):
            if not lq:
                continue
            try:
                task = mioir_task_of(lq)
            except DataError as exc:
                raise DataError(f"{self.owner}: meta_info '{meta}' line {number}: {exc}") from None
            gt = mioir_gt_path(lq, task)
            missing += [p for p in ((lq, gt) if self.reads_gt else (lq, )) if not os.path.isfile(p)]
            self.items.append((lq, gt, MIOIR_TASKS.index(task)))
        if not self.items:
            raise DataError(f"{self.owner}: meta_info '{meta}' lists no images")
        if missing:
            raise DataError(f"{self.owner}: {len(missing)} file(s) named by meta_info '{meta}' do not exist: "
                            f'{preview(missing)}')

    def __len__(self) -> int:
        return len(self.items)

    def sample_name(self, index: int) -> str:
        return os.path.basename(self.items[index][0])

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        lq_path, gt_path, task = self.items[index]
        lq = read_image(lq_path, float32=False)
        gt = read_image(gt_path, float32=False) if self.reads_gt else lq
        gt, lq = self.prepare_pair(gt, lq, gt_path, lq_path, rng)
        out = {'lq': img2tensor(self.finalize(lq, lq_path)), 'lq_path': lq_path, 'task': task,
               'task_name': MIOIR_TASKS[task]}
        if self.reads_gt:
            out.update(gt=img2tensor(self.finalize(gt, gt_path)), gt_path=gt_path)
        return out


@DATASET_REGISTRY.register()
class MiODateset(_MiOIRList):  # MiOIR's spelling
    """MiOIR's mixed/sequential training list (LQ, GT and task), for plain and adaptive-prompt networks."""


@DATASET_REGISTRY.register()
class MiO_EP_Dateset(_MiOIRList):  # noqa: N801 - MiOIR's type name
    """The same list for explicit-prompt networks: ``task`` selects the prompt map (MiOIR's ``img_type``).
    MiOIR's EP list maps ``snow_`` to ``GTv_``; snow is no MiOIR task, so it is refused here."""


@DATASET_REGISTRY.register()
class ClassifierDataset(_MiOIRList):
    """MiOIR's classifier training list: the degraded image and its ``task`` label (no ground truth read)."""

    reads_gt = False
