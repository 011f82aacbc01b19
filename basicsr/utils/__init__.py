"""Shared utilities: registries, image I/O, logging, options.

``from basicsr.utils import X`` offers BasicSR's names (image helpers in BasicSR's BGR convention,
``FileClient``, loggers, seeding, folders, colour conversions, ``DiffJPEG``), each imported on first use so that
``import basicsr.utils.registry`` stays cheap.
"""
import importlib
from typing import Any

_EXPORTS = {
    'basicsr.utils.color_util': ('bgr2ycbcr', 'rgb2ycbcr', 'rgb2ycbcr_pt', 'ycbcr2bgr', 'ycbcr2rgb'),
    'basicsr.utils.diffjpeg': ('DiffJPEG', ),
    'basicsr.utils.file_client': ('FileClient', ),
    'basicsr.utils.img_bgr': ('crop_border', 'imfrombytes', 'img2tensor', 'imwrite', 'tensor2img'),
    'basicsr.utils.img_process_util': ('USMSharp', 'usm_sharp'),
    'basicsr.utils.logger': ('AvgTimer', 'MessageLogger', 'get_env_info', 'get_root_logger', 'init_tb_logger',
                             'init_wandb_logger'),
    'basicsr.utils.misc': ('check_resume', 'get_time_str', 'make_exp_dirs', 'mkdir_and_rename', 'scandir',
                           'set_random_seed', 'sizeof_fmt'),
    'basicsr.utils.options': ('yaml_load', ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'basicsr.utils' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
