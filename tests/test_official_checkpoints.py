"""Official checkpoint layouts load strictly (``load_pretrained``, test.py, demo.py).

No official weights can be downloaded here, so each test writes a checkpoint in the release's layout (nesting,
prefixes, extra entries such as optimiser / epoch / hyper-parameters, plain types only) with the names and
shapes of the architecture manifest of the official configuration (``../shared/reference/arch_manifests``,
recorded from the official code). Full-size networks and tensors live on the meta device: names and shapes are
checked, nothing is allocated.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from basicsr.archs import build_network
from basicsr.archs.pretrained import CheckpointMismatchError, load_pretrained

MANIFESTS = Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'arch_manifests'
ROOT = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict:
    path = MANIFESTS / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path} not available (../shared absent)')
    return json.loads(path.read_text())


def meta_net_and_state(name: str):
    """The official configuration of manifest ``name`` built on the meta device, and its state dict
    (manifest names and shapes, meta tensors)."""
    m = manifest(name)
    with torch.device('meta'):
        net = build_network({'type': m['registry_type'], **m['kwargs']})
        state = {k: torch.empty(shape) for k, shape, *_ in m['state_dict']}
    return net, state


def optimizer_state(n: int) -> dict:
    """An Adam state_dict of plain types, as in training checkpoints."""
    return {'state': {}, 'param_groups': [{'lr': 2e-4, 'betas': (0.9, 0.999), 'eps': 1e-8, 'weight_decay': 0.0,
                                           'amsgrad': False, 'params': list(range(n))}]}


def lightning(state: dict) -> dict:
    """PromptIR's release (``model.ckpt``, pytorch-lightning 2.0): the LightningModule keeps the network as
    ``self.net``, so every key is ``net.<name>``."""
    return {'epoch': 119, 'global_step': 240000, 'pytorch-lightning_version': '2.0.1',
            'state_dict': {f'net.{k}': v for k, v in state.items()},
            'loops': {'fit_loop': {'epoch_progress': {'current': {'completed': 119}}}}, 'callbacks': {},
            'optimizer_states': [optimizer_state(len(state))],
            'lr_schedulers': [{'warmup_epochs': 15, 'max_epochs': 150, 'last_epoch': 119}],
            'hyper_parameters': {}}


def training_checkpoint(state: dict) -> dict:
    """MPRNet / DSRIR ``model_best.pth``: ``{'epoch', 'state_dict', 'optimizer'}``."""
    return {'epoch': 3000, 'state_dict': dict(state), 'optimizer': optimizer_state(len(state))}


def params(state: dict) -> dict:
    """HINet / NAFNet / NAFSSR / Restormer / SwinIR / MSRResNet releases."""
    return {'params': dict(state)}


def params_and_ema(state: dict) -> dict:
    """BasicSR's ``net_g_*.pth`` of a run with EMA (MiOIR's weights are BasicSR saves)."""
    return {'params': dict(state), 'params_ema': dict(state)}


LAYOUTS = [
    ('PromptIR__default', lightning, 'auto'),
    ('MPRNet__deblurring', training_checkpoint, 'auto'),
    ('MPRNet__denoising', training_checkpoint, 'auto'),
    ('MPRNet__deraining', training_checkpoint, 'auto'),
    ('DSRIR__default', training_checkpoint, 'auto'),
    ('HINet__gopro', params, 'auto'),
    ('HINet__sidd_0.5x', params, 'auto'),
    ('NAFNet__sidd_width64', params, 'auto'),
    pytest.param('NAFNetLocal__gopro_width64', params, 'auto', marks=pytest.mark.slow),  # TLC calibration
    ('Baseline__sidd_width32', params, 'auto'),
    ('NAFSSR__T_x2', params, 'auto'),
    ('Restormer__motion_deblurring', params, 'auto'),
    ('Restormer__dual_pixel_defocus_deblurring', params, 'auto'),
    ('SwinIR__classical_srx4', params, 'auto'),
    ('MSRResNet__x4', params_and_ema, 'params'),
    ('SRResNet_EP__mioir', params_and_ema, 'params'),
    ('SwinIR_AP__mioir', params, 'params'),
    ('Restormer_EP__mioir', params_and_ema, 'params'),
    ('Uformer_AP__mioir', params, 'params'),
    ('PromptIR__mioir', params, 'params'),
]


@pytest.mark.parametrize('name,layout,key', LAYOUTS, ids=[getattr(p, 'values', p)[0] for p in LAYOUTS])
def test_official_layout_loads_strictly(name, layout, key, tmp_path):
    net, state = meta_net_and_state(name)
    path = tmp_path / 'release.pth'
    torch.save(layout(state), path)
    load_pretrained(net, path, key=key, strict=True)
    # one entry short: the same layout is refused, naming the entry
    dropped = sorted(state)[len(state) // 2]
    del state[dropped]
    torch.save(layout(state), path)
    with pytest.raises(CheckpointMismatchError, match=dropped.replace('.', r'\.')):
        load_pretrained(net, path, key=key, strict=True)


def test_mioir_classifier_release_loads_strictly(tmp_path):
    """MiOIR's ``Classifier.pth`` (a BasicSR save, ``params``; no manifest: the classifier's official names)."""
    net = build_network({'type': 'Classifier'})
    torch.save({'params': {k: torch.zeros_like(v) for k, v in net.state_dict().items()}}, tmp_path / 'c.pth')
    load_pretrained(net, tmp_path / 'c.pth', key='params', strict=True)
    assert all(float(v.abs().sum()) == 0 for v in net.state_dict().values())


@pytest.mark.slow
def test_unirestorer_model_pth_loads_strictly(tmp_path):
    """UniRestorer's ``model.pth``: a raw state dict with the whole DA-CLIP inside (its frozen CLIP ignored)."""
    net, state = meta_net_and_state('UniRestorer__default')
    daclip = manifest('DACLIPImageEncoder__daclip_vit_b32')['official_daclip_model']['state_dict']
    with torch.device('meta'):
        state.update({f'daclip_model.{k}': torch.empty(s) for k, s, *_ in daclip})
    torch.save(state, tmp_path / 'model.pth')
    load_pretrained(net, tmp_path / 'model.pth', strict=True)


