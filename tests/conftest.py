"""Shared test settings: two threads (the machine has two cores), fixed seeds."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    torch.set_num_threads(2)
