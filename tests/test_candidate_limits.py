"""Per-candidate limits through the CLI: a hung candidate times out, one that runs out of memory
fails, and in both cases the search goes on (real processes, real signals, a real SQLite store)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]


def write_config(path: Path, **evaluator) -> Path:
    options = ", ".join(f"{key}: {value}" for key, value in evaluator.items())
    path.write_text(f"""\
name: limits
seed: 3
space: {{blocks: 2}}
strategy: {{name: random}}
evaluator: {{name: standalone, epochs: 3, batch_size: 32, {options}}}
dataset: {{name: digits, limit: 600}}
network: {{cells: 1, channels: 12}}
budget: {{architectures: 3}}
samples_per_step: 1
""")
    return path


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
            "NAS_DATABASE_URL": ""}


def rows(tmp_path: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(tmp_path / "home" / "nas.db") as database:
        return database.execute(
            "SELECT step, state, error FROM architectures ORDER BY step").fetchall()


def rows_so_far(tmp_path: Path) -> list[tuple[int, str, str | None]]:
    """`rows`, or none while the search has not created its database yet."""
    if not (tmp_path / "home" / "nas.db").exists():
        return []
    try:
        return rows(tmp_path)
    except sqlite3.OperationalError:  # not migrated yet
        return []


def candidate_workers(parent: int) -> list[int]:
    """Pids of the spawned worker processes of `parent`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_a_hung_candidate_times_out_and_the_search_goes_on(tmp_path):
    """The second candidate's worker is frozen (SIGSTOP: no progress, like a kernel that
    spins); it is killed at the deadline, recorded FAIL (timeout), and the third candidate
    trains in a fresh worker."""
    config = write_config(tmp_path / "search.yaml", timeout_seconds=15)
    search = subprocess.Popen([*NAS, "search", "-c", str(config), "--json"], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=environment(tmp_path))
    frozen = None
    deadline = time.monotonic() + 240
    while frozen is None and time.monotonic() < deadline and search.poll() is None:
        if (1, "RUNNING", None) in rows_so_far(tmp_path):
            workers = candidate_workers(search.pid)
            if workers:
                frozen = workers[0]
                os.kill(frozen, signal.SIGSTOP)
        time.sleep(0.05)
    out, err = search.communicate(timeout=300)
    assert frozen is not None, "the second candidate never started"
    assert search.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["status"] == "finished" and summary["architectures"] == 3
    states = rows(tmp_path)
    assert [state for _, state, _ in states] == ["COMPLETE", "FAIL", "COMPLETE"], states
    assert states[1][2].startswith("timeout: no result within 15 s")
    with pytest.raises(ProcessLookupError):
        os.kill(frozen, 0)  # the frozen worker was killed, not left behind


def test_a_candidate_out_of_memory_fails_and_the_search_goes_on(tmp_path):
    """Each candidate fails alone and the search tries the next; with every one failed the
    search ends `failed`, saying so in one line with exit 2 (it once said `finished`, 0)."""
    config = write_config(tmp_path / "search.yaml", memory_limit_mb=64)
    # 1024 channels: more than 64 MiB of weights, so the allocation fails in torch's allocator
    config.write_text(config.read_text().replace("channels: 12", "channels: 1024"))
    result = subprocess.run([*NAS, "search", "-c", str(config), "--json"], text=True,
                            capture_output=True, env=environment(tmp_path), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: all 3 candidates failed, none has a reward; the first: out of memory: ")
    listed = subprocess.run([*NAS, "searches", "--json"], text=True, capture_output=True,
                            env=environment(tmp_path), timeout=300)
    [search] = json.loads(listed.stdout)
    assert search["status"] == "failed" and "all 3 candidates failed" in search["error"]
    states = rows(tmp_path)
    assert [state for _, state, _ in states] == ["FAIL"] * 3
    assert all(error.startswith("out of memory: ") for _, _, error in states), states
