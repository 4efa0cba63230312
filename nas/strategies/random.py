"""Random search: every asked genotype is an independent uniform sample of the space.

Also holds the JSON form of a `random.Random` state that the other strategies reuse.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from nas.strategies.base import Strategy, check_state_strategy, register_strategy
from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace


def rng_state_to_json(rng: random.Random) -> list[Any]:
    """`rng.getstate()` as JSON-serialisable lists: `[version, [internal state], gauss_next]`."""
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def rng_state_from_json(rng: random.Random, state: Sequence[Any]) -> None:
    """Restore `rng` from the output of `rng_state_to_json`."""
    version, internal, gauss_next = state
    rng.setstate((int(version), tuple(int(value) for value in internal), gauss_next))


@register_strategy
class RandomSearch(Strategy):
    """Uniform sampling from `random.Random(seed)`; `tell` checks its input and learns nothing."""

    name = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        self.rng = random.Random(seed)

    def ask(self, n: int) -> list[Genotype]:
        self.check_asked(n)
        return [self.space.sample(self.rng) for _ in range(n)]

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        self.check_told(genotypes, rewards)
        for genotype in genotypes:
            self.space.validate(genotype)

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.name, "rng": rng_state_to_json(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_strategy(state, self.name)
        rng_state_from_json(self.rng, state["rng"])
