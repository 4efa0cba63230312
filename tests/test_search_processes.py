"""One owner per search, signals and bad databases, as a user meets them: real `nas`
subprocesses, real signals, a real SQLite file (and PostgreSQL, a throwaway schema, when
NAS_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from nas.store import ArchitectureState, SearchStatus, Store

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
BUDGET, PER_STEP = 24, 2
CONFIG = (
    "name: owned\nseed: 5\nstrategy: {name: random}\nspace: {blocks: 2}\n"
    "evaluator: {name: synthetic, synthetic_seconds: %s}\n"
    f"budget: {{architectures: {BUDGET}}}\nsamples_per_step: {PER_STEP}\n"
)


@pytest.fixture
def env(tmp_path, database_url):
    return {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
            "OMP_NUM_THREADS": "1", "NAS_DATABASE_URL": database_url}


def config_file(tmp_path: Path, seconds: float = 0.3) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(CONFIG % seconds)
    return str(path)


def nas(env, *args, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=300,
                          **kwargs)


def start(env, *args) -> subprocess.Popen[str]:
    return subprocess.Popen([*NAS, *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_for(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def queued_search(env, tmp_path, seconds: float = 0.3) -> str:
    from nas.config import load_config
    from nas.search import create_search

    with Store(env["NAS_DATABASE_URL"]) as store:
        return create_search(store, load_config(config_file(tmp_path, seconds))).id


def rows(env, search_id: str):
    with Store(env["NAS_DATABASE_URL"]) as store:
        return store.architectures(search_id, order="step")


def assert_complete_budget(env, search_id: str) -> None:
    """Exactly the budget's rows, every one closed, `PER_STEP` per step: nothing twice."""
    recorded = rows(env, search_id)
    assert len(recorded) == BUDGET
    assert {row.state for row in recorded} == {ArchitectureState.COMPLETE}
    assert Counter(row.step for row in recorded) == {step: PER_STEP
                                                     for step in range(BUDGET // PER_STEP)}


def record(env, search_id: str):
    with Store(env["NAS_DATABASE_URL"]) as store:
        return store.get_search(search_id)


def test_two_resumes_at_once_run_the_search_once(env, tmp_path):
    search_id = queued_search(env, tmp_path)
    first, second = start(env, "resume", search_id, "--json"), start(env, "resume", search_id)
    results = [(process.wait(timeout=300), process.stderr.read()) for process in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(stderr for code, stderr in results if code == 2)
    assert "is owned by a live process" in one_line(refused)
    assert_complete_budget(env, search_id)
    final = record(env, search_id)
    assert final.status is SearchStatus.FINISHED and final.owner is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killed_owner_shows_stale_and_a_resume_takes_over(env, tmp_path):
    """kill -9: refused while the heartbeat is fresh, shown stale after, then resumed."""
    env = env | {"NAS_HEARTBEAT_STALE_SECONDS": "10", "NAS_HEARTBEAT_SECONDS": "0.5"}
    process = start(env, "search", "-c", config_file(tmp_path), "--json")
    search_id = wait_for(lambda: (lambda r: r[0].id if r and len(rows(env, r[0].id)) >= 6
                                  else None)(Store(env["NAS_DATABASE_URL"]).list_searches()),
                         what="six rows")
    process.kill()
    process.wait()
    refused = nas(env, "resume", search_id)
    assert refused.returncode == 2 and "owned by a live process" in one_line(refused.stderr)
    time.sleep(10)
    listed = json.loads(nas(env, "searches", "--json").stdout)
    assert listed[0]["stale"] is True and listed[0]["heartbeat_age_seconds"] >= 10
    assert "running (stale: heartbeat" in nas(env | {"COLUMNS": "200"}, "searches").stdout
    shown = json.loads(nas(env, "show", search_id, "--json").stdout)
    assert shown["owner"] and shown["heartbeat_at"] and shown["stale"] is True
    resumed = nas(env, "resume", search_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert_complete_budget(env, search_id)
    final = json.loads(nas(env, "show", search_id, "--json").stdout)
    assert (final["status"], final["stale"], final["owner"]) == ("finished", False, None)


def test_a_paused_owner_that_was_replaced_writes_nothing_when_it_wakes(env, tmp_path):
    """SIGSTOP the owner, let another process take the search over, SIGCONT: fencing."""
    env = env | {"NAS_HEARTBEAT_STALE_SECONDS": "2"}
    search_id = queued_search(env, tmp_path)
    first = start(env, "resume", search_id)
    wait_for(lambda: len(rows(env, search_id)) >= 4, what="four rows")
    first.send_signal(signal.SIGSTOP)
    try:
        paused_epoch = record(env, search_id).owner_epoch
        time.sleep(2.5)
        second = start(env, "resume", search_id)
        taken_over = lambda: record(env, search_id).owner_epoch > paused_epoch  # noqa: E731
        try:  # PostgreSQL ends a transaction the paused process left open after 30 s
            wait_for(taken_over, timeout=45, what="the takeover")
        except AssertionError:  # paused inside a SQLite write: the takeover waits for it
            first.send_signal(signal.SIGCONT)
            wait_for(taken_over, timeout=60, what="the takeover")
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 2
    assert "lost ownership of search" in one_line(first.stderr.read())
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert_complete_budget(env, search_id)
    final = record(env, search_id)
    assert final.status is SearchStatus.FINISHED and final.error is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_interrupt_resumably(env, tmp_path, signum, status):
    process = start(env, "search", "-c", config_file(tmp_path))
    search_id = wait_for(lambda: (lambda r: r[0].id if r and len(rows(env, r[0].id)) >= 4
                                  else None)(Store(env["NAS_DATABASE_URL"]).list_searches()),
                         what="four rows")
    process.send_signal(signum)
    assert process.wait(timeout=60) == status
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in one_line(process.stderr.read())
    interrupted = record(env, search_id)
    assert interrupted.status is SearchStatus.INTERRUPTED and interrupted.owner is None
    assert interrupted.error == f"interrupted by {name}"
    with Store(env["NAS_DATABASE_URL"]) as store:
        checkpoint = store.latest_checkpoint(search_id)
        assert checkpoint is not None and checkpoint.step >= 1
        assert store.events(search_id)[-1].kind == "interrupted"
    resumed = nas(env, "resume", search_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_complete_budget(env, search_id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_resume_limit_fails_a_search_that_keeps_dying(env, tmp_path):
    env = env | {"NAS_HEARTBEAT_STALE_SECONDS": "1", "NAS_RESUME_LIMIT": "0"}
    search_id = queued_search(env, tmp_path)
    with Store(env["NAS_DATABASE_URL"]) as store:
        store.claim_search(search_id, "dead-process", stale_after=30)  # then it "dies"
    time.sleep(1.2)
    result = nas(env, "resume", search_id)
    assert result.returncode == 2
    assert "resumed 0 times without progress (limit 0)" in one_line(result.stderr)
    final = record(env, search_id)
    assert final.status is SearchStatus.FAILED and "owner dead-process stopped" in final.error


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("url", "expected", "hidden"),
    [
        ("notaurl", "invalid database URL 'notaurl'", None),
        ("postgresql+psycopg://nas:s3cret@127.0.0.1:1/nas", "127.0.0.1:1", "s3cret"),
        ("corrupt", "file is not a database", None),
    ],
)
def test_a_bad_database_is_one_line_naming_it(env, tmp_path, url, expected, hidden):
    if url == "corrupt":
        path = tmp_path / "corrupt.db"
        path.write_bytes(os.urandom(8192))
        url, before = f"sqlite:///{path}", path.read_bytes()
    env = env | {"NAS_DATABASE_URL": url}
    for args in (["searches"], ["search", "--evaluator", "synthetic",
                                "--budget-architectures", "2"]):
        result = nas(env, *args)
        assert result.returncode == 2, result.stderr
        line = one_line(result.stderr)
        assert expected in line
        if hidden:
            assert hidden not in line and "***" in line
        if url.startswith("sqlite"):
            assert str(tmp_path / "corrupt.db") in line
            assert path.read_bytes() == before  # nothing written into it


def test_a_controller_checkpoint_of_an_older_release_is_refused_in_one_line(env, tmp_path):
    """A REINFORCE state written before the controller changed (no "format" key) is not loaded
    into the new controller: `nas resume` says why, the search stays interrupted, rows kept."""
    config = tmp_path / "search.yaml"
    config.write_text(CONFIG.replace("{name: random}", "{name: reinforce}") % 0.3)
    process = start(env, "search", "-c", str(config))
    search_id = wait_for(lambda: (lambda r: r[0].id if r and len(rows(env, r[0].id)) >= 4
                                  else None)(Store(env["NAS_DATABASE_URL"]).list_searches()),
                         what="four rows")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    with Store(env["NAS_DATABASE_URL"]) as store:
        checkpoint = store.latest_checkpoint(search_id)
        payload = torch.load(io.BytesIO(checkpoint.payload), weights_only=True)
        assert payload["strategy"].pop("format") == 2
        older = io.BytesIO()
        torch.save(payload, older)
        store.save_checkpoint(search_id, checkpoint.step, older.getvalue())
    kept = len(rows(env, search_id))
    resumed = nas(env, "resume", search_id)
    assert resumed.returncode == 2
    assert "checkpointed in format 1 (an older release)" in one_line(resumed.stderr)
    after = record(env, search_id)
    assert after.status is SearchStatus.INTERRUPTED and after.owner is None
    assert "format 1" in after.error and len(rows(env, search_id)) == kept
