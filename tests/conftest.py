"""Shared pytest fixtures: repository paths, the shared real-data folder, deterministic torch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RENYI_GAN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
EMBEDDED_MNIST = REPO_ROOT / "data" / "mnist"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Each test starts from the same seed and at most 2 threads (the CI machine has 2 cores)."""
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def shared_data() -> Path:
    """The read-only real-data folder (`../shared/data`); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
