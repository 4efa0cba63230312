"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search".

The population holds the last `population_size` told genotypes with their rewards. Until it
is full, `ask` samples uniformly; afterwards each child is a one-decision mutation of the best
member of a tournament of `tournament_size` members drawn (without replacement) from the
population. `tell` appends in order and the oldest member dies, whatever its reward. Several
`ask` calls may precede a `tell` (asynchronous workers).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from nas.strategies.base import Strategy, StrategyOptions, check_state_strategy, register_strategy
from nas.strategies.random import rng_state_from_json, rng_state_to_json
from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace


class EvolutionOptions(StrategyOptions):
    population_size: int = Field(20, ge=2, description="members kept alive")
    tournament_size: int = Field(5, ge=1, description="members compared to pick a parent")

    @model_validator(mode="after")
    def _tournament_fits(self) -> EvolutionOptions:
        if self.tournament_size > self.population_size:
            raise ValueError(
                f"tournament_size ({self.tournament_size}) must not exceed "
                f"population_size ({self.population_size})"
            )
        return self


def mutate(space: SearchSpace, genotype: Genotype, rng: random.Random) -> Genotype:
    """`genotype` with exactly one decision (among those with >1 choice) set to another value."""
    tokens = space.to_tokens(genotype)
    decisions = space.decisions()
    mutable = [i for i, decision in enumerate(decisions) if decision.choices > 1]
    if not mutable:
        return genotype
    position = rng.choice(mutable)
    new_value = rng.randrange(decisions[position].choices - 1)
    tokens[position] = new_value + (new_value >= tokens[position])
    return space.from_tokens(tokens)


@register_strategy
class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection and single-decision mutations."""

    name = "evolution"
    Options = EvolutionOptions
    options: EvolutionOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        self.rng = random.Random(seed)
        self.population: deque[tuple[Genotype, float]] = deque(
            maxlen=self.options.population_size
        )

    def ask(self, n: int) -> list[Genotype]:
        self.check_asked(n)
        return [self._child() for _ in range(n)]

    def _child(self) -> Genotype:
        if len(self.population) < self.options.population_size:
            return self.space.sample(self.rng)
        tournament = self.rng.sample(list(self.population), self.options.tournament_size)
        parent, _ = max(tournament, key=lambda member: member[1])
        return mutate(self.space, parent, self.rng)

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        values = self.check_told(genotypes, rewards)
        for genotype in genotypes:
            self.space.validate(genotype)
        self.population.extend(zip(genotypes, values, strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "rng": rng_state_to_json(self.rng),
            "population": [
                {"genotype": genotype.to_dict(), "reward": reward}
                for genotype, reward in self.population
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_strategy(state, self.name)
        population = [
            (Genotype.from_dict(member["genotype"]), float(member["reward"]))
            for member in state["population"]
        ]
        for genotype, _ in population:
            self.space.validate(genotype)
        rng_state_from_json(self.rng, state["rng"])
        self.population.clear()
        self.population.extend(population)
