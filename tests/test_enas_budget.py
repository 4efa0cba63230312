"""ENAS keeps to the time budget a user gives, derivation included, and its output says which
reward is which (a real `nas search` subprocess on digits, a real SQLite store)."""

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
BUDGET_SECONDS = 10
# What may come on top of the budget: the last supernet batch or candidate scored past the
# deadline, and the store's final writes after the last checkpoint (measured: 9.6 s in all).
TOLERANCE_SECONDS = 2.0


def _events(database: Path) -> dict[str, datetime]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("select kind, created_at from events order by id").fetchall()
    return {kind: datetime.fromisoformat(created_at) for kind, created_at in rows}


def test_enas_search_fits_its_time_budget_and_labels_its_rewards(tmp_path):
    env = {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
           "OMP_NUM_THREADS": "1", "NAS_DATABASE_URL": "", "COLUMNS": "200"}
    result = subprocess.run(
        [*NAS, "search", "--dataset", "digits", "--budget-seconds", str(BUDGET_SECONDS)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    database = tmp_path / "home" / "nas.db"
    with sqlite3.connect(database) as connection:
        status, = connection.execute("select status from searches").fetchone()
        derived, = connection.execute(
            "select count(*) from architectures where role = 'derived'").fetchone()
    assert status.lower() == "finished" and derived > 0
    events = _events(database)  # the search's own time: from its start to its last write
    used = (events["finished"] - events["started"]).total_seconds()
    assert used <= BUDGET_SECONDS + TOLERANCE_SECONDS, f"{used:.1f} s used"
    # the progress bar shows candidates' rewards, the summary the derived cells' full-split one
    assert "best candidate reward (scoring batches)" in result.stdout
    assert "best derived reward (full validation split)" in result.stdout
