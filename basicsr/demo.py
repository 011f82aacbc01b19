"""Demo: restore images with a trained model.

``python basicsr/demo.py`` with no arguments restores the noisy samples in ``datasets/samples/`` with the
bundled colour-denoising model (sigma 25) and writes the outputs and side-by-side images
(input | output | clean, when the clean sample exists) to ``results/demo/``.

Everything else: ``--input FILE|DIR --output DIR --opt YAML --weights PATH --device cpu|cuda`` and the
inference options ``--tile N --tile-overlap M --self-ensemble --tlc``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ''):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPT = ROOT / 'options' / 'demo' / 'denoise_color_sigma25.yml'
DEFAULT_WEIGHTS = ROOT / 'experiments' / 'pretrained_models' / 'NAFNet_w16_denoise_color_sigma25.safetensors'
DEFAULT_INPUT = ROOT / 'datasets' / 'samples'
NOISY_TAG, CLEAN_TAG = '_noisy', '_clean'


def find_inputs(path: Path) -> List[Path]:
    """Images to restore: the file itself, or the images in a folder (only ``*_noisy`` ones when the
    folder holds sample pairs)."""
    from basicsr.data.data_util import is_image_file
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f'--input {path}: no such file or folder')
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p.name))
    noisy = [p for p in files if p.stem.endswith(NOISY_TAG)]
    if not (noisy or files):
        raise FileNotFoundError(f'--input {path}: the folder has no images')
    return noisy or files


def main(argv: Optional[List[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', type=Path, default=DEFAULT_INPUT, help='image file or folder')
    parser.add_argument('--output', type=Path, default=ROOT / 'results' / 'demo', help='output folder')
    parser.add_argument('--opt', type=Path, default=DEFAULT_OPT, help='option YAML with network_g (and test:)')
    parser.add_argument('--weights', type=Path, default=None,
                        help='weights file (default: path.pretrain_network_g of --opt, else the bundled model)')
    parser.add_argument('--device', default=None, choices=['cpu', 'cuda'], help='default: cuda if available')
    parser.add_argument('--tile', type=int, default=None, help='tile size for tiled inference')
    parser.add_argument('--tile-overlap', type=int, default=32, help='overlap between tiles (pixels)')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 flip/rotation self-ensemble')
    parser.add_argument('--tlc', action='store_true', help='test-time local converter (test.tlc of --opt, or '
                        'the training size given by --tlc-train-size)')
    parser.add_argument('--tlc-train-size', type=int, default=256,
                        help='training patch size for --tlc (the bundled model was trained on 64 px patches)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='unpickle any object in --weights: only for a file you trust, since unpickling can run '
                             'code (default: off, tensors and containers only)')
    parser.add_argument('--task', default=None,
                        help='task for networks that take one (MiOIR *_EP explicit prompts): an id 0..6 or a name '
                             '(blur, noise, jpeg, rain, haze, dark, sr); for routed networks (UniRestorer) the '
                             'instruction mode: a tree node name such as Derain')
    args = parser.parse_args(argv)

    import torch

    from basicsr.archs import build_network
    from basicsr.archs.outputs import main_output
    from basicsr.archs.pretrained import load_pretrained
    from basicsr.engine.evaluator import side_by_side
    from basicsr.inference.pipeline import build_inference
    from basicsr.metrics.profiles import compute_metrics
    from basicsr.utils.img_util import img2tensor, read_image, tensor2img, write_image
    from basicsr.utils.options import load_with_bases

    opt = load_with_bases(args.opt)
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
        settings['tile'] = {'size': args.tile, 'overlap': args.tile_overlap}
    if args.self_ensemble:
        settings['self_ensemble'] = True
    if args.tlc and not settings.get('tlc'):
        settings['tlc'] = {'train_size': [1, in_ch, args.tlc_train_size, args.tlc_train_size]}
    if args.task is not None and hasattr(net, 'instruction_masks'):
        settings['instruction'] = args.task
    pipeline = build_inference(net, settings, where='test')
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
    out_dir = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path in find_inputs(args.input):
        lq = img2tensor(read_image(path, channels=in_ch))
        start = time.time()
        with torch.no_grad():
            out = main_output(pipeline(lq.unsqueeze(0).to(device), **conditions)).clamp(0, 1).float().cpu()[0]
        seconds = time.time() - start
        name = path.stem[:-len(NOISY_TAG)] if path.stem.endswith(NOISY_TAG) else path.stem
        write_image(out_dir / f'{name}_restored.png', tensor2img(out))
        clean_path = path.with_name(name + CLEAN_TAG + '.png')
        gt = img2tensor(read_image(clean_path, channels=in_ch)) if clean_path.is_file() else None
        write_image(out_dir / f'{name}_side_by_side.png', tensor2img(side_by_side(lq, out, gt)))
        rec = {'image': path.name, 'seconds': round(seconds, 3)}
        routing = pipeline.routing_records()  # routed networks (UniRestorer): leaf, level, expert
        rec.update(routing[0] if routing else {})
        if gt is not None and gt.shape == out.shape:
            rec.update({f'{k}_input': v for k, v in compute_metrics(lq, gt, 'basicsr_rgb').items()})
            rec.update({f'{k}_output': v for k, v in compute_metrics(out, gt, 'basicsr_rgb').items()})
        records.append(rec)
        print(' '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in rec.items()))
    print(f'wrote {len(records)} restored image(s) and side-by-side comparisons to {out_dir}')
    return records


if __name__ == '__main__':
    main()
