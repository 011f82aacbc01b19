"""Sequential learning (MiOIR "S"): tasks join the training set one stage at a time.

One option file describes the whole run: an ordinary multi-task training file (``datasets.train`` of type
``MultiTaskDataset``) plus::

    sequential:
      order: [rain, jpeg, blur, sr, noise, haze, dark]   # names of datasets.train.tasks entries
      stage_iters: [100000, 100000, 100000, 100000, 100000, 100000, 400000]
      stage_periods: 100000   # optional; see below

Stage k (1-based) trains on the union of the first k tasks of ``order`` for ``stage_iters[k-1]`` iterations.
It is a normal, resumable run in ``<experiments_root>/stage<k>_<task>`` (its resolved options are written
there as ``options_resolved.yml``) with a new optimiser and a new scheduler; from stage 2 on its network is
initialised from the previous stage's ``models/net_g_latest.pth`` (``.safetensors`` with
``logger.save_format: safetensors``; ``params`` -> network, ``params_ema`` -> EMA copy when ``train.ema_decay`` > 0),
as MiOIR's chained option files do. Task labels keep their values
from the full task list, so explicit-prompt networks see the same task ids in every stage.

``stage_periods`` sets the cosine periods of a scheduler that takes ``periods`` (CosineAnnealingRestartLR,
CosineAnnealingRestartCyclicLR): an integer cuts every stage into periods of that length (MiOIR: 100k, so the
400k last stage has four cycles), a list gives each stage's periods; by default every stage is one period.
The scheduler's ``restart_weights`` / ``eta_mins`` must hold one value (repeated per period). Schedulers
without periods are used unchanged and restart at every stage. ``train.total_iter`` must equal
``sum(stage_iters)``: it is the budget of the whole run (MiOIR gives S and M the same budget).

Running the same command again skips the finished stages and resumes the unfinished one from its newest
checkpoint (``--no-resume`` trains every stage again); under torchrun every rank runs the stages in the same
order. A stage that already has checkpoints after a stage trained again in this session is refused: it was
initialised from other weights.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

@dataclass
class Stage:
    """One stage of a sequential run: 1-based ``index``, the task it adds, the tasks it trains on, its options."""
    index: int
    task: str
    tasks: List[str]
    opt: Dict[str, Any]

    @property
    def root(self) -> Path:
        return Path(self.opt['path']['experiments_root'])

    @property
    def weights(self) -> Path:
        """The stage's final network file (the next stage's initialisation), in ``logger.save_format``."""
        from basicsr.engine.checkpoint import network_file
        return network_file(self.opt['path']['models'], (self.opt.get('logger') or {}).get('save_format', 'pth'))


@dataclass
class StageRun:
    """What :func:`train_sequential` did with a stage: trained (with its last logged losses) or skipped."""
    stage: Stage
    skipped: bool
    losses: Dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- checks
def _task_blocks(train_ds: Any) -> Optional[List[Dict[str, Any]]]:
    """The task blocks of a MultiTaskDataset block as a list, each with an explicit ``label`` (its default is
    the position in the full list, which a subset would change)."""
    blocks = train_ds.get('tasks') if isinstance(train_ds, dict) else None
    if isinstance(blocks, dict):
        blocks = [{'name': k, **(v or {})} for k, v in blocks.items()]
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return None
    return [{**b, 'label': b.get('label', i)} for i, b in enumerate(blocks)]


def _is_positive_int(x: Any) -> bool:
    """A positive whole number; ``1e5`` counts (option files often write iteration counts as floats)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 and float(x).is_integer()


def _scheduler_params(sched: Any) -> List[str]:
    """Constructor parameters of the scheduler type named in ``train.scheduler`` ([] if unknown)."""
    from basicsr.utils.registry import SCHEDULER_REGISTRY, RegistryError
    if not isinstance(sched, dict) or 'type' not in sched:
        return []
    try:
        cls = SCHEDULER_REGISTRY.get(sched['type'])
    except RegistryError:
        return []  # reported by the scheduler build with the closest names
    return list(inspect.signature(cls).parameters)


