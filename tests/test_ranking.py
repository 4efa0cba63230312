"""Kendall's tau with a bootstrap interval (nas.ranking), and the one ENAS stores per search."""

import subprocess
import sys

import numpy as np
import pytest

from nas.config import parse_config
from nas.enas import EnasEvaluator
from nas.ranking import agreement, kendall
from nas.search import create_search, open_dataset, run_search


def test_agreement_of_orders_that_agree_disagree_or_cannot_be_compared():
    same = agreement([0.1, 0.2, 0.3, 0.4, 0.5], [1, 2, 3, 4, 5], seed=0)
    assert (same.kendall_tau, same.candidates) == (1.0, 5)
    assert same.low == 1.0 and same.high == 1.0  # every resample keeps the order
    reversed_ = agreement([0.1, 0.2, 0.3, 0.4], [4, 3, 2, 1], seed=0)
    assert reversed_.kendall_tau == -1.0 and reversed_.high == -1.0
    mixed = agreement([1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 5, 8, 7], seed=0)
    assert 0 < mixed.kendall_tau < 1 and mixed.low <= mixed.kendall_tau <= mixed.high
    assert agreement([1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 5, 8, 7], seed=0) == mixed
    assert agreement([0.5, 0.5, 0.5], [1, 2, 3], seed=0).kendall_tau is None  # all tied
    assert agreement([0.1, 0.2], [1, 2], seed=0).kendall_tau is None  # too few
    assert kendall([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="3 scores against 2"):
        agreement([1, 2, 3], [1, 2], seed=0)


def test_kendall_is_scipys_tau_b_with_ties_and_needs_no_scipy():
    """The same tau-b as scipy.stats on tied and untied scorings, without importing scipy
    (62 MiB at a search's memory peak)."""
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    for size in (2, 3, 8, 32):
        for _ in range(50):
            first, second = rng.integers(0, 4, size) / 7, rng.normal(size=size).round(1)
            expected = kendalltau(first, second).statistic
            tau = kendall(first, second)
            assert (tau is None and np.isnan(expected)) or tau == pytest.approx(expected)
    probe = ("import sys; from nas.ranking import agreement; "
             "agreement([1, 2, 3, 4], [1, 3, 2, 4], seed=0); print('scipy' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "False"


def test_derived_cells_carry_how_far_the_one_batch_ranking_agrees_with_the_whole_split(store):
    """The one-batch accuracies are those the search's own scoring gives the same candidates
    on the batches each would have been scored on next."""
    config = parse_config({
        "seed": 4, "strategy": {"name": "random"},
        "evaluator": {"name": "enas", "batch_size": 32, "warmup_epochs": 1,
                      "derive_samples": 8, "derive_top": 2,
                      "score_on": "own", "score_batches": 1, "score_by": "accuracy"},
        "dataset": {"name": "digits", "limit": 400}, "network": {"cells": 1, "channels": 8},
        "space": {"blocks": 2}, "budget": {"architectures": 4}, "samples_per_step": 2})
    enas = EnasEvaluator(config, open_dataset(config))
    record = run_search(store, create_search(store, config).id, evaluator=enas)
    derived = store.architectures(record.id, role="derived")
    rankings = {row.metrics.ranking for row in derived}
    assert len(rankings) == 1  # one agreement per search, on each derived cell
    [ranking] = rankings
    assert ranking.candidates == derived[0].metrics.derived_from
    assert ranking.kendall_tau is not None and -1 <= ranking.low <= ranking.kendall_tau
    assert ranking.kendall_tau <= ranking.high <= 1
    # re-derive under the same weights: the one-batch accuracies are the search's protocol
    genotypes = [row.genotype for row in derived]
    one_batch = enas.accuracies(genotypes, [[enas.valid_batches[
        (enas.valid_cursor + index) % len(enas.valid_batches)]] for index in range(2)])
    counts = enas.batch_counts(genotypes, [enas.whole_split()] * 2)
    assert [own[(enas.valid_cursor + index) % len(own)][0] / own[(enas.valid_cursor + index)
            % len(own)][1] for index, own in enumerate(counts)] == one_batch
