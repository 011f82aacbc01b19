"""Several restoration tasks mixed in one training set (all-in-one training: PromptIR, DSRIR, MiOIR).

Every task is an ordinary dataset block (``PairedImageDataset``, ``ListPairDataset`` for DSRIR/PromptIR list
files, ``SyntheticDegradationDataset`` for noise made on the fly, ...) plus a name, an integer ``label`` and a
repetition factor. The options shared by all tasks (phase, patch size, augmentation, caching) are given once
on the multi-task block and inherited::

    type: MultiTaskDataset
    gt_size: 128
    use_hflip: true
    use_rot: true
    tasks:
      - {name: denoise_15, label: 0, repeat: 3, type: SyntheticDegradationDataset, dataroot_gt: ...,
         degradation: {type: GaussianNoise, sigma: 15, quantize: floor}}
      - {name: derain, label: 3, repeat: 120, type: ListPairDataset, dataroot_lq: ..., list_file: ...,
         gt_from_lq: ['rainy/rain-(\\d+)', 'gt/norain-\\1']}

One epoch is the concatenation of every task ``repeat`` times (PromptIR: each clean image three times per
noise level, Rain100L 120 times, OTS once). With ``balance_tasks: true`` every task instead contributes the
same number of samples per epoch (the largest task's count; smaller tasks cycle), so the engine's shuffled,
sharded, exactly resumable ``EnlargedSampler`` draws the tasks equally often. Each repeat of an image is a
different sample: its crop, flips and synthetic degradation are seeded by its own epoch index.

Samples are those of the task's dataset plus ``'task'`` (the integer label) and ``'task_name'``.
"""
from __future__ import annotations

import difflib
from bisect import bisect_right
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from basicsr.data.base_dataset import RestorationDataset
from basicsr.data.data_util import DataError
from basicsr.utils.registry import DATASET_REGISTRY, RegistryError

# options of the multi-task block that every task inherits unless it sets them itself
INHERITED_KEYS = ('phase', 'gt_size', 'use_flip', 'use_hflip', 'use_rot', 'geometric_augs', 'aug_identity_weight',
                  'saturation_jitter', 'trim_to_multiple', 'scale', 'in_ch', 'color', 'cache_images',
                  'pad_to_gt_size', 'pad_mode', 'skip_bad', 'io_backend', 'noise_seed')
# keys that describe the task itself rather than its dataset
TASK_KEYS = ('name', 'label', 'repeat')
# loader-level keys belong to the multi-task block only
LOADER_KEYS = ('use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode',
               'pin_memory', 'persistent_workers', 'prefetch_factor', 'drop_last', 'mini_batch_sizes', 'iters',
               'gt_sizes', 'progressive_crop', 'tasks', 'balance_tasks', 'num_task_prompts')


