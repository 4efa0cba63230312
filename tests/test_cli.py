"""The `nas` command as a user runs it: real subprocesses, a real SQLite store under NAS_HOME."""

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


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
            "NAS_DATABASE_URL": ""}


def nas(env, *args, check=True):
    result = subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_train_prints_the_metrics_as_json(env):
    out = nas(env, "train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "8", "--json")
    metrics = json.loads(out.stdout)
    assert set(metrics) >= {"val_accuracy", "params", "flops", "seconds"}
    assert metrics["val_accuracy"] > 0.6 and metrics["params"] > 0 and metrics["flops"] > 0


def test_train_a_genotype_file(env, tmp_path):
    from searchspace.references import ENAS_MICRO

    path = tmp_path / "cell.json"
    path.write_text(ENAS_MICRO.to_json(indent=2))
    out = nas(env, "train", "--arch", str(path), "--dataset", "synthetic", "--epochs", "1",
              "--cells", "1", "--channels", "4", "--json")
    assert json.loads(out.stdout)["params"] > 0


def test_zoo_list_covers_zoo_and_reference_cells(env):
    rows = json.loads(nas(env, "zoo", "list", "--json").stdout)
    names = {row["name"] for row in rows}
    assert {"resnet20", "mobilenet_v2", "nasnet_a", "enas"} <= names
    assert all(row["params"] > 0 and row["flops"] > 0 for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--arch", "resnet21"], "unknown architecture 'resnet21'"),
        (["train", "--arch", "resnet20", "--dataset", "mnist"], "unknown dataset"),
        (["train", "--arch", "resnet20", "--dataset", "cifar10", "--data-dir", "/nonexistent"],
         "/nonexistent"),
        (["train", "--arch", "missing.json"], "missing.json does not exist"),
        (["search", "--strategy", "bayes"], "unknown strategy 'bayes'"),
        (["search", "--budget-architectures", "0"], "budget.architectures"),
        (["search", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "/nonexistent"),
        (["search", "-c", "nope.yaml"], "nope.yaml does not exist"),
        (["show", "feedc0ffee"], "unknown search id 'feedc0ffee'"),
        (["resume", "feedc0ffee"], "unknown search id 'feedc0ffee'"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_store_nothing(env, args, message):
    result = nas(env, *args, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    database = Path(env["NAS_HOME"]) / "nas.db"
    if database.exists():
        with sqlite3.connect(database) as connection:
            assert connection.execute("select count(*) from searches").fetchone() == (0,)


def test_bad_genotype_file_names_cell_block_and_field(env, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"normal": [[0, "identity", 5, "identity"]], "reduction": '
                    '[[0, "identity", 1, "identity"]]}')
    result = nas(env, "train", "--arch", str(path), check=False)
    assert result.returncode == 2
    assert "normal cell, block 0, input_b" in result.stderr


def test_search_then_searches_show_and_resume(env):
    out = nas(env, "search", "--strategy", "evolution", "--evaluator", "synthetic",
              "--budget-architectures", "8", "--name", "cli", "--json")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["architectures"] == 8
    assert set(summary) >= {"search_id", "best_reward", "best_genotype"}
    listed = json.loads(nas(env, "searches", "--json").stdout)
    assert [row["search_id"] for row in listed] == [summary["search_id"]]
    shown = json.loads(nas(env, "show", summary["search_id"], "--top", "3", "--json").stdout)
    assert len(shown["top"]) == 3
    assert shown["top"][0]["reward"] == summary["best_reward"]
    text = nas(env, "show", summary["search_id"]).stdout
    assert "normal cell:" in text and "out = concat(" in text
    again = nas(env, "resume", summary["search_id"], check=False)
    assert again.returncode == 2 and "already finished" in again.stderr


@pytest.mark.slow
def test_killed_search_resumes_to_the_uninterrupted_sequence(env, tmp_path):
    """SIGKILL a standalone search after its first checkpoint; `nas resume` finishes it."""
    config = tmp_path / "search.yaml"
    config.write_text(
        "strategy: {name: reinforce}\n"
        "evaluator: {name: standalone, epochs: 1, batch_size: 32}\n"
        "dataset: {name: synthetic, limit: 64}\n"
        "network: {cells: 1, channels: 4}\n"
        "space: {blocks: 2}\n"
        "budget: {architectures: 8}\n"
        "samples_per_step: 2\n"
    )
    reference = json.loads(nas(env, "search", "-c", str(config), "--json").stdout
                           .strip().splitlines()[-1])
    process = subprocess.Popen([*NAS, "search", "-c", str(config), "--json"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = Path(env["NAS_HOME"]) / "nas.db"
    deadline = time.monotonic() + 300
    killed_id = None
    while time.monotonic() < deadline and killed_id is None:
        time.sleep(0.2)
        with sqlite3.connect(database) as connection:
            row = connection.execute(
                "select search_id from checkpoints where search_id != ? limit 1",
                (reference["search_id"],)).fetchone()
        killed_id = row[0] if row else None
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert killed_id is not None
    shown = json.loads(nas(env, "show", killed_id, "--json").stdout)
    assert shown["status"] == "running"  # the kill left it running: nothing marked it
    time.sleep(2)  # its owner's heartbeat goes stale (2 s here): the search can be taken over
    env = env | {"NAS_HEARTBEAT_STALE_SECONDS": "2"}
    resumed = json.loads(nas(env, "resume", killed_id, "--json").stdout.strip().splitlines()[-1])
    assert resumed["status"] == "finished" and resumed["architectures"] == 8

    def sequence(search_id):
        rows = json.loads(nas(env, "show", search_id, "--top", "100", "--json").stdout)["top"]
        return sorted((row["step"], row["genotype_id"], row["reward"]) for row in rows)

    assert sequence(killed_id) == sequence(reference["search_id"])
    exported = json.loads(nas(env, "export", "best", "--search", killed_id, "-o",
                              str(tmp_path / "best.py"), "--json").stdout)
    assert exported["weights"] is not None  # the trained candidate's own weights
