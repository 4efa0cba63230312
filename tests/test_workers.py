"""Ray workers on a real local Ray (2 CPUs): searches on 2 workers, ASHA pruning, failing
candidates, the runner actor, and `nas search --workers` / `nas worker`."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import workers.ray_evaluator  # noqa: F401  (registers the Ray evaluator)
from nas.config import ConfigError, parse_config
from nas.search import NoCandidateScored, create_search, open_dataset, run_search
from nas.store import ArchitectureState, SearchStatus, Store
from searchspace.genotype import Genotype

ray = pytest.importorskip("ray")

FINAL = {ArchitectureState.COMPLETE, ArchitectureState.PRUNED, ArchitectureState.FAIL}


def tiny(**overrides):
    """A seeded search of tiny candidates on digits, trained on 2 Ray workers."""
    data = {
        "seed": 1, "strategy": {"name": "random"},
        "dataset": {"name": "digits", "limit": 300},
        "evaluator": {"epochs": 2, "batch_size": 32}, "network": {"cells": 1, "channels": 4},
        "space": {"blocks": 2}, "budget": {"architectures": 6}, "samples_per_step": 2,
        "workers": {"max_concurrent": 2, "cpus_per_trial": 1},
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ({"max_concurrent": 0}, "workers.max_concurrent"),
        ({"gpus_per_trial": 1.5}, "gpus_per_trial: a fraction must be below 1"),
        ({"cpus_per_trial": 0}, "workers.cpus_per_trial"),
        ({"early_stopping": "median"}, "workers.early_stopping"),
        ({"reduction_factor": 1}, "workers.reduction_factor"),
        ({"early_stopping": "asha", "grace_period": 5}, "grace_period \\(5\\) exceeds"),
        ({"retries": -1}, "workers.retries"),
    ],
)
def test_bad_worker_settings_name_the_field(workers, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"evaluator": {"epochs": 3}, "workers": workers})


def test_workers_need_standalone_candidates():
    with pytest.raises(ConfigError, match="workers: Ray trains standalone candidates"):
        parse_config({"evaluator": {"name": "enas"}, "workers": {}})


def test_small_in_memory_datasets_travel_by_object_store_others_by_path(tmp_path):
    from PIL import Image

    from workers.datasets import shared_data

    digits = tiny()
    assert shared_data(digits, open_dataset(digits)) is not None
    for name, color in (("ants", (200, 0, 0)), ("bees", (0, 0, 200))):
        (tmp_path / name).mkdir()
        for index in range(4):
            Image.new("RGB", (20, 20), color).save(tmp_path / name / f"{index}.png")
    folder = tiny(dataset={"name": "imagefolder", "path": str(tmp_path), "input_size": 16})
    assert shared_data(folder, open_dataset(folder)) is None  # workers read it from the path


@pytest.mark.slow
def test_a_search_on_two_workers_records_every_candidate(local_ray, store, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    record = run_search(store, create_search(store, tiny()).id)
    rows = store.architectures(record.id, order="step")
    assert record.status is SearchStatus.FINISHED and len(rows) == 6
    assert {row.state for row in rows} == {ArchitectureState.COMPLETE}
    for row in rows:
        assert 0 <= row.accuracy <= 1 and row.params > 0 and row.flops > 0
        assert row.evaluator == "standalone" and len(row.metrics.history) == 2
        assert os.path.exists(row.weights_path)
        assert row.metrics.worker["threads"] == 1  # exactly its cpus_per_trial
    assert record.best_reward == max(row.reward for row in rows)
    assert store.latest_checkpoint(record.id).step == 3  # told 2 rewards at a time


def _uniform(op):
    cell = ((0, op, 1, op), (0, op, 2, op))
    return Genotype(normal=cell, reduction=cell)


@pytest.mark.slow
def test_asha_prunes_a_clearly_bad_candidate(local_ray):
    from workers.ray_evaluator import RayEvaluator

    config = parse_config({
        "seed": 0, "dataset": {"name": "digits", "limit": 1000},
        "evaluator": {"epochs": 3, "batch_size": 32}, "network": {"cells": 1, "channels": 8},
        "space": {"blocks": 2},
        "workers": {"max_concurrent": 1, "early_stopping": "asha", "grace_period": 1,
                    "reduction_factor": 2},
    })
    # After one epoch (seed 0): conv 3x3 cells ~0.65 validation accuracy, sep conv ones ~0.15.
    good, bad = _uniform("conv_3x3"), _uniform("sep_conv_3x3")
    evaluator = RayEvaluator(config, open_dataset(config))
    try:
        first, second = evaluator.evaluate([good, bad])
    finally:
        evaluator.close()
    assert first.state == "COMPLETE" and first.accuracy > 0.8
    assert second.state == "PRUNED" and second.metrics.stopped_at_epoch == 1
    assert second.accuracy < 0.4 and second.reward == second.accuracy and second.params > 0
    assert second.flops > 0  # a pruned trial carries what a multiply-adds target needs


@pytest.mark.slow
def test_failing_candidates_are_recorded_and_the_search_goes_on(local_ray, store):
    # A learning rate this large diverges (seed 1): every candidate fails in its worker.
    # With none scored the search ends failed, naming the first failure (it said `finished`).
    config = tiny(evaluator={"epochs": 1, "learning_rate": 1e12}, budget={"architectures": 3})
    search_id = create_search(store, config).id
    with pytest.raises(NoCandidateScored, match="all 3 candidates failed.*TrainingDiverged"):
        run_search(store, search_id)
    record = store.get_search(search_id)
    rows = store.architectures(search_id)
    assert record.status is SearchStatus.FAILED and "all 3 candidates failed" in record.error
    assert len(rows) == 3
    for row in rows:
        assert row.state is ArchitectureState.FAIL and "TrainingDiverged" in row.error


@pytest.mark.slow
def test_cancelling_a_search_on_ray_stops_its_trials(local_ray, store):
    config = tiny(evaluator={"epochs": 3, "batch_size": 32}, budget={"architectures": 20})
    search_id = create_search(store, config).id

    def cancel_after_the_first_candidate():
        while not store.count_architectures(search_id, state=ArchitectureState.COMPLETE):
            time.sleep(0.1)
        store.set_status(search_id, SearchStatus.CANCELLED)

    canceller = threading.Thread(target=cancel_after_the_first_candidate, daemon=True)
    canceller.start()
    record = run_search(store, search_id)
    rows = store.architectures(search_id)
    assert record.status is SearchStatus.CANCELLED and len(rows) < 20
    assert {row.state for row in rows} <= FINAL
    assert all("cancelled" in row.error for row in rows if row.state is ArchitectureState.FAIL)


@pytest.mark.slow
def test_the_runner_actor_starts_reports_and_cancels(local_ray, tmp_path):
    from workers.runner import start_runner

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    with Store(url) as store:
        config = parse_config({"evaluator": {"name": "synthetic"}, "space": {"blocks": 3},
                               "strategy": {"name": "random"},
                               "budget": {"architectures": None, "seconds": 120}})
        search_id = create_search(store, config).id
    runner = start_runner(url)
    assert ray.get(runner.start.remote(search_id))["running"]
    deadline = time.monotonic() + 60
    while ray.get(runner.status.remote())["architectures"] < 8:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ray.get(runner.cancel.remote())
    status = ray.get(runner.join.remote(60))
    assert status["status"] == "cancelled" and not status["running"]
    with Store(url) as store:
        rows = store.architectures(search_id)
        assert rows and {row.state for row in rows} == {ArchitectureState.COMPLETE}
    ray.kill(runner)


def test_a_runners_join_sent_before_its_start_waits_for_the_search(local_ray, tmp_path):
    """The launcher sends `start` then `join` to a threaded actor, which may run them in either
    order: a `join` that runs first must wait, not report the run ended (the server killed
    live runs for that)."""
    from workers.runner import start_runner

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    with Store(url) as store:
        config = parse_config({"evaluator": {"name": "synthetic"}, "space": {"blocks": 3},
                               "strategy": {"name": "random"}, "budget": {"architectures": 6}})
        search_id = create_search(store, config).id
    runner = start_runner(url)
    assert ray.get(runner.status.remote())["search_id"] is None  # the actor is up
    joined = runner.join.remote()
    ready, _ = ray.wait([joined], timeout=3)
    assert not ready, ray.get(joined)
    runner.start.remote(search_id)
    status = ray.get(joined, timeout=120)
    assert status["status"] == "finished" and status["architectures"] == 6
    ray.kill(runner)


NAS = [sys.executable, "-c", "from nas.cli import main; main()"]


def _nas(tmp_path, *args, **env):
    environment = {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_DATABASE_URL": "",
                   **env}
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=environment,
                          timeout=600)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "workers.max_concurrent"),
        (["--workers", "2", "--evaluator", "enas"], {}, "Ray trains standalone candidates"),
        (["--workers", "2"], {"NAS_RAY_ADDRESS": "127.0.0.1:9"}, "cannot reach the Ray cluster"),
    ],
)
def test_search_with_bad_worker_input_fails_in_one_line(tmp_path, args, env, message):
    result = _nas(tmp_path, "search", "--dataset", "digits", *args, **env)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_nas_worker_explains_the_cluster(tmp_path):
    guide = _nas(tmp_path, "worker")
    assert guide.returncode == 0 and "ray start --head" in guide.stdout
    assert "NAS_RAY_ADDRESS" in guide.stdout
    both = _nas(tmp_path, "worker", "--head", "--address", "x:1")
    assert both.returncode == 2 and "not both" in both.stderr


@pytest.mark.slow
def test_nas_search_with_workers_runs_on_ray(tmp_path):
    result = _nas(
        tmp_path, "search", "--workers", "2", "--strategy", "random", "--dataset", "digits",
        "--budget-architectures", "4", "--candidate-epochs", "1", "--channels", "4",
        "--cells", "1", "--json", NAS_THREADS="1",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["architectures"] == 4


@pytest.mark.slow
def test_transfer_trains_on_a_ray_worker(local_ray):
    import torch

    from nas.data import load_dataset
    from nas.train import TrainConfig
    from searchspace.references import ENAS_MICRO
    from workers.transfer import transfer_on_ray

    data = load_dataset("digits", None, seed=0)
    outcome = transfer_on_ray(ENAS_MICRO, data, cells=1, channels=8,
                              config=TrainConfig(epochs=3, batch_size=32, seed=0))
    assert outcome.params > 0 and outcome.flops > 0 and len(outcome.result.history) == 3
    assert outcome.accuracy > 0.6  # ten classes: chance is 0.1 (in-process: 0.97)
    assert next(outcome.model.parameters()).device == torch.device("cpu")