def test_owner_prefix_is_removed_only_when_the_rest_matches(tmp_path):
    """``net.`` goes only when every remaining name is the network's; a network whose own names start with
    that component keeps them."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    sd = net.state_dict()
    torch.save({'state_dict': {f'net.{k}': v for k, v in sd.items()}, 'epoch': 1}, tmp_path / 'a.ckpt')
    load_pretrained(net, tmp_path / 'a.ckpt')
    torch.save({'state_dict': {f'net.{k}': v for k, v in sd.items()} | {'other.weight': sd['0.weight']}},
               tmp_path / 'b.ckpt')
    with pytest.raises(CheckpointMismatchError):
        load_pretrained(net, tmp_path / 'b.ckpt')
    holder = torch.nn.Module()
    holder.net = torch.nn.Conv2d(3, 3, 1)
    torch.save(holder.state_dict(), tmp_path / 'c.pth')
    load_pretrained(holder, tmp_path / 'c.pth')  # already matching: nothing stripped


# ------------------------------------------------------------------ through test.py and demo.py (small configs)
TINY_PROMPTIR = {'type': 'PromptIR', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                 'heads': [1, 1, 1, 1], 'decoder': True}


def _write_pair(root: Path, size: int = 32) -> None:
    import cv2
    rng = np.random.default_rng(0)
    for sub in ('gt', 'lq'):
        (root / sub).mkdir(parents=True)
    gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'gt' / 'a.png'), gt)
    cv2.imwrite(str(root / 'lq' / 'a.png'), np.clip(gt.astype(int) + 10, 0, 255).astype(np.uint8))


@pytest.mark.slow
def test_lightning_and_training_layouts_through_test_and_demo(tmp_path):
    """PromptIR's Lightning layout and MPRNet's training layout run through basicsr/test.py and demo.py."""
    import yaml

    from basicsr.demo import main as demo_main
    from basicsr.test import main as test_main
    torch.manual_seed(0)
    _write_pair(tmp_path / 'data')
    cases = {'promptir': (TINY_PROMPTIR, lightning),
             'mprnet': ({'type': 'MPRNet', 'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4,
                         'num_cab': 1}, training_checkpoint)}
    for name, (spec, layout) in cases.items():
        net = build_network(spec)
        torch.save(layout(net.state_dict()), tmp_path / f'{name}.pth')
        opt = {'name': f'official_{name}', 'model_type': 'ImageRestorationModel', 'num_gpu': 0,
               'network_g': spec, 'path': {'pretrain_network_g': str(tmp_path / f'{name}.pth')},
               'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset',
                                       'dataroot_gt': str(tmp_path / 'data' / 'gt'),
                                       'dataroot_lq': str(tmp_path / 'data' / 'lq'), 'io_backend': {'type': 'disk'}}},
               'val': {'metrics': {'psnr': {'type': 'calculate_psnr'}}}, 'test': {'pad_multiple': 8}}
        (tmp_path / f'{name}.yml').write_text(yaml.safe_dump(opt))
        summary = test_main(['-opt', str(tmp_path / f'{name}.yml')], root=tmp_path)
        assert np.isfinite(summary['tiny']['psnr'])
        records = demo_main(['--input', str(tmp_path / 'data' / 'lq' / 'a.png'), '--output', str(tmp_path / name),
                             '--opt', str(tmp_path / f'{name}.yml'), '--device', 'cpu'])
        assert len(records) == 1 and (tmp_path / name / 'a_restored.png').is_file()
        with torch.no_grad():  # the loaded weights are the written ones: same output as the network itself
            ref = net.eval()(torch.zeros(1, 3, 16, 16))
        ref = ref[0] if isinstance(ref, (tuple, list)) else ref
        loaded = build_network(spec)
        load_pretrained(loaded, tmp_path / f'{name}.pth')
        with torch.no_grad():
            out = loaded.eval()(torch.zeros(1, 3, 16, 16))
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert torch.equal(out, ref)
