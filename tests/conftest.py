"""Shared test settings: two threads (the machine has two cores); a store in a fresh SQLite file."""

import pytest
import torch

from nas.store import Store


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def store(tmp_path):
    """A migrated store in a new SQLite file."""
    with Store(f"sqlite:///{tmp_path / 'nas.db'}") as opened:
        yield opened