def sequential_problems(opt: Dict[str, Any]) -> List[str]:
    """Problems of the ``sequential`` block against the rest of ``opt`` (messages name the dotted key)."""
    seq = opt.get('sequential')
    if not isinstance(seq, dict):
        return []
    errors: List[str] = []
    train_ds = (opt.get('datasets') or {}).get('train')
    blocks = _task_blocks(train_ds)
    if not isinstance(train_ds, dict) or train_ds.get('type') != 'MultiTaskDataset' or blocks is None:
        return ["'sequential' needs 'datasets.train' of type MultiTaskDataset with a 'tasks' list "
                '(the stages are made of its tasks)']
    names = [str(b.get('name')) for b in blocks]
    order, iters = seq.get('order'), seq.get('stage_iters')
    if not isinstance(order, list) or not order:
        errors.append(f"'sequential.order' must be a non-empty list of task names, got {order!r}")
        order = []
    for i, name in enumerate(order):
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ''
            errors.append(f"'sequential.order[{i}]': '{name}' is not a task of datasets.train.tasks "
                          f'({names}){hint}')
    repeated = sorted({str(n) for n in order if order.count(n) > 1})
    if repeated:
        errors.append(f"'sequential.order' names a task more than once: {repeated}")
    unused = [n for n in names if n not in order]
    if order and unused:
        errors.append(f"'sequential.order' leaves out the tasks {unused} of datasets.train.tasks: no stage would "
                      'train them; add them to the order or remove them from the tasks')
    if not isinstance(iters, list) or not all(_is_positive_int(x) for x in iters):
        errors.append(f"'sequential.stage_iters' must be a list of positive integers, got {iters!r}")
        iters = None
    elif len(iters) != len(order):
        errors.append(f"'sequential.stage_iters' has {len(iters)} entries but 'sequential.order' has "
                      f'{len(order)} tasks (one length per stage)')
        iters = None
    if iters is not None:
        total = (opt.get('train') or {}).get('total_iter')
        if total != sum(iters):
            errors.append(f"'train.total_iter' ({total}) must equal the sum of 'sequential.stage_iters' "
                          f'({sum(iters)}): it is the budget of the whole sequential run')
        errors += _period_problems(seq.get('stage_periods'), iters, (opt.get('train') or {}).get('scheduler'))
    if (opt.get('path') or {}).get('resume_state'):
        errors.append("'path.resume_state' cannot be used with 'sequential': each stage resumes from its own "
                      'folder when the same command is run again')
    return errors


def _period_problems(periods: Any, iters: List[int], sched: Any) -> List[str]:
    errors: List[str] = []
    params = _scheduler_params(sched)
    if periods is not None and params and 'periods' not in params:
        errors.append(f"'sequential.stage_periods' needs a scheduler with periods (CosineAnnealingRestartLR, "
                      f"CosineAnnealingRestartCyclicLR); 'train.scheduler.type' is {sched['type']}")
    if not isinstance(periods, list) and _is_positive_int(periods):
        bad = [i for i, n in enumerate(iters) if n % periods]
        if bad:
            errors.append(f"'sequential.stage_periods' ({periods}) must divide every stage length; it does not "
                          f'divide sequential.stage_iters{bad}')
    elif isinstance(periods, list):
        if len(periods) != len(iters):
            errors.append(f"'sequential.stage_periods' has {len(periods)} entries but there are {len(iters)} "
                          'stages (one list of periods per stage)')
        else:
            for i, (p, n) in enumerate(zip(periods, iters)):
                if not isinstance(p, list) or not p or not all(_is_positive_int(x) for x in p) or sum(p) != n:
                    errors.append(f"'sequential.stage_periods[{i}]' must be a list of positive periods summing to "
                                  f'the stage length {n}, got {p!r}')
    elif periods is not None:
        errors.append(f"'sequential.stage_periods' must be a positive integer or a list of per-stage period lists, "
                      f'got {periods!r}')
    if 'periods' in params:
        for key in ('restart_weights', 'eta_mins'):
            values = sched.get(key)
            if isinstance(values, list) and len(set(values)) > 1:
                errors.append(f"'train.scheduler.{key}' must hold a single value under 'sequential' (the stages "
                              f'set their own periods), got {values}')
    return errors


