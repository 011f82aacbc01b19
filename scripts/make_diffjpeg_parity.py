"""Write DiffJPEG parity vectors from the official code: BasicSR's ``DiffJPEG`` and MiOIR's JPEG synthesis.

    python scripts/make_diffjpeg_parity.py --basicsr /path/to/XPixelGroup/BasicSR --mioir /path/to/MiOIR \
        --image ../shared/data/CBSD68/102061.png [--out tests/data/diffjpeg_parity.safetensors]

* ``diffjpeg.*``: BasicSR's ``DiffJPEG`` (``basicsr/utils/diffjpeg.py``, loaded by file path) on a small batch
  (2, 3, 29, 35) in both rounding modes, with one quality for the batch and with a per-image quality tensor.
* ``mioir.*``: MiOIR's JPEG synthesis (``data_script/add_MiO_train_degradation.py``): the image read as uint8,
  ``img2tensor / 255``, rounding to 8 bits, ``convertToJpeg(img, q)`` (``DiffJPEG(differentiable=False)``),
  rounding to 8 bits and ``tensor2img`` -- the script's own functions, imported with stubs for the modules
  that JPEG does not use (torchvision's ``make_grid``, the blur/noise helpers).

Inputs are chosen (seed / crop offset searched) so that no quantised DCT coefficient of the official
computation lies within ``MARGIN`` of a rounding tie: float32 results of other CPUs then round every
coefficient the same way, and the test can use a tolerance of float rounding (``margin`` is stored).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 1e-4  # distance (in quantisation steps) of every coefficient from a half-integer; float32 errors of
# the coefficients are below about 1e-5 steps (DC terms of order 100 steps)
DIFFJPEG_QUALITIES = [30, 75, [20.0, 55.0]]
MIOIR_QUALITIES = [30, 47, 70]  # MiOIR's range is round(U(30, 70)); 47 < 50 and 70 >= 50 use both formulas
MIOIR_CROP = (45, 53)           # not multiples of 16: the zero padding matters


def load_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def recording(jpeger: torch.nn.Module, log: List[torch.Tensor]) -> None:
    """Make the official quantisers record their inputs (the coefficients before rounding)."""
    for quantizer in (jpeger.compress.y_quantize, jpeger.compress.c_quantize):
        rounding = quantizer.rounding

        def record(x: torch.Tensor, rounding: Callable = rounding) -> torch.Tensor:
            log.append(x.detach().clone())
            return rounding(x)
        quantizer.rounding = record


def tie_margin(log: List[torch.Tensor]) -> float:
    return min(float(((t - t.floor()) - 0.5).abs().min()) for t in log)


def official_basicsr(root: Path) -> types.ModuleType:
    return load_file(root / 'basicsr' / 'utils' / 'diffjpeg.py', 'official_basicsr_diffjpeg')


def official_mioir(root: Path) -> types.ModuleType:
    """MiOIR's degradation script with its ``basicsr`` imports pointed at MiOIR's own files (or stubs)."""
    for name in [n for n in sys.modules if n == 'basicsr' or n.startswith('basicsr.')]:
        del sys.modules[name]
    tv = types.ModuleType('torchvision')
    tv_utils = types.ModuleType('torchvision.utils')
    tv_utils.make_grid = None  # only used by tensor2img for 4-D input; the script passes (1, 3, H, W) squeezed
    tv.utils = tv_utils
    sys.modules.setdefault('torchvision', tv)
    sys.modules.setdefault('torchvision.utils', tv_utils)
    for name, path in (('basicsr', 'basicsr'), ('basicsr.data', 'basicsr/data')):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(root / path)]
        sys.modules[name] = pkg
    img_util = load_file(root / 'basicsr' / 'utils' / 'img_util.py', 'basicsr.utils.img_util')
    diffjpeg = load_file(root / 'basicsr' / 'utils' / 'diffjpeg.py', 'basicsr.utils.diffjpeg')
    utils = types.ModuleType('basicsr.utils')
    utils.img2tensor, utils.tensor2img, utils.DiffJPEG = img_util.img2tensor, img_util.tensor2img, diffjpeg.DiffJPEG
    sys.modules['basicsr.utils'] = utils
    stub_names = {'basicsr.utils.img_process_util': ['filter2D'],
                  'basicsr.data.degradations': ['circular_lowpass_kernel', 'random_mixed_kernels',
                                                'random_add_gaussian_noise_pt']}
    for name, attrs in stub_names.items():  # blur / noise helpers, not used by the JPEG path
        stub = types.ModuleType(name)
        for attr in attrs:
            setattr(stub, attr, None)
        sys.modules[name] = stub
    return load_file(root / 'data_script' / 'add_MiO_train_degradation.py', 'official_mioir_degradation')


def diffjpeg_vectors(module: types.ModuleType) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Search a seed whose every case keeps MARGIN from rounding ties; return tensors and metadata."""
    for seed in range(1000):
        gen = torch.Generator().manual_seed(seed)
        # smooth content (like images) plus texture, in [0, 1]
        x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 29, 35, generator=gen), 3, 1, 1)
        tensors, cases, margins = {'diffjpeg.input': x}, [], []
        for differentiable in (False, True):
            for i, quality in enumerate(DIFFJPEG_QUALITIES):
                log: List[torch.Tensor] = []
                jpeger = module.DiffJPEG(differentiable=differentiable)
                recording(jpeger, log)
                q = torch.tensor(quality) if isinstance(quality, list) else quality
                with torch.no_grad():
                    out = jpeger(x.clone(), quality=q)
                key = f"diffjpeg.{'diff' if differentiable else 'round'}{i}"
                tensors[key] = out
                margins.append(tie_margin(log))
                cases.append({'key': key, 'differentiable': differentiable, 'quality': quality})
        if min(margins) >= MARGIN:
            return tensors, {'seed': seed, 'cases': cases, 'margin': min(margins)}
    raise RuntimeError('no seed keeps every coefficient away from rounding ties')


