"""Shared test settings: two threads (two cores; NAS_THREADS overrides); a fresh SQLite store."""

import os

import pytest
import torch

from nas.store import Store


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    torch.set_num_threads(int(os.environ.get("NAS_THREADS", "2")))


@pytest.fixture
def store(tmp_path):
    """A migrated store in a new SQLite file."""
    with Store(f"sqlite:///{tmp_path / 'nas.db'}") as opened:
        yield opened
