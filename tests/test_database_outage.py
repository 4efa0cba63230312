"""PostgreSQL stopped in the middle of a search: the search waits (retries with backoff) and goes
on when the server is back within the grace period; otherwise it stops with one line.

A throwaway cluster of its own (`initdb` in a temporary folder), never the shared one. Skipped
where Debian's `postgresql` package is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter

import pytest
from pg_cluster import BINARIES, Cluster
from test_search_processes import NAS, one_line, start, wait_for

from nas.store import ArchitectureState, SearchStatus, Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BINARIES, reason="PostgreSQL is not installed "
                       "(apt-get install postgresql)"),
]
BUDGET = 40


@pytest.fixture
def cluster():
    made = Cluster()
    yield made
    made.remove()


@pytest.fixture
def env(tmp_path, cluster):
    config = tmp_path / "search.yaml"
    config.write_text(
        "name: outage\nseed: 1\nstrategy: {name: random}\nspace: {blocks: 2}\n"
        "evaluator: {name: synthetic, synthetic_seconds: 0.25}\n"
        f"budget: {{architectures: {BUDGET}}}\nsamples_per_step: 2\n")
    return {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
            "OMP_NUM_THREADS": "1", "NAS_DATABASE_URL": cluster.url, "CONFIG": str(config)}


def started_search(env) -> str:
    def search_with_rows() -> str | None:
        with Store(env["NAS_DATABASE_URL"]) as store:
            searches = store.list_searches()
            if searches and store.count_architectures(searches[0].id) >= 6:
                return searches[0].id
        return None

    return wait_for(search_with_rows, what="six rows")


def test_a_search_goes_on_through_a_10_s_database_restart(env, cluster):
    process = start(env, "search", "-c", env["CONFIG"], "--json")
    search_id = started_search(env)
    cluster.stop()
    time.sleep(10)
    cluster.start()
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert json.loads(process.stdout.read().strip().splitlines()[-1])["status"] == "finished"
    with Store(env["NAS_DATABASE_URL"]) as store:
        rows = store.architectures(search_id, order="step")
        assert store.get_search(search_id).status is SearchStatus.FINISHED
    assert len(rows) == BUDGET
    assert {row.state for row in rows} == {ArchitectureState.COMPLETE}
    assert Counter(row.step for row in rows) == {step: 2 for step in range(BUDGET // 2)}


def test_a_database_gone_past_the_grace_period_ends_the_run_in_one_line(env, cluster):
    env = env | {"NAS_DB_GRACE_SECONDS": "3", "NAS_HEARTBEAT_STALE_SECONDS": "2"}
    process = start(env, "search", "-c", env["CONFIG"], "--json")
    search_id = started_search(env)
    cluster.stop()
    assert process.wait(timeout=120) == 2
    line = one_line(process.stderr.read())
    assert f"127.0.0.1:{cluster.port}" in line and "unreachable for 3 s" in line
    cluster.start()
    time.sleep(2)
    listed = subprocess.run([*NAS, "searches", "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    [shown] = json.loads(listed.stdout)
    assert (shown["search_id"], shown["status"], shown["stale"]) == (search_id, "running", True)
    resumed = subprocess.run([*NAS, "resume", search_id], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