class Task:
    """One task of a :class:`MultiTaskDataset`: its dataset, label and how many samples it gives per epoch."""

    def __init__(self, name: str, label: int, repeat: int, dataset: RestorationDataset) -> None:
        self.name, self.label, self.repeat, self.dataset = name, label, repeat, dataset

    @property
    def base_len(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f'Task({self.name!r}, label={self.label}, {self.base_len} samples x {self.repeat})'


def _task_where(i: int, block: Any) -> str:
    name = block.get('name') if isinstance(block, dict) else None
    return f'tasks[{i}]' + (f' ({name})' if name else '')


def _check_task_block(block: Any, i: int, owner: str) -> None:
    """Task keys must be dataset keys (checked here: the option schema cannot look inside the list)."""
    from basicsr.utils.options import DATASET_KEYS
    where = _task_where(i, block)
    if not isinstance(block, dict):
        raise DataError(f"{owner}: option '{where}' must be a mapping (a dataset block with name and type), "
                        f'got {block!r}')
    for key in ('name', 'type'):
        if not block.get(key):
            raise DataError(f"{owner}: option '{where}.{key}' is required")
    for key in block:
        if key in LOADER_KEYS:
            raise DataError(f"{owner}: option '{where}.{key}' belongs to the multi-task block, not to a task")
        if key not in DATASET_KEYS and key not in TASK_KEYS:
            close = difflib.get_close_matches(key, list(DATASET_KEYS) + list(TASK_KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ''
            raise DataError(f"{owner}: unknown option '{where}.{key}'{hint}")


def build_tasks(opt: Dict[str, Any], owner: str) -> List[Task]:
    """Build every task's dataset from ``opt['tasks']`` (a list, or a mapping name -> block)."""
    from basicsr.data import build_dataset
    blocks = opt.get('tasks')
    if isinstance(blocks, dict):
        blocks = [{'name': k, **(v or {})} for k, v in blocks.items()]
    if not isinstance(blocks, list) or not blocks:
        raise DataError(f"{owner}: option 'tasks' must be a non-empty list of task blocks, got {blocks!r}")
    inherited = {k: opt[k] for k in INHERITED_KEYS if k in opt}
    tasks: List[Task] = []
    for i, block in enumerate(blocks):
        _check_task_block(block, i, owner)
        where = _task_where(i, block)
        label = block.get('label', i)
        repeat = block.get('repeat', 1)
        if not isinstance(label, int) or isinstance(label, bool) or label < 0:
            raise DataError(f"{owner}: option '{where}.label' must be a non-negative integer, got {label!r}")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise DataError(f"{owner}: option '{where}.repeat' must be a positive integer (repetitions per epoch), "
                            f'got {repeat!r}: a task with no samples cannot be trained')
        ds_opt = {**inherited, **{k: v for k, v in block.items() if k not in TASK_KEYS},
                  'name': f"{opt.get('name', 'multitask')}/{block['name']}"}
        try:
            dataset = build_dataset(ds_opt)
        except (DataError, RegistryError, TypeError, ValueError) as exc:
            raise DataError(f"{owner}: option '{where}': {exc}") from exc
        if len(dataset) == 0:
            raise DataError(f"{owner}: option '{where}' has no samples (its {block['type']} is empty)")
        tasks.append(Task(str(block['name']), label, repeat, dataset))
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{owner}: task names must be unique; repeated: {dupes}")
    return tasks


def check_task_labels(tasks: Sequence[Task], num_task_prompts: Any, owner: str) -> None:
    """Every label must index one of the network's ``num_task_prompts`` task prompts (0..n-1)."""
    if num_task_prompts is None:
        return
    if not isinstance(num_task_prompts, int) or isinstance(num_task_prompts, bool) or num_task_prompts < 1:
        raise DataError(f"{owner}: option 'num_task_prompts' must be a positive integer, got {num_task_prompts!r}")
    for i, task in enumerate(tasks):
        if task.label >= num_task_prompts:
            raise DataError(f"{owner}: option 'tasks[{i}].label' = {task.label} (task '{task.name}') is outside the "
                            f'range 0..{num_task_prompts - 1} of the network\'s task prompts '
                            f'(num_task_prompts: {num_task_prompts})')


@DATASET_REGISTRY.register()
class MultiTaskDataset(RestorationDataset):
    """Concatenation of task datasets with repetition factors or task balancing; see the module docstring.

    Options: ``tasks`` (list of task blocks: ``name``, ``label`` (default: position), ``repeat`` (default 1),
    ``type`` and that dataset's options), ``balance_tasks`` (default false), ``num_task_prompts`` (optional:
    the number of task prompts of a task-conditioned network; every label must be below it), and the shared
    options listed in ``INHERITED_KEYS``.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        self.tasks = build_tasks(opt, self.owner)
        check_task_labels(self.tasks, opt.get('num_task_prompts'), self.owner)
        for task in self.tasks:
            # one shared run-time state: seed, epoch and patch size set on this dataset reach every task
            task.dataset._state = self._state
            task.dataset._key_size = self._key_size
            self.excluded += task.dataset.excluded  # skip_bad: files the tasks left out
        self.balanced = bool(opt.get('balance_tasks', False))
        counts = [t.base_len * t.repeat for t in self.tasks]
        if self.balanced:
            counts = [max(counts)] * len(counts)
        self.counts = counts
        self.offsets = np.cumsum([0] + counts).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    @property
    def task_names(self) -> List[str]:
        return [t.name for t in self.tasks]

    def task_ranges(self) -> List[Tuple[int, int]]:
        """``[start, end)`` index range of every task within one pass over the dataset."""
        return [(self.offsets[i], self.offsets[i + 1]) for i in range(len(self.tasks))]

    def locate(self, index: int) -> Tuple[Task, int]:
        """(task, index inside the task's dataset) of dataset index ``index`` (0 <= index < len)."""
        t = bisect_right(self.offsets, index) - 1
        task = self.tasks[t]
        return task, (index - self.offsets[t]) % task.base_len

    def task_counts(self) -> Dict[str, int]:
        """Samples per task in one pass (what an epoch of ``dataset_enlarge_ratio: 1`` contains)."""
        return {t.name: c for t, c in zip(self.tasks, self.counts)}

    def sample_name(self, index: int) -> str:
        task, sub_index = self.locate(index)
        return task.dataset.sample_name(sub_index)

    def load_sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        task, sub_index = self.locate(index)
        sample = task.dataset.load_sample(sub_index, rng)
        sample['task'] = task.label
        sample['task_name'] = task.name
        return sample

    def __repr__(self) -> str:
        return f"MultiTaskDataset({', '.join(map(repr, self.tasks))}, balanced={self.balanced})"
