"""Import every ``*_arch.py`` of this folder so that their registrations run (the BasicSR convention)."""
import importlib
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
_modules = [importlib.import_module(f'{__name__}.{osp.splitext(name)[0]}')
            for name in scandir(_folder) if name.endswith('_arch.py')]
