"""Keys of the official option files that the toolbox reads differently, or that the official code never reads.

The official files of the supported repositories (BasicSR, Restormer, NAFNet/NAFSSR, HINet, MiOIR) run with
only their dataset paths changed. :func:`adapt_official_keys` runs on the loaded file before validation:

- keys that the official code itself never reads (NAFSSR's ``val.trans_num``) are dropped with one warning
  naming them as unused; any other unknown key stays an error (a typo is not silently accepted);
- NAFNet's ``train.mixup: false`` is dropped (its model would call an undefined ``mixup_aug`` for ``true``;
  the toolbox's MixUp is ``train.mixing_augs``);
- MiOIR's classifier blocks of its ``*_EP_class`` test files (``network_c`` and ``path_c``) become
  ``test.task_classifier`` (the classifier that picks the explicit prompt);
- a model class may declare ``official_defaults(opt)``, defaults of its official code that differ from the
  toolbox's (MiOIR: the test-time padding of its SwinIR/Restormer/Uformer/PromptIR models, weights from
  ``params``): filled in where the file says nothing;
- architectures of BasicSR that the toolbox does not support (EDSR, ...) are refused naming ``network_g.type``
  (unless an imported plug-in registers one),
  and so is BasicSR's NIQE metric (its pristine model is not shipped, see ``UNSUPPORTED_METRICS``).
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, List

# dotted key -> the official code that ignores it
UNUSED_KEYS: Dict[str, str] = {
    'val.trans_num': "NAFNet's models (NAFSSR files) never read it",
}

# architectures named by official option files of BasicSR that this toolbox does not implement
UNSUPPORTED_ARCHS: Dict[str, str] = {
    'EDSR': "BasicSR's EDSR", 'RCAN': "BasicSR's RCAN",
    'EDVR': "BasicSR's EDVR", 'BasicVSR': "BasicSR's BasicVSR", 'IconVSR': "BasicSR's IconVSR",
}

# metrics of official files that the toolbox refuses, with the reason
UNSUPPORTED_METRICS: Dict[str, str] = {
    'calculate_niqe': "BasicSR's NIQE scores against a pristine model (mean and covariance of natural-scene "
                      'statistics fitted on pristine images, niqe_pris_params.npz in BasicSR); that model is neither '
                      'shipped with this toolbox nor computable here without its pristine image set, so NIQE is '
                      'not supported: remove this metric block (PSNR/SSIM are)',
}


class OfficialKeyError(ValueError):
    """An official option file asks for something the toolbox does not support (message names the key)."""


def adapt_official_keys(opt: Dict[str, Any], source: str) -> Dict[str, Any]:
    """A copy of ``opt`` with the official keys above translated; raises :class:`OfficialKeyError` for an
    unsupported architecture or ``train.mixup: true``."""
    opt = copy.deepcopy(opt)
    for key in ('network_g', 'network_d'):
        arch = (opt.get(key) or {}).get('type') if isinstance(opt.get(key), dict) else None
        if isinstance(arch, str) and arch in UNSUPPORTED_ARCHS and not _registered(arch):
            raise OfficialKeyError(f"option file {source}: '{key}.type': {arch} ({UNSUPPORTED_ARCHS[arch]}) is not "
                                   'supported by this toolbox (see the README, Architectures)')
    metrics = (opt.get('val') or {}).get('metrics') if isinstance(opt.get('val'), dict) else None
    for key, block in (metrics or {}).items() if isinstance(metrics, dict) else ():
        if isinstance(block, dict) and block.get('type') in UNSUPPORTED_METRICS:
            raise OfficialKeyError(f"option file {source}: 'val.metrics.{key}.type': {block['type']} is not supported: "
                                   + UNSUPPORTED_METRICS[block['type']])
    unused = _drop_unused(opt)
    train = opt.get('train')
    if isinstance(train, dict) and 'mixup' in train:
        if train['mixup'] not in (False, None):
            raise OfficialKeyError(f"option file {source}: 'train.mixup': {train['mixup']!r} is not supported "
                                   "(NAFNet's model has no mixup_aug to run it); use train.mixing_augs: "
                                   '{mixup: true, ...}')
        del train['mixup']
    _classifier_blocks(opt, source)
    _model_defaults(opt)
    if unused:
        logging.getLogger('basicsr').warning(f'{source}: ignoring keys the official code never reads: '
                                             + '; '.join(unused))
    return opt


def _registered(arch: str) -> bool:
    """Whether a plug-in (imported before this check) registered ``arch`` itself."""
    from basicsr.utils.registry import ARCH_REGISTRY
    return arch in ARCH_REGISTRY


def _drop_unused(opt: Dict[str, Any]) -> List[str]:
    dropped = []
    for dotted, why in UNUSED_KEYS.items():
        *parents, leaf = dotted.split('.')
        node: Any = opt
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            del node[leaf]
            dropped.append(f"'{dotted}' ({why})")
    return dropped


def _classifier_blocks(opt: Dict[str, Any], source: str) -> None:
    """MiOIR ``network_c`` + ``path_c`` -> ``test.task_classifier`` {network, weights, param_key}."""
    if 'network_c' not in opt and 'path_c' not in opt:
        return
    net, path = opt.pop('network_c', None), opt.pop('path_c', None) or {}
    if not isinstance(net, dict) or not isinstance(path, dict):
        raise OfficialKeyError(f"option file {source}: 'network_c' must be a network mapping and 'path_c' a mapping "
                               f'with pretrain_network_g (MiOIR classifier blocks), got {net!r} and {path!r}')
    block: Dict[str, Any] = {'network': net, 'weights': path.get('pretrain_network_g')}
    # MiOIR passes the literal 'param_key_g' as the key, which BasicSR's loader turns into 'params'
    block['param_key'] = path.get('param_key_g') or 'params'
    test = opt.setdefault('test', {}) if isinstance(opt.get('test', {}), dict) else None
    if test is None:
        raise OfficialKeyError(f"option file {source}: 'test' must be a mapping to receive network_c/path_c")
    test.setdefault('task_classifier', block)


def _model_defaults(opt: Dict[str, Any]) -> None:
    """Fill the defaults a model class declares (``official_defaults(opt) -> {section: {key: value}}``) where
    the file says nothing; ``val`` only when the file has a ``val`` section."""
    from basicsr.utils.registry import MODEL_REGISTRY, RegistryError
    name = opt.get('model_type')
    try:
        cls = MODEL_REGISTRY.get(name) if isinstance(name, str) else None
    except RegistryError:
        return  # reported by validation
    defaults = getattr(cls, 'official_defaults', None)
    if defaults is None:
        return
    for section, values in defaults(opt).items():
        if section == 'eval_datasets':  # keys of every validation / test set of a type that reads them
            for key, block in (opt.get('datasets') or {}).items():
                paired = isinstance(block, dict) and block.get('type') == 'PairedImageDataset'
                if paired and not key.startswith('train'):
                    for k, v in values.items():
                        block.setdefault(k, v)
            continue
        if not values or (section == 'val' and not isinstance(opt.get('val'), dict)):
            continue
        block = opt.setdefault(section, {})
        if isinstance(block, dict):
            for k, v in values.items():
                block.setdefault(k, v)
