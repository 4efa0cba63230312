"""Latency (nas.latency) measured for candidates, kept per genotype, used by the objective."""

import math
import random

import pytest
import torch

from nas.config import parse_config
from nas.enas import EnasEvaluator
from nas.latency import forward_ms, measure_latency, train_step_ms
from nas.search import create_search, open_dataset, run_search
from nas.store import ArchitectureState
from searchspace.zoo import create_network

TARGET = {"latency_target_ms": 1.0, "latency_weight": -0.5}
TINY = {"seed": 2, "dataset": {"name": "synthetic", "limit": 64},
        "network": {"cells": 1, "channels": 4}, "space": {"blocks": 2},
        "samples_per_step": 2}


def test_a_training_step_leaves_the_network_as_it_was():
    model = create_network("resnet20", num_classes=10)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    latency = measure_latency(model, (3, 32, 32), batch_size=8, num_classes=10)
    assert latency.forward_ms > 0 and latency.train_step_ms > latency.forward_ms
    assert (latency.train_batch, latency.device) == (8, "cpu")
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert forward_ms(model, (3, 32, 32), repeats=1) > 0
    assert train_step_ms(model, (3, 32, 32), 2, 10, repeats=1) > 0


class ThreadsSeen(torch.nn.Module):
    """Records the torch thread count of each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.seen = torch.nn.Linear(4, 2), []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.linear(images.flatten(1)[:, :4])


def test_the_forward_latency_runs_on_one_thread_and_gives_the_threads_back():
    """Several threads measured the process's OpenMP wait policy more than the network (a
    searched cell's pass: 44 ms on 2 threads with passive waiting, 9 ms on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = ThreadsSeen()
        forward_ms(model, (3, 2, 2), repeats=2)
        assert model.seen == [1, 1, 1]  # the untimed pass and both repeats
        assert torch.get_num_threads() == 2
        step = ThreadsSeen()
        measure_latency(step, (3, 2, 2), batch_size=4, num_classes=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_standalone_candidates_carry_their_latency_and_the_target_uses_it(store):
    config = parse_config({**TINY, "strategy": {"name": "random"},
                           "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 16},
                           "budget": {"architectures": 2}, "objective": TARGET})
    record = run_search(store, create_search(store, config).id)
    rows = store.architectures(record.id)
    assert len(rows) == 2 and {row.state for row in rows} == {ArchitectureState.COMPLETE}
    for row in rows:
        assert row.latency_ms > 0 and row.metrics.train_step_ms > 0
        assert (row.metrics.train_step_batch, row.metrics.latency_device) == (16, "cpu")
        assert row.reward == pytest.approx(row.accuracy * row.latency_ms ** -0.5)


def _enas_config(**overrides):
    return parse_config({**TINY, "strategy": {"name": "reinforce"},
                         "evaluator": {"name": "enas", "batch_size": 32, "steps_per_epoch": 2,
                                       "warmup_epochs": 0, "derive_samples": 4,
                                       "derive_top": 2},
                         "budget": {"architectures": 12}, **overrides})


def test_enas_measures_latency_only_when_targeted_and_always_for_derived_cells(store):
    plain = run_search(store, create_search(store, _enas_config()).id)
    candidates = store.architectures(plain.id, role="candidate")
    derived = store.architectures(plain.id, role="derived")
    assert {row.latency_ms for row in candidates} == {None}
    assert all(row.latency_ms > 0 and row.metrics.train_step_ms > 0 for row in derived)
    assert {row.metrics.train_step_batch for row in derived} == {32}
    targeted = run_search(store, create_search(store, _enas_config(objective=TARGET)).id)
    for row in store.architectures(targeted.id):
        assert row.latency_ms > 0
        fit = (row.accuracy if row.metrics.batch_loss is None  # derived: whole-split accuracy
               else math.exp(-row.metrics.batch_loss))  # candidates: the default score_by
        assert row.reward == pytest.approx(fit * row.latency_ms ** -0.5)


def test_enas_latency_is_measured_once_per_genotype_and_kept_through_a_checkpoint(monkeypatch):
    config = _enas_config(objective=TARGET)
    evaluator = EnasEvaluator(config, open_dataset(config))
    genotypes = [evaluator.supernet.space.sample(random.Random(i)) for i in range(3)]
    first = [evaluator.latency(genotype) for genotype in genotypes]
    state = evaluator.state_dict()

    def no_second_measurement(*args, **kwargs):
        raise AssertionError("a latency measured twice")

    monkeypatch.setattr("nas.enas.measure_latency", no_second_measurement)
    assert [evaluator.latency(genotype) for genotype in genotypes] == first
    resumed = EnasEvaluator(config, open_dataset(config))
    resumed.load_state_dict(state)
    assert [resumed.latency(genotype) for genotype in genotypes] == first
    [evaluation] = resumed.evaluate(genotypes[:1])
    assert evaluation.latency_ms == first[0].forward_ms
