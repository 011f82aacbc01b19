"""Demo: restore images with a trained model.

``python basicsr/demo.py`` with no arguments restores the noisy samples in ``datasets/samples/`` with the
bundled colour-denoising model (sigma 25) and writes the outputs and side-by-side images
(input | output | clean, when the clean sample exists) to ``results/demo/``.

Everything else: ``--input FILE|DIR --output DIR --opt YAML --weights PATH --device cpu|cuda`` and the
inference options ``--tile N --tile-overlap M --tile-batch B --self-ensemble --tlc`` and the fast paths
``--compile [MODE] --channels-last --autocast bf16|fp16 --cudnn-benchmark`` (:mod:`basicsr.utils.speed`).

A folder is restored file by file: an unreadable image (empty, truncated, not an image) is reported with a
warning and the others are still restored; the run ends with a summary and exit status 1 if any failed.
Gray, RGBA and 16-bit files are restored by the model's colour channels and written back in their own
layout (gray stays gray, alpha is re-attached, 16 bits with ``--keep-bit-depth``), with one warning per file
saying so. Outputs are ``<name>_restored.png`` and ``<name>_side_by_side.png``; input files are never
overwritten, and when ``--output`` is the input folder the demo's own earlier outputs are not restored again.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

if __package__ in (None, ''):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPT = ROOT / 'options' / 'demo' / 'denoise_color_sigma25.yml'
DEFAULT_WEIGHTS = ROOT / 'experiments' / 'pretrained_models' / 'NAFNet_w16_denoise_color_sigma25.safetensors'
DEFAULT_INPUT = ROOT / 'datasets' / 'samples'
NOISY_TAG, CLEAN_TAG = '_noisy', '_clean'
OUTPUT_TAGS = ('_restored', '_side_by_side')  # name endings of the files the demo writes


class ImagesFailed(SystemExit):
    """Some images of a folder could not be restored: exit status 1 after the summary. ``records`` are the
    restored images, ``failures`` the (file, reason) of the others."""

    def __init__(self, records: List[dict], failures: List[Tuple[Path, str]]) -> None:
        super().__init__(1)
        self.records, self.failures = records, failures


def find_inputs(path: Path, out_dir: Optional[Path] = None) -> List[Path]:
    """Images to restore: the file itself, or the images in a folder (only ``*_noisy`` ones when the
    folder holds sample pairs). When the folder is also ``out_dir``, the demo's own outputs
    (``*_restored``, ``*_side_by_side``) are left out, so running twice does not restore them again."""
    from basicsr.data.data_util import is_image_file
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f'--input {path}: no such file or folder')
    files = sorted(p for p in path.iterdir() if not p.is_dir() and is_image_file(p.name))  # broken links too
    if out_dir is not None and out_dir.resolve() == path.resolve():
        own = [p for p in files if p.stem.endswith(OUTPUT_TAGS)]
        if own:
            print(f'note: --input {path} is also --output: leaving out {len(own)} file(s) named like the '
                  f'demo\'s outputs (*{", *".join(OUTPUT_TAGS)})')
        files = [p for p in files if p not in own]
    noisy = [p for p in files if p.stem.endswith(NOISY_TAG)]
    if not (noisy or files):
        raise FileNotFoundError(f'--input {path}: the folder has no images')
    return noisy or files


def training_patch_size(opt: Dict[str, Any]) -> Optional[int]:
    """The training patch size recorded in an option file: the last of ``datasets.train.gt_sizes``
    (progressive training) or ``datasets.train.gt_size``; None when the file has no training set."""
    train = ((opt.get('datasets') or {}).get('train') or {})
    sizes = train.get('gt_sizes') or [train.get('gt_size')]
    return int(sizes[-1]) if sizes[-1] else None


def format_notes(stored: Any, in_ch: int, keep_bit_depth: bool) -> List[str]:
    """What the demo does to a file that is not plain 8-bit RGB (``stored``: a StoredImage)."""
    notes = []
    channels = stored.colour.shape[2]
    if channels == 1 and in_ch == 3:
        notes.append('gray image: restored as 3 equal channels by the colour model, written back as gray')
    elif channels == 3 and in_ch == 1:
        notes.append('colour image: the model takes one channel, so its luma (BT.601) is restored and written')
    if stored.alpha is not None:
        notes.append('alpha channel: not restored, re-attached to the output (resized with it for super-resolution)')
    if stored.bit_depth > 8:
        kind = '16-bit' if stored.bit_depth == 16 else 'floating-point'
        notes.append(f'{kind} image: output written with 16 bits (--keep-bit-depth)' if keep_bit_depth else
                     f'{kind} image: output written with 8 bits (pass --keep-bit-depth for 16 bits)')
    return notes


class Restorer:
    """Restores files one by one into ``out_dir``, never overwriting an input or an output of this run."""

    def __init__(self, pipeline: Any, conditions: Dict[str, Any], in_ch: int, device: Any, out_dir: Path,
                 keep_bit_depth: bool, inputs: List[Path]) -> None:
        from basicsr.inference.tlc import make_settings
        self.pipeline, self.conditions, self.in_ch, self.device = pipeline, conditions, in_ch, device
        self.out_dir, self.keep_bit_depth = out_dir, keep_bit_depth
        self.inputs: Set[Path] = {p.resolve() for p in inputs}
        self.written: Dict[Path, Path] = {}
        self.tlc_base = make_settings(**pipeline.tlc).base_size if pipeline.tlc else None

    def targets(self, path: Path) -> Tuple[str, List[Path]]:
        """The output name stem of ``path`` and its two output files; raises ValueError if one of them is an
        input file or was written for another input of this run."""
        name = path.stem[:-len(NOISY_TAG)] if path.stem.endswith(NOISY_TAG) else path.stem
        targets = [self.out_dir / f'{name}{tag}.png' for tag in OUTPUT_TAGS]
        for target in targets:
            if target.resolve() in self.inputs:
                raise ValueError(f"refusing to overwrite the input file '{target}' with the output of '{path}'; "
                                 'choose another --output folder')
            if target.resolve() in self.written:
                raise ValueError(f"its output '{target}' was already written for '{self.written[target.resolve()]}' "
                                 'in this run (same name stem); rename one of them')
        return name, targets

    def restore(self, path: Path) -> dict:
        """Restore one file; ImageReadError / ValueError name what is wrong with it."""
        import numpy as np
        import torch

        from basicsr.archs.outputs import main_output
        from basicsr.engine.evaluator import side_by_side
        from basicsr.metrics.profiles import compute_metrics
        from basicsr.utils.img_util import (convert_channels, img2tensor, read_image, read_image_layers, tensor2img,
                                            to_stored_layout, write_image)
        name, targets = self.targets(path)
        stored = read_image_layers(path)
        lq = img2tensor(convert_channels(stored.colour, self.in_ch))
        notes = format_notes(stored, self.in_ch, self.keep_bit_depth)
        h, w = lq.shape[-2:]
        part = (self.pipeline.tile or {}).get('size') or (self.pipeline.grids or {}).get('crop_size')
        seen = (min(h, part), min(w, part)) if part else (h, w)  # what one network call sees
        if self.tlc_base is not None and seen[0] <= self.tlc_base[0] and seen[1] <= self.tlc_base[1]:
            where = f'{seen[0]}x{seen[1]} tiles of this image' if seen != (h, w) else f'this {h}x{w} image'
            notes.append(f'--tlc changes nothing on {where}: its pooling window (base_size '
                         f'{self.tlc_base[0]}x{self.tlc_base[1]}) covers the whole input of the network')
        if notes:
            print(f'warning: {path}: ' + '; '.join(notes), file=sys.stderr)
        clean_path = path.with_name(name + CLEAN_TAG + '.png')
        gt = img2tensor(read_image(clean_path, channels=self.in_ch)) if clean_path.is_file() else None
        start = time.time()
        with torch.no_grad():
            out = main_output(self.pipeline(lq.unsqueeze(0).to(self.device), **self.conditions))
        out = out.clamp(0, 1).float().cpu()[0]
        seconds = time.time() - start
        rec = {'image': path.name, 'seconds': round(seconds, 3)}
        routing = self.pipeline.routing_records()  # routed networks (UniRestorer): leaf, level, expert
        rec.update(routing[0] if routing else {})
        if gt is not None and gt.shape == out.shape:
            if lq.shape == gt.shape:
                rec.update({f'{k}_input': v for k, v in compute_metrics(lq, gt, 'basicsr_rgb').items()})
            rec.update({f'{k}_output': v for k, v in compute_metrics(out, gt, 'basicsr_rgb').items()})
        # written last, so an image that fails leaves no output behind
        depth = 16 if self.keep_bit_depth and stored.bit_depth > 8 else 8
        write_image(targets[0], to_stored_layout(tensor2img(out, np.float32), stored, depth))
        write_image(targets[1], tensor2img(side_by_side(lq, out, gt)))
        self.written.update({t.resolve(): path for t in targets})
        return rec


def main(argv: Optional[List[str]] = None) -> List[dict]:
    from basicsr.utils.cli import ArgumentParser, UsageError, non_negative_int, output_folder, positive_int
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('--input', type=Path, default=DEFAULT_INPUT,
                        help='image file or folder (default: %(default)s)')
    parser.add_argument('--output', type=Path, default=ROOT / 'results' / 'demo',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--opt', type=Path, default=DEFAULT_OPT,
                        help='option YAML with network_g (and test:) (default: %(default)s)')
    parser.add_argument('--weights', type=Path, default=None,
                        help='weights file (default: path.pretrain_network_g of --opt, else the bundled model)')
    parser.add_argument('--device', default=None, choices=['cpu', 'cuda'],
                        help='(default: cuda if available, else cpu)')
    parser.add_argument('--tile', type=positive_int, default=None,
                        help='tile size for tiled inference (default: test.tile of --opt, else whole images)')
    parser.add_argument('--tile-overlap', type=non_negative_int, default=32,
                        help='overlap between tiles (pixels, less than --tile) (default: %(default)s)')
    parser.add_argument('--tile-batch', type=positive_int, default=1,
                        help='tiles per network call with --tile (default: %(default)s)')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='x8 flip/rotation self-ensemble (default: off)')
    parser.add_argument('--tlc', action='store_true',
                        help='test-time local converter with the training patch size of the model (default: off)')
    parser.add_argument('--tlc-train-size', type=positive_int, default=None,
                        help='training patch size for --tlc (default: test.tlc.train_size of --opt, else '
                             'datasets.train.gt_size of --opt or of its _base_ training file; the bundled model: '
                             '64)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='unpickle any object in --weights (and in the task classifier weights of --opt): only '
                             'for files you trust, since unpickling can run code (default: off, tensors and '
                             'containers only)')
    parser.add_argument('--keep-bit-depth', action='store_true',
                        help='write 16-bit outputs for 16-bit (and float) inputs (default: off, 8-bit outputs)')
    parser.add_argument('--task', default=None,
                        help='task for networks that take one (MiOIR *_EP explicit prompts): an id 0..6 or a name '
                             '(blur, noise, jpeg, rain, haze, dark, sr); for routed networks (UniRestorer) the '
                             'instruction mode: a tree node name such as Derain (default: none)')
    from basicsr.utils.speed import add_speed_arguments, speed_block
    add_speed_arguments(parser)
    args = parser.parse_args(argv)
    if args.tlc_train_size and not args.tlc:
        raise UsageError('--tlc-train-size is used only with --tlc; add --tlc or drop it')
    if args.tile and args.tile_overlap >= args.tile:
        raise UsageError(f'--tile-overlap {args.tile_overlap} must be smaller than --tile {args.tile} '
                         '(each tile must advance by at least one pixel)')

    import torch

    from basicsr.archs import build_network
    from basicsr.archs.pretrained import load_pretrained
    from basicsr.inference.pipeline import build_inference
    from basicsr.utils.option_checks import require_network
    from basicsr.utils.options import load_with_bases
    from basicsr.utils.serialization import trust_pickle_scope

    opt = load_with_bases(args.opt)
    require_network(opt, str(args.opt))
    weights = args.weights or (opt.get('path') or {}).get('pretrain_network_g') or DEFAULT_WEIGHTS
    weights = Path(weights) if Path(weights).is_absolute() else (ROOT / weights if not Path(weights).exists()
                                                                  else Path(weights))
    if not weights.is_file():
        raise SystemExit(f'error: weights file {weights} not found; pass --weights PATH')
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda requested but CUDA is not available')
    net = build_network(opt['network_g'])
    load_pretrained(net, str(weights), trust_pickle=args.trust_pickle)
    net = net.to(device).eval()

    in_ch = (opt['network_g'].get('img_channel') or opt['network_g'].get('inp_channels')
             or opt['network_g'].get('in_chans') or 3)
    settings = dict(opt.get('test') or {})
    if args.tile:
        settings['tile'] = {'size': args.tile, 'overlap': args.tile_overlap, 'batch': args.tile_batch}
    if args.self_ensemble:
        settings['self_ensemble'] = True
    if args.tlc and (args.tlc_train_size or not settings.get('tlc')):
        size = args.tlc_train_size or training_patch_size(opt)
        if size is None:
            raise UsageError(f'--tlc needs the training patch size of the model: {args.opt} has neither test.tlc '
                             'nor datasets.train.gt_size; pass --tlc-train-size N')
        settings['tlc'] = {**(settings.get('tlc') or {}), 'train_size': [1, in_ch, size, size]}
    if args.task is not None and hasattr(net, 'instruction_masks'):
        settings['instruction'] = args.task
    with trust_pickle_scope(args.trust_pickle):  # the task classifier of --opt's test.task_classifier
        pipeline = build_inference(net, settings, where='test', speed=speed_block(opt.get('speed'), args))
    conditions = {}
    if 'task' in pipeline.conditions:
        from basicsr.archs.prompt_blocks import MIOIR_TASKS
        if args.task is None:
            raise SystemExit(f'error: {opt["network_g"]["type"]} needs --task (an id 0..6 or one of '
                             f'{", ".join(MIOIR_TASKS)})')
        task = MIOIR_TASKS.index(args.task) if args.task in MIOIR_TASKS else None
        if task is None and not args.task.isdigit():
            raise SystemExit(f'error: --task {args.task!r} is neither an id 0..6 nor one of {", ".join(MIOIR_TASKS)}')
        conditions['task'] = torch.tensor([int(args.task) if task is None else task], device=device)
    if pipeline.tlc:
        print(f"TLC: training size {pipeline.tlc['train_size'][2]}x{pipeline.tlc['train_size'][3]}")
    out_dir = args.output
    inputs = find_inputs(args.input, out_dir)
    records, failures = [], []
    with output_folder(out_dir):  # removed again when nothing was restored into a folder this command made
        restorer = Restorer(pipeline, conditions, in_ch, device, out_dir, args.keep_bit_depth, inputs)
        for path in inputs:
            try:
                rec = restorer.restore(path)
            except ValueError as exc:  # ImageReadError, DataError, sizes: this file only
                if args.input.is_file():
                    raise
                print(f'warning: skipping {path}: {exc}', file=sys.stderr)
                failures.append((path, str(exc)))
                continue
            records.append(rec)
            print(' '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in rec.items()))
    print(f'restored {len(records)} of {len(inputs)} image(s): wrote *_restored.png and *_side_by_side.png '
          f'to {out_dir}')
    if failures:
        print(f'{len(failures)} of {len(inputs)} image(s) failed (see the warnings above): '
              + ', '.join(str(p) for p, _ in failures), file=sys.stderr)
        raise ImagesFailed(records, failures)
    return records


if __name__ == '__main__':
    from basicsr.utils.cli import run_cli
    sys.exit(run_cli(main))