def mioir_vectors(module: types.ModuleType, image: Path) -> Tuple[Dict[str, torch.Tensor], dict]:
    """MiOIR's JPEG synthesis steps on a crop of ``image``, searching the crop offset for tie margins."""
    bgr = cv2.imread(str(image))
    h, w = MIOIR_CROP
    offsets = [(i, j) for i in range(0, bgr.shape[0] - h, 7) for j in range(0, bgr.shape[1] - w, 7)]
    for top, left in offsets:
        crop = np.ascontiguousarray(bgr[top:top + h, left:left + w])
        tensors = {'mioir.input_rgb_u8': torch.from_numpy(crop[:, :, ::-1].copy())}
        margins = []
        for q in MIOIR_QUALITIES:
            log: List[torch.Tensor] = []
            original = module.DiffJPEG

            def instrumented(differentiable: bool = False) -> torch.nn.Module:
                jpeger = original(differentiable=differentiable)
                recording(jpeger, log)
                return jpeger
            module.DiffJPEG = instrumented
            try:
                img = module.img2tensor([crop])[0].unsqueeze(0) / 255.  # the script's steps, in order
                img = torch.clamp((img * 255.0).round(), 0, 255) / 255.
                img = module.convertToJpeg(img, q)
                img = torch.clamp((img * 255.0).round(), 0, 255) / 255.
                out_bgr = module.tensor2img(img, min_max=(0, 1))
            finally:
                module.DiffJPEG = original
            tensors[f'mioir.q{q}_rgb_u8'] = torch.from_numpy(out_bgr[:, :, ::-1].copy())
            margins.append(tie_margin(log))
        if min(margins) >= MARGIN:
            return tensors, {'image': image.name, 'offset': [top, left], 'qualities': MIOIR_QUALITIES,
                             'margin': min(margins)}
    raise RuntimeError(f'no crop of {image} keeps every coefficient away from rounding ties')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--basicsr', type=Path, required=True, help='checkout of XPixelGroup/BasicSR')
    parser.add_argument('--mioir', type=Path, required=True, help='checkout of Xiangtaokong/MiOIR')
    parser.add_argument('--image', type=Path, required=True, help='an RGB image (e.g. a CBSD68 PNG)')
    parser.add_argument('--out', type=Path, default=ROOT / 'tests' / 'data' / 'diffjpeg_parity.safetensors')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tensors, meta_basicsr = diffjpeg_vectors(official_basicsr(args.basicsr))
    mioir_tensors, meta_mioir = mioir_vectors(official_mioir(args.mioir), args.image)
    tensors.update(mioir_tensors)
    meta = {'diffjpeg': json.dumps(meta_basicsr), 'mioir': json.dumps(meta_mioir), 'torch': torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.out), metadata=meta)
    print(f'{args.out} ({args.out.stat().st_size / 1024:.0f} KiB); margins {meta_basicsr["margin"]:.2e} '
          f'(BasicSR), {meta_mioir["margin"]:.2e} (MiOIR)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
