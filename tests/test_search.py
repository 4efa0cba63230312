"""The search loop: config validation, recording, checkpoints, resume and cancellation."""

import pytest
import torch

from nas.config import ConfigError, SearchConfig, load_config, parse_config
from nas.evaluators import Evaluator, SyntheticEvaluator
from nas.search import create_search, run_search
from nas.store import ArchitectureState, SearchStatus
from searchspace.complexity import count_flops, count_parameters
from searchspace.network import CellNetwork


def _synthetic(**overrides):
    data = {
        "name": "loop", "seed": 3,
        "strategy": {"name": "evolution", "population_size": 4, "tournament_size": 2},
        "evaluator": {"name": "synthetic"}, "space": {"blocks": 3},
        "budget": {"architectures": 12}, "samples_per_step": 3,
    }
    data.update(overrides)
    return parse_config(data)


def _sequence(store, search_id):
    return [a.genotype_id for a in store.architectures(search_id, order="step")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"strategy": {"name": "bayes"}}, "unknown strategy 'bayes'"),
        ({"strategy": {"name": "reinforce", "lstm_sise": 3}}, "lstm_sise"),
        ({"budget": {"architectures": 0}}, "budget.architectures"),
        ({"budget": {"architectures": None}}, "give a budget"),
        ({"dataset": {"name": "mnist"}}, "unknown dataset 'mnist'"),
        ({"evaluator": {"name": "enas2"}}, "evaluator.name"),
        ({"evaluator": {"derive_by": "perplexity"}}, "evaluator.derive_by"),
        ({"evaluator": {"score_by": "f1"}}, "evaluator.score_by"),
        ({"evaluator": {"score_on": "same"}}, "evaluator.score_on"),
        ({"evaluator": {"score_batches": 0}}, "evaluator.score_batches"),
        ({"space": {"ops": ["sep_conv_9x9"]}}, "unknown op"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_configs_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_yaml_files_and_their_errors(tmp_path):
    good = tmp_path / "search.yaml"
    good.write_text("name: y\nstrategy: {name: tpe, n_startup_trials: 3}\nbudget: {seconds: 5}\n")
    config = load_config(good, {"seed": 7})
    assert (config.name, config.seed, config.strategy.options) == ("y", 7, {"n_startup_trials": 3})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


def test_config_round_trips_through_the_store(store):
    config = _synthetic()
    record = create_search(store, config)
    assert record.status is SearchStatus.QUEUED
    assert SearchConfig.model_validate(store.get_search(record.id).config) == config


def test_a_search_records_every_candidate_and_finishes(store):
    record = create_search(store, _synthetic())
    finished = run_search(store, record.id)
    assert finished.status is SearchStatus.FINISHED
    rows = store.architectures(record.id, order="step")
    assert len(rows) == 12 and {row.state for row in rows} == {ArchitectureState.COMPLETE}
    assert [row.step for row in rows] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert finished.best_reward == max(row.reward for row in rows)
    assert store.latest_checkpoint(record.id).step == 4
    kinds = [event.kind for event in store.events(record.id)]
    assert kinds[0] == "started" and kinds[-1] == "finished"


class _CrashAtStep(Evaluator):
    """The synthetic evaluator, but the process 'dies' when step `crash_step` is scored."""

    name = "synthetic"

    def __init__(self, config, crash_step):
        self.inner, self.crash_step, self.calls = SyntheticEvaluator(config), crash_step, 0

    def evaluate(self, genotypes):
        if self.calls == self.crash_step:
            raise RuntimeError("worker died")
        self.calls += 1
        return self.inner.evaluate(genotypes)


@pytest.mark.parametrize("strategy", [{"name": "reinforce"}, {"name": "evolution",
                                      "population_size": 4, "tournament_size": 2}, {"name": "tpe",
                                      "n_startup_trials": 4}])
def test_resume_after_a_crash_gives_the_uninterrupted_sequence(store, strategy):
    config = _synthetic(strategy=strategy, checkpoint_every=2)
    reference = create_search(store, config)
    run_search(store, reference.id)

    crashed = create_search(store, config)
    with pytest.raises(RuntimeError, match="worker died"):
        run_search(store, crashed.id, evaluator=_CrashAtStep(config, crash_step=3))
    failed = store.get_search(crashed.id)
    assert failed.status is SearchStatus.FAILED and "worker died" in failed.error
    assert store.latest_checkpoint(crashed.id).step == 2
    resumed = run_search(store, crashed.id)
    assert resumed.status is SearchStatus.FINISHED
    assert _sequence(store, crashed.id) == _sequence(store, reference.id)


class _CancelDuringStep(Evaluator):
    """Scores normally, and cancels the search (as the REST API would) during step 1."""

    name = "synthetic"

    def __init__(self, config, store, search_id):
        self.inner, self.store, self.search_id, self.calls = (
            SyntheticEvaluator(config), store, search_id, 0)

    def evaluate(self, genotypes):
        self.calls += 1
        if self.calls == 2:
            self.store.set_status(self.search_id, SearchStatus.CANCELLED)
        return self.inner.evaluate(genotypes)


def test_cancellation_stops_at_the_next_step(store):
    config = _synthetic()
    record = create_search(store, config)
    cancelled = run_search(store, record.id,
                           evaluator=_CancelDuringStep(config, store, record.id))
    assert cancelled.status is SearchStatus.CANCELLED
    assert store.count_architectures(record.id) == 6
    assert {a.state for a in store.architectures(record.id)} == {ArchitectureState.COMPLETE}


def test_standalone_search_trains_candidates_on_real_data(store, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    config = parse_config({
        "strategy": {"name": "random"}, "dataset": {"name": "synthetic", "limit": 96},
        "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 32},
        "network": {"cells": 1, "channels": 4},
        "space": {"blocks": 2}, "budget": {"architectures": 2}, "samples_per_step": 2,
        "objective": {"params_target": 20000},
    })
    record = run_search(store, create_search(store, config).id)
    rows = store.architectures(record.id)
    assert record.status is SearchStatus.FINISHED and len(rows) == 2
    for row in rows:
        assert row.state is ArchitectureState.COMPLETE
        assert 0 <= row.accuracy <= 1
        assert row.latency_ms > 0 and row.train_seconds > 0
        assert row.reward == pytest.approx(row.accuracy * (row.params / 20000) ** -0.07)
        assert len(row.metrics.history) == 1
        weights = torch.load(row.weights_path, weights_only=True)  # kept for export
        network = CellNetwork(row.genotype, num_classes=4, cells=1, channels=4)
        network.load_state_dict(weights)
        # the recorded size is this network's (synthetic data: 3 x 16 x 16 images)
        assert row.params == count_parameters(network)
        assert row.flops == count_flops(network, (3, 16, 16))


def test_validating_a_config_builds_no_strategy():
    """Validation has no side effects: building TPE would set Optuna's log level, REINFORCE's
    would build its LSTM."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        parse_config({"strategy": {"name": "tpe", "n_startup_trials": 3}})
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    with pytest.raises(ConfigError, match="n_startup_trials"):
        parse_config({"strategy": {"name": "tpe", "n_startup_trials": -1}})


def test_a_search_loads_its_dataset_once(store, monkeypatch):
    """Queuing checks the dataset without loading it; the run loads it once."""
    import nas.data
    import nas.search

    loads = []

    def counted(*args, **kwargs):
        loads.append(args)
        return nas.data.load_dataset(*args, **kwargs)

    monkeypatch.setattr(nas.search, "load_dataset", counted)
    config = parse_config({
        "strategy": {"name": "random"}, "evaluator": {"name": "standalone", "epochs": 1},
        "dataset": {"name": "synthetic", "limit": 32}, "network": {"cells": 1, "channels": 4},
        "space": {"blocks": 1}, "budget": {"architectures": 1}, "samples_per_step": 1,
    })
    record = run_search(store, create_search(store, config).id)
    assert record.status is SearchStatus.FINISHED and len(loads) == 1


def test_queuing_refuses_a_missing_dataset_folder(store, tmp_path):
    config = parse_config({"evaluator": {"name": "standalone"}, "budget": {"architectures": 1},
                           "dataset": {"name": "cifar10", "path": str(tmp_path / "none")}})
    with pytest.raises(Exception, match="does not exist"):
        create_search(store, config)
    assert store.list_searches() == []
