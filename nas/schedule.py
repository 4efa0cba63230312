"""The learning-rate schedule of every training loop: cosine annealing (Loshchilov & Hutter,
2017, without restarts) down to a floor. `nas.train` applies it per step to SGD, the ENAS
supernet (`nas.enas`) per epoch to Adam after its warm-up."""

from __future__ import annotations

import math


def cosine_factor(progress: float, floor: float = 0.0) -> float:
    """The share of the initial learning rate at `progress` (0 to 1, clamped) of the run: 1 at
    the start, `floor` at the end, half-way between them half-way through."""
    progress = min(max(progress, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
