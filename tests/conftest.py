"""Shared test fixtures: the ../shared reference folder (tests skip cleanly without it) and small helpers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'

torch.set_num_threads(1)  # predictable on shared CI machines; subprocesses get OMP_NUM_THREADS=1 too


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'cuda: needs a CUDA device (skipped without one)')
    config.addinivalue_line('markers', 'slow: takes more than a few seconds (subprocesses, real images)')


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def shared_dir() -> Path:
    """The ../shared folder beside the checkout; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip('../shared is not present')
    return SHARED


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return ROOT
