"""Samples of a Real-ESRGAN-style run: degrade HR crops with the run's second-order degradation, restore them.

``python scripts/realesrgan_samples.py -opt options/train/RealESRGAN/RealESRGAN_tiny_demo.yml [--num 4] [--size 192]``

Loads the newest checkpoint of the run, takes the first ``--num`` images of its training set (``--size`` crops,
kernels drawn with ``--seed``), synthesises LQ inputs exactly as training does (USM, two degradation rounds,
sinc, JPEG) and writes ``<experiments>/<name>/samples/<i>.png`` = ``input (nearest x scale) | output (EMA
network) | ground truth``. Prints the mean absolute error to the ground truth of the output and of a bicubic
upsampling of the input (on the 0..1 scale).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from basicsr.data import build_dataset  # noqa: E402
from basicsr.engine.checkpoint import load_latest_checkpoint  # noqa: E402
from basicsr.engine.evaluator import side_by_side  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils.cli import ArgumentParser, run_cli  # noqa: E402
from basicsr.utils.img_util import tensor2img, write_image  # noqa: E402
from basicsr.utils.options import parse_options  # noqa: E402


def main(argv=None) -> dict:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('-opt', '--opt', required=True, help='the training option file of the run')
    parser.add_argument('--num', type=int, default=4, help='number of sample images')
    parser.add_argument('--size', type=int, default=192, help='side of the HR crops (a multiple of the scale)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the crops, kernels and degradations')
    parser.add_argument('--root', default=None, help='folder holding experiments/ (default: the working directory)')
    args = parser.parse_args(argv)
    opt = parse_options(args.opt, [f'datasets.train.crop_pad_size={args.size}'], is_train=True, root=args.root)
    model = build_model(opt)
    state = load_latest_checkpoint(opt['path']['training_states'])
    if state is None:
        raise SystemExit(f"error: no checkpoint in {opt['path']['training_states']}; train the run first")
    model.load_state_dict(state['model'])
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = build_dataset(opt['datasets']['train'])
    items = [dataset[i] for i in range(min(args.num, len(dataset)))]
    batch = {k: torch.stack([it[k] for it in items]) for k in ('gt', 'kernel1', 'kernel2', 'sinc_kernel')}
    model.kernel1, model.kernel2, model.sinc_kernel = batch['kernel1'], batch['kernel2'], batch['sinc_kernel']
    gt = batch['gt'].to(model.device)
    lq = model.degrade(model.usm_sharpener(gt))
    with torch.no_grad():
        out = model.inference_network()(lq).clamp(0, 1)
    bicubic = F.interpolate(lq, size=gt.shape[-2:], mode='bicubic', align_corners=False).clamp(0, 1)
    folder = Path(opt['path']['experiments_root']) / 'samples'
    for i in range(gt.size(0)):
        write_image(folder / f'{i}.png', tensor2img(side_by_side(lq[i].cpu(), out[i].cpu(), gt[i].cpu())))
    result = {'iteration': int(state['iter']), 'l1_output': float((out - gt).abs().mean()),
              'l1_bicubic': float((bicubic - gt).abs().mean()), 'samples': str(folder)}
    print(f"iteration {result['iteration']}: mean |output - gt| = {result['l1_output']:.4f}, "
          f"mean |bicubic(input) - gt| = {result['l1_bicubic']:.4f}; samples in {folder}")
    return result


if __name__ == '__main__':
    sys.exit(run_cli(main))
