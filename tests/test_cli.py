"""The `nas` command as a user runs it: real subprocesses, a real SQLite store under NAS_HOME."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchspace.complexity import count_flops, count_parameters
from searchspace.network import CellNetwork
from searchspace.references import REFERENCE_GENOTYPES
from searchspace.zoo import create_network

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]


def nas(env, *args, check=True):
    result = subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_train_prints_the_metrics_as_json(env):
    out = nas(env, "train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "8", "--json")
    metrics = json.loads(out.stdout)
    assert set(metrics) >= {"val_accuracy", "params", "flops", "seconds"}
    assert metrics["val_accuracy"] > 0.6
    lenet5 = create_network("lenet5", num_classes=10, input_size=8, in_channels=1)  # digits
    assert metrics["params"] == count_parameters(lenet5)
    assert metrics["flops"] == count_flops(lenet5, (1, 8, 8))


def test_train_a_genotype_file(env, tmp_path):
    from searchspace.references import ENAS_MICRO

    path = tmp_path / "cell.json"
    path.write_text(ENAS_MICRO.to_json(indent=2))
    out = nas(env, "train", "--arch", str(path), "--dataset", "synthetic", "--epochs", "1",
              "--cells", "1", "--channels", "4", "--json")
    network = CellNetwork(ENAS_MICRO, num_classes=4, cells=1, channels=4)  # synthetic: 4 classes
    assert json.loads(out.stdout)["params"] == count_parameters(network)


def test_zoo_list_covers_zoo_and_reference_cells(env):
    env |= {"NAS_THREADS": "2"}  # latency is measured on one thread whatever the process has
    rows = json.loads(nas(env, "zoo", "list", "--json").stdout)
    names = {row["name"] for row in rows}
    assert {"resnet20", "mobilenet_v2", "nasnet_a", "enas", "zfnet", "vgg19", "nin",
            "inception_v4", "inception_resnet_v2", "preact_resnet164", "fractalnet",
            "shufflenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
            "efficientnet_b3", "darts_v2", "amoebanet_a"} <= names
    for row in rows:  # sized for 10 classes of 3 x 32 x 32 images; cells: 2 cells, 16 channels
        model = (create_network(row["name"]) if row["kind"] == "zoo" else
                 CellNetwork(REFERENCE_GENOTYPES[row["name"]], cells=2, channels=16))
        assert (row["params"], row["flops"]) == (count_parameters(model),
                                                 count_flops(model, (3, 32, 32))), row["name"]
    assert all(row["latency_ms"] > 0 and row["latency_threads"] == 1 for row in rows)
    assert (Path(env["NAS_HOME"]) / "cache" / "zoo-listing.json").is_file()


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


def test_search_and_show_report_the_best_parameters_multiply_adds_and_latency(env, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(
        "evaluator: {name: enas, batch_size: 32, warmup_epochs: 0, derive_samples: 2, "
        "derive_top: 1}\n"
        "dataset: {name: synthetic, limit: 64}\nnetwork: {cells: 1, channels: 4}\n"
        "space: {blocks: 2}\nbudget: {architectures: 4}\n"
        "objective: {params_target: 5000}\n"
    )
    summary = json.loads(nas(env, "search", "-c", str(config), "--json").stdout
                         .strip().splitlines()[-1])
    shown = json.loads(nas(env, "show", summary["search_id"], "--json").stdout)
    best = shown["top"][0]
    assert best["role"] == "derived" and best["params"] > 0 and best["flops"] > 0
    assert (summary["best_params"], summary["best_multiply_adds"]) == (
        best["params"], best["flops"])
    assert (shown["best_params"], shown["best_multiply_adds"]) == (best["params"], best["flops"])
    assert best["reward"] == pytest.approx(best["accuracy"] * (best["params"] / 5000) ** -0.07)
    # the derived cell's latency: batch-1 forward pass and a training step at batch 32
    assert best["latency_ms"] > 0 and best["train_step_ms"] > 0
    assert summary["best_latency_ms"] == shown["best_latency_ms"] == best["latency_ms"]
    text = " ".join(nas(env, "show", summary["search_id"]).stdout.split())  # unwrapped
    assert (f"best reward {best['reward']:.4f} ({best['params']:,} params, "
            f"{best['flops']:,} mult-adds, {best['latency_ms']:.2f} ms)") in text
    assert (f"latency {best['latency_ms']:.2f} ms (batch 1), training step "
            f"{best['train_step_ms']:.1f} ms (batch 32) on cpu") in text
    # two candidates cannot tell how far the search's ranking agrees with the whole split
    assert summary["ranking"] == shown["ranking"]
    assert (shown["ranking"]["candidates"], shown["ranking"]["kendall_tau"]) == (2, None)
    assert "agreement of the search's scores with the whole split undefined (2 candidate(s)" in text


def test_show_tells_how_far_an_enas_searchs_one_batch_ranking_agrees_with_the_whole_split(
        env, tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(
        "seed: 4\nstrategy: {name: random}\n"
        "evaluator: {name: enas, batch_size: 32, warmup_epochs: 1, derive_samples: 8, "
        "derive_top: 1}\n"
        "dataset: {name: digits, limit: 400}\nnetwork: {cells: 1, channels: 8}\n"
        "space: {blocks: 2}\nbudget: {architectures: 4}\n"
    )
    summary = json.loads(nas(env, "search", "-c", str(config), "--json").stdout
                         .strip().splitlines()[-1])
    ranking = summary["ranking"]
    assert ranking["candidates"] == 8 and ranking["confidence"] == 0.95
    assert -1 <= ranking["low"] <= ranking["kendall_tau"] <= ranking["high"] <= 1
    text = " ".join(nas(env, "show", summary["search_id"]).stdout.split())
    assert (f"ranking: the search's scores agree with the whole split's over derivation's 8 "
            f"candidates with Kendall's tau {ranking['kendall_tau']:.2f} (95% bootstrap "
            f"interval {ranking['low']:.2f} to {ranking['high']:.2f})") in text


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
