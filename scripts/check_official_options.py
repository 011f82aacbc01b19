"""Run official option files with only their dataset paths rewritten to tiny generated data.

    python scripts/check_official_options.py OFFICIAL_DIR [--match SUBSTRING] [--work DIR] [--first-test-set]

OFFICIAL_DIR holds option files of the official repositories (e.g. the ``options/`` folders of BasicSR,
Restormer, NAFNet, HINet and MiOIR, fetched by you). Every ``*.yml`` below it is parsed, its network, model and
datasets are built and it runs: a training file (a ``train`` dataset) 2 iterations with validation, a test file
through ``basicsr/test.py``. Only dataset paths change (``dataroot_*``, ``meta_info``; tiny images are written
under ``--work``), plus what a CPU needs: ``num_gpu: 0``, batch 1, patches of at most 128 px (16 x scale for SR),
2 iterations, no TensorBoard, no pretrained weights (MiOIR's classifier gets random weights). One line per file,
``OK`` or ``FAIL`` with the error; exit status 1 when a file fails.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402

MIOIR_TASKS = ('rain', 'haze', 'blur', 'noise', 'jpeg', 'dark', 'sr')


class TinyData:
    """Writes (once) and returns the tiny folders/lists that replace the dataset paths of an option file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rng = np.random.default_rng(0)

    def image(self, h: int, w: int, dtype: type = np.uint8) -> np.ndarray:
        low = self.rng.random((max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
        img = np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
        return (img * (65535 if dtype == np.uint16 else 255)).round().astype(dtype)

    def paired(self, scale: int, size: int, tmpl: str, lmdb: bool, names: List[str]) -> Dict[str, str]:
        d = self.root / f"paired_x{scale}_{size}_{tmpl.replace('{}', '')}_{'-'.join(names)}"
        if not d.exists():
            for name in names:
                gt = self.image(size, size)
                lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
                for sub, img, stem in (('gt', gt, name), ('lq', lq, tmpl.format(name))):
                    (d / sub).mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(d / sub / f'{stem}.png'), img)
        if lmdb:
            import importlib.util
            spec = importlib.util.spec_from_file_location('create_lmdb', Path(__file__).with_name('create_lmdb.py'))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            create_lmdb = module.create_lmdb
            for sub in ('gt', 'lq'):
                if not (d / f'{sub}.lmdb').exists():
                    create_lmdb(d / sub, d / f'{sub}.lmdb')
            return {'gt': str(d / 'gt.lmdb'), 'lq': str(d / 'lq.lmdb')}
        return {'gt': str(d / 'gt'), 'lq': str(d / 'lq')}

    def stereo(self, scale: int, h: int, w: int) -> str:
        d = self.root / f'stereo_x{scale}_{h}x{w}'
        if not d.exists():
            for scene in ('0001', '0002'):
                (d / scene).mkdir(parents=True)
                for view in (0, 1):
                    hr = self.image(h, w)
                    cv2.imwrite(str(d / scene / f'hr{view}.png'), hr)
                    cv2.imwrite(str(d / scene / f'lr{view}.png'),
                                cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_AREA))
        return str(d)

    def dual_pixel(self, size: int) -> Dict[str, str]:
        d = self.root / f'dual_pixel_{size}'
        if not d.exists():
            for sub in ('gt', 'lqL', 'lqR'):
                (d / sub).mkdir(parents=True)
                for i in range(2):
                    cv2.imwrite(str(d / sub / f'{i}.png'), self.image(size, size, np.uint16))
        return {k: str(d / k) for k in ('gt', 'lqL', 'lqR')}

    def mioir_list(self, size: int) -> str:
        d = self.root / f'mioir_{size}'
        if not d.exists():
            lines = []
            for i, task in enumerate(MIOIR_TASKS):
                for sub in ('LQ_sub', 'GT_sub'):
                    (d / sub).mkdir(parents=True, exist_ok=True)
                gt = self.image(size, size)
                cv2.imwrite(str(d / 'GT_sub' / f'GT_{i:04d}.png'), gt)
                cv2.imwrite(str(d / 'LQ_sub' / f'{task}_{i:04d}.png'), gt)
                lines.append(str((d / 'LQ_sub' / f'{task}_{i:04d}.png').resolve()))
            (d / 'meta_info.txt').write_text('\n'.join(lines) + '\n')
        return str(d / 'meta_info.txt')


