"""Network architectures, one ``<name>_arch.py`` file each, resolved lazily by name."""
from typing import Any, Dict, List

from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ['build_network', 'list_networks', 'ARCH_REGISTRY']


def build_network(opt: Dict[str, Any]) -> nn.Module:
    """Build a network from ``{'type': <registered name>, **kwargs}`` (the option file's ``network_g``)."""
    return ARCH_REGISTRY.build(dict(opt))


def list_networks() -> List[str]:
    """Names of every registered architecture (found without importing them)."""
    return ARCH_REGISTRY.keys()
