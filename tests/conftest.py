"""Shared test settings: two threads (two cores; NAS_THREADS overrides); a fresh SQLite store."""

import os

import pytest
import torch
from servers import throwaway_schema

from nas.store import Store


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    torch.set_num_threads(int(os.environ.get("NAS_THREADS", "2")))


@pytest.fixture
def env(tmp_path):
    """The environment of a `nas` command run as a process: its own NAS_HOME (and so its own
    SQLite store) under `tmp_path`, one thread."""
    return {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
            "OMP_NUM_THREADS": "1", "NAS_DATABASE_URL": ""}


@pytest.fixture
def store(tmp_path):
    """A migrated store in a new SQLite file."""
    with Store(f"sqlite:///{tmp_path / 'nas.db'}") as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A new empty database: a SQLite file, or (when NAS_TEST_POSTGRES_URL is set) a throwaway
    schema of that PostgreSQL database, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
        return
    server = os.environ.get("NAS_TEST_POSTGRES_URL")
    if not server:
        pytest.skip('PostgreSQL back end: NAS_TEST_POSTGRES_URL is not set '
                    '(eval "$(bash .ci/postgres.sh)" sets it)')
    with throwaway_schema(server) as url:
        yield url