def rewrite(opt: Dict[str, Any], data: TinyData, is_train: bool, mioir: bool, first_test_set: bool) -> Dict[str, Any]:
    """``opt`` with dataset paths on tiny data and the CPU-sized run settings of the module docstring."""
    scale = int(opt.get('scale', 1))
    datasets = opt.get('datasets') or {}
    if first_test_set:
        for key in [k for k in datasets if k.startswith('test')][1:]:
            del datasets[key]
    for key, block in datasets.items():
        if not isinstance(block, dict):
            continue
        kind = block.get('type')
        train = key.startswith('train')
        if train:
            block.update(num_worker_per_gpu=0, batch_size_per_gpu=1)
            if block.get('gt_size'):
                block['gt_size'] = min(int(block['gt_size']), 16 * scale if scale > 1 else 128)
            for k, v in (('mini_batch_sizes', 1), ('gt_sizes', block.get('gt_size'))):
                if isinstance(block.get(k), list):
                    block[k] = [v] * len(block[k])
        if kind == 'PairedStereoImageDataset':
            h, w = (int(block.get('gt_size_h', 32)) * 2, int(block.get('gt_size_w', 32)) * 2) if train else (32, 48)
            block['dataroot_gt'] = block['dataroot_lq'] = data.stereo(scale, h, w)
        elif kind == 'Dataset_DefocusDeblur_DualPixel_16bit':
            folders = data.dual_pixel(96)
            block.update(dataroot_gt=folders['gt'], dataroot_lqL=folders['lqL'], dataroot_lqR=folders['lqR'])
        elif kind in ('MiODateset', 'MiO_EP_Dateset', 'ClassifierDataset'):
            block['meta_info'] = data.mioir_list(128)
        elif block.get('dataroot_gt') is not None or block.get('dataroot_lq') is not None:
            names = ['0801_r', '0802_n'] if mioir else ['0001', '0002']  # MiOIR names carry the task suffix
            size = 128 if scale == 1 else 32 * scale
            lmdb = (block.get('io_backend') or {}).get('type') == 'lmdb'
            folders = data.paired(scale, size, block.get('filename_tmpl') or '{}', lmdb, names)
            for sub in ('gt', 'lq'):
                if block.get(f'dataroot_{sub}') not in (None, 'none'):
                    block[f'dataroot_{sub}'] = folders[sub]
            block.pop('meta_info_file', None)
    opt['num_gpu'] = 0
    for section in ('path', 'path_c'):
        if isinstance(opt.get(section), dict):
            opt[section]['resume_state'] = None
            if section == 'path':
                opt[section]['pretrain_network_g'] = None
    if isinstance((opt.get('path_c') or {}).get('pretrain_network_g'), str):
        opt['path_c']['pretrain_network_g'] = classifier_weights(data.root)
    if is_train:
        opt['train']['total_iter'] = 2
        opt['logger'] = {**(opt.get('logger') or {}), 'print_freq': 1, 'save_checkpoint_freq': 2,
                         'use_tb_logger': False}
        opt['logger'].pop('wandb', None)
        if isinstance(opt.get('val'), dict):
            opt['val']['val_freq'] = 2
    return opt


def classifier_weights(root: Path) -> str:
    """Random MiOIR classifier weights in its release layout (``params``), for ``path_c``."""
    import torch

    from basicsr.archs import build_network
    path = root / 'classifier_random.pth'
    if not path.exists():
        torch.save({'params': build_network({'type': 'Classifier'}).state_dict()}, path)
    return str(path)


def run_file(path: Path, work: Path, data: TinyData, first_test_set: bool) -> None:
    """Rewrite ``path`` into ``work`` and run it (raises what the run raises)."""
    opt = yaml.safe_load(path.read_text(encoding='utf-8'))
    is_train = 'train' in (opt.get('datasets') or {})
    opt = rewrite(opt, data, is_train, 'mioir' in str(path).lower(), first_test_set)
    out = work / 'options' / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    if is_train:
        from basicsr.engine.trainer import Trainer
        from basicsr.utils.options import parse_options
        Trainer(parse_options(out, root=work / 'run')).train()
    else:
        from basicsr.test import main as test_main
        test_main(['-opt', str(out)], root=work / 'run')


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('official_dir', type=Path, help='folder with official option files (searched recursively)')
    parser.add_argument('--match', default='', help='only files whose path contains this (default: all)')
    parser.add_argument('--work', type=Path, default=Path('results/check_official_options'),
                        help='tiny data, rewritten files and runs (default: %(default)s)')
    parser.add_argument('--first-test-set', action='store_true',
                        help='keep only the first test set of a test file (MiOIR files list 19; default: all)')
    args = parser.parse_args(argv)
    import logging
    files = sorted(p for p in args.official_dir.rglob('*.yml') if args.match in str(p))
    if not files:
        raise SystemExit(f'error: no *.yml files under {args.official_dir} matching {args.match!r}')
    data = TinyData(args.work / 'data')
    failed = 0
    for path in files:
        start = time.time()
        logging.disable(logging.WARNING)
        try:
            run_file(path, args.work / path.relative_to(args.official_dir).with_suffix(''), data, args.first_test_set)
            print(f'OK   {path.relative_to(args.official_dir)} ({time.time() - start:.1f}s)', flush=True)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - report every file, then the count
            failed += 1
            message = str(exc).replace('\n', ' | ')
            print(f'FAIL {path.relative_to(args.official_dir)}: {type(exc).__name__}: {message}', flush=True)
        finally:
            logging.disable(logging.NOTSET)
    print(f'{len(files) - failed} of {len(files)} files ran')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
