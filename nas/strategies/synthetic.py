"""A synthetic objective for testing and benchmarking strategies without training anything.

`TokenMatchObjective` hides a target genotype (a seeded uniform sample of the space) and scores
a genotype by the fraction of token positions (`space.to_tokens`) equal to the target's. The
optimum is 1.0 at the target. Positions are compared as written, so swapping a block's two
inputs changes the score even though `Genotype.id` stays the same.
"""

from __future__ import annotations

import random

from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace


class TokenMatchObjective:
    """Reward = fraction of the target's tokens a genotype reproduces, in [0, 1]."""

    def __init__(self, space: SearchSpace, seed: int | str = 0) -> None:
        self.space = space
        self.target: Genotype = space.sample(random.Random(seed))
        self._target_tokens = space.to_tokens(self.target)

    def __call__(self, genotype: Genotype) -> float:
        tokens = self.space.to_tokens(genotype)
        matches = sum(a == b for a, b in zip(tokens, self._target_tokens, strict=True))
        return matches / len(tokens)
