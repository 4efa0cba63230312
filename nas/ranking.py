"""How far a search's ranking can be trusted: Kendall's tau between two scorings of the same
candidates, with a bootstrap confidence interval.

ENAS scores each candidate of a search on a few validation batches; derivation scores its
candidates on the whole validation split. `agreement` compares, over derivation's candidates,
the score each would have had under the search's protocol with its whole-split score: a tau
near 1 means the rewards the strategy learnt from rank candidates as the whole split does;
near 0, that they are mostly noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
MIN_CANDIDATES = 3


class Agreement(BaseModel):
    """Kendall's tau-b of two scorings of `candidates` candidates, and its bootstrap interval
    (None where undefined: too few candidates, or a scoring with every value tied)."""

    model_config = ConfigDict(frozen=True)

    kendall_tau: float | None
    low: float | None
    high: float | None
    candidates: int
    confidence: float = CONFIDENCE


def kendall(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Kendall's tau-b of two scorings (None when undefined: fewer than two values, or one
    scoring with every value tied).

    Counted over all pairs in numpy (derivation compares a few dozen candidates): scipy.stats'
    `kendalltau` gives the same value, but importing it cost a search process 62 MiB at the
    end of the search, where a search in micro-batches peaked."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if len(a) < 2:
        return None
    upper = np.triu_indices(len(a), k=1)
    order_a = np.sign(a[:, None] - a[None, :])[upper]
    order_b = np.sign(b[:, None] - b[None, :])[upper]
    untied_a, untied_b = np.count_nonzero(order_a), np.count_nonzero(order_b)
    if untied_a == 0 or untied_b == 0:
        return None
    tau = float(np.dot(order_a, order_b)) / math.sqrt(untied_a * untied_b)
    return None if math.isnan(tau) else tau


def agreement(first: Sequence[float], second: Sequence[float], seed: int) -> Agreement:
    """Kendall's tau of `first` against `second` (one value per candidate, in the same order)
    and its percentile bootstrap interval over resampled candidates (`seed`: the resampling)."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} scores against {len(second)}")
    count = len(first)
    tau = kendall(first, second) if count >= MIN_CANDIDATES else None
    if tau is None:
        return Agreement(kendall_tau=None, low=None, high=None, candidates=count)
    rng = np.random.default_rng(seed)
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    resampled = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picked = rng.integers(0, count, count)
        value = kendall(a[picked], b[picked])
        if value is not None:  # a resample of tied values has no tau
            resampled.append(value)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Agreement(kendall_tau=round(tau, 4), low=round(float(low), 4),
                     high=round(float(high), 4), candidates=count)
