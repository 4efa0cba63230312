"""The ask/tell interface every search strategy implements.

A strategy proposes genotypes with `ask(n)` and learns from `tell(genotypes, rewards)`
(higher reward is better). Its whole state round-trips through `state_dict()` and
`load_state_dict()`, so a resumed search continues exactly where it stopped: a strategy
keeps no hidden history and draws all randomness from generators that are part of its state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace


class StrategyOptions(BaseModel):
    """Options of a strategy; subclasses add theirs. Unknown options are an error."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Strategy(ABC):
    """Base class: `ask(n)` proposes, `tell(genotypes, rewards)` learns."""

    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        self.space = space
        self.seed = seed
        self.options = self.Options(**options)

    @abstractmethod
    def ask(self, n: int) -> list[Genotype]:
        """Propose `n` genotypes to evaluate."""

    @abstractmethod
    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        """Learn from the rewards of genotypes (not necessarily those of the last `ask`)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: learned state and random generator states."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by `state_dict()` of a strategy with the same options."""

    @staticmethod
    def check_told(genotypes: Sequence[Genotype], rewards: Sequence[float]) -> list[float]:
        """Validate a `tell` call: equal lengths and finite rewards."""
        if len(genotypes) != len(rewards):
            raise ValueError(
                f"tell got {len(genotypes)} genotypes but {len(rewards)} rewards"
            )
        values = [float(reward) for reward in rewards]
        if not all(math.isfinite(value) for value in values):
            raise ValueError(f"rewards must be finite numbers, got {values}")
        return values

    @staticmethod
    def check_asked(n: int) -> None:
        if n < 1:
            raise ValueError(f"ask needs n >= 1, got {n}")


def check_state_strategy(state: dict[str, Any], name: str) -> None:
    """Raise `ValueError` unless `state` was written by the strategy called `name`."""
    written_by = state.get("strategy")
    if written_by != name:
        raise ValueError(f"state was written by strategy {written_by!r}, not {name!r}")