# ---------------------------------------------------------------------------------------------- plan
def _stage_periods(seq: Dict[str, Any], k: int) -> List[int]:
    iters = int(seq['stage_iters'][k])
    periods = seq.get('stage_periods')
    if periods is None:
        return [iters]
    if not isinstance(periods, list):
        return [int(periods)] * (iters // int(periods))
    return [int(p) for p in periods[k]]


def _stage_scheduler(sched: Dict[str, Any], periods: List[int]) -> Dict[str, Any]:
    params = _scheduler_params(sched)
    if 'periods' not in params:
        return sched
    out = {**sched, 'periods': periods}
    for key, default in (('restart_weights', 1), ('eta_mins', 0)):
        if key in params:
            value = sched.get(key, [default])
            value = value[0] if isinstance(value, list) else value
            out[key] = [value] * len(periods)
    return out


def raise_option_problems(opt: Dict[str, Any], problems: List[str]) -> None:
    """Refuse ``opt`` with every one of ``problems`` (messages naming dotted keys), naming its option file."""
    from basicsr.utils.options import OptionError
    if problems:
        raise OptionError(f"{len(problems)} problem(s) in option file {opt.get('opt_path', '<options>')}:\n  - "
                          + '\n  - '.join(problems))


def stage_options(opt: Dict[str, Any], block_key: str, folder: Path, name: str, total_iter: int,
                  periods: List[int], init_from: Optional[Stage] = None,
                  param_key_g_ema: Optional[str] = None) -> Dict[str, Any]:
    """One stage's training options: a copy of ``opt`` without its ``block_key`` block, run ``name`` in
    ``folder`` (never resumed from ``path.resume_state``), ``total_iter`` iterations, a scheduler with periods
    ``periods``; with ``init_from``, the network starts from that stage's final ``params`` (and the EMA copy
    from ``param_key_g_ema`` of the same file, if given)."""
    from basicsr.utils.options import train_folders
    so = copy.deepcopy({key: v for key, v in opt.items() if key != block_key})
    so['name'] = name
    so['path'].update(train_folders(folder), resume_state=None)
    if init_from is not None:
        so['path'].update(pretrain_network_g=str(init_from.weights), param_key_g='params', strict_load_g=True,
                          param_key_g_ema=param_key_g_ema)
    so['train']['total_iter'] = int(total_iter)
    if so['train'].get('scheduler'):
        so['train']['scheduler'] = _stage_scheduler(so['train']['scheduler'], periods)
    return so


def plan_stages(opt: Dict[str, Any]) -> List[Stage]:
    """The stages of a resolved option dict with a ``sequential`` block (see :func:`parse_options`)."""
    raise_option_problems(opt, sequential_problems(opt))
    seq = opt['sequential']
    blocks = {str(b['name']): b for b in _task_blocks(opt['datasets']['train'])}
    root = Path(opt['path']['experiments_root'])
    ema = float(opt['train'].get('ema_decay') or 0) > 0
    stages: List[Stage] = []
    for k, task in enumerate(seq['order']):
        folder = f'stage{k + 1}_{task}'
        # MiOIR: the previous stage's final weights, network and EMA copy, then a fresh optimiser/scheduler
        so = stage_options(opt, 'sequential', root / folder, f"{opt['name']}_{folder}", seq['stage_iters'][k],
                           _stage_periods(seq, k), stages[-1] if stages else None, 'params_ema' if ema else None)
        tasks = list(seq['order'][:k + 1])
        so['datasets']['train']['tasks'] = [copy.deepcopy(blocks[t]) for t in tasks]
        stages.append(Stage(k + 1, task, tasks, so))
    return stages


def stage_finished(stage: Stage) -> bool:
    """Whether the stage's newest checkpoint is at its last iteration and its final weights exist."""
    from basicsr.engine.checkpoint import CKPT_PATTERN, list_checkpoints
    ckpts = list_checkpoints(stage.opt['path']['training_states'])
    if not ckpts or not stage.weights.is_file():
        return False
    return int(CKPT_PATTERN.match(ckpts[0].name).group(1)) >= int(stage.opt['train']['total_iter'])


def _has_checkpoints(stage: Stage) -> bool:
    from basicsr.engine.checkpoint import list_checkpoints
    return bool(list_checkpoints(stage.opt['path']['training_states']))


def _close_stage_log(stage: Stage, logger: logging.Logger) -> None:
    """Detach the stage's log file so the next stage's messages go to its own folder only."""
    log_dir = str(Path(stage.opt['path']['log']).resolve())
    for h in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        if h.baseFilename.startswith(log_dir):
            logger.removeHandler(h)
            h.close()


# ---------------------------------------------------------------------------------------------- run
def train_sequential(opt: Dict[str, Any]) -> List[StageRun]:
    """Run (or finish) every stage of ``opt`` in order; returns what happened to each stage."""
    stages = plan_stages(opt)
    return run_stages(opt, stages, lambda s: f"stage {s.index}/{len(stages)} (+{s.task}: {'+'.join(s.tasks)})")


def run_stages(opt: Dict[str, Any], stages: List[Stage], describe: Callable[[Stage], str],
               prepare: Optional[Callable[[Stage], None]] = None) -> List[StageRun]:
    """Train (or skip, when finished, or resume) each of ``stages`` in order, as one resumable run each; a
    stage is initialised from the weights its options name (``path.pretrain_network_g``). ``describe`` names a
    stage in the log; ``prepare(stage)`` runs (on rank 0) before a stage trains, e.g. to write its initial
    weights. Also used by UniRestorer's per-node expert training (:mod:`basicsr.engine.expert_tree`)."""
    from basicsr.engine.trainer import Trainer
    from basicsr.utils.dist import barrier, get_dist_info
    from basicsr.utils.logger import get_logger
    from basicsr.utils.options import dump_options
    rank = get_dist_info()[0]
    logger = get_logger(rank=rank)
    if rank == 0:
        dump_options(opt, Path(opt['path']['experiments_root']) / 'options_resolved.yml')
    resume = opt['path'].get('auto_resume', True)
    runs: List[StageRun] = []
    for stage in stages:
        where = describe(stage)
        if resume and any(not r.skipped for r in runs) and _has_checkpoints(stage):
            # a stage after one trained in this session cannot have started from that stage's new weights
            raise RuntimeError(f'{where} has checkpoints in {stage.root}, but stage {runs[-1].stage.index} before '
                               f'it was trained again in this run, so they come from other weights; delete '
                               f'{stage.root} and the later stage folders to train them again')
        if resume and stage_finished(stage):
            logger.info(f'{where}: finished earlier in {stage.root}, skipped')
            runs.append(StageRun(stage, skipped=True))
            continue
        logger.info(f'{where}: {stage.opt["train"]["total_iter"]} iterations in {stage.root}')
        if prepare is not None:
            if rank == 0:
                prepare(stage)
            barrier()
        losses = Trainer(stage.opt).train()
        _close_stage_log(stage, logger)
        barrier()
        runs.append(StageRun(stage, skipped=False, losses=losses))
    return runs
