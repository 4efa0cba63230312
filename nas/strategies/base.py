"""The ask/tell interface every search strategy implements.

A strategy proposes genotypes with `ask(n)` and learns from `tell(genotypes, rewards)`
(higher reward is better); a proposal that will never have a reward (its candidate failed, was
cancelled, or was drawn only to train shared weights) is handed back with `abandon(genotypes)`,
so every ask ends told or abandoned. Its whole state round-trips through `state_dict()` and
`load_state_dict()`, so a resumed search continues exactly where it stopped: a strategy
keeps no hidden history and draws all randomness from generators that are part of its state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import ConfigDict

from nas.strict_numbers import StrictNumbers
from searchspace.genotype import Genotype
from searchspace.registry import Registry
from searchspace.spaces import SearchSpace


class StrategyOptions(StrictNumbers):
    """Options of a strategy; subclasses add theirs. Unknown options are an error."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def check_ops(self, ops: Sequence[str]) -> None:
        """`ValueError` when an option names an op the space (of these `ops`) lacks."""


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

    def abandon(self, genotypes: Sequence[Genotype]) -> None:
        """Give up on asked genotypes that will get no reward. Strategies that keep nothing
        open between `ask` and `tell` only check them; TPE closes their trials as FAIL."""
        for genotype in genotypes:
            self.space.validate(genotype)

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


class IncompatibleState(ValueError):
    """A checkpointed strategy state that this release cannot continue from (the strategy's
    model changed since the state was written)."""


def check_state_strategy(state: dict[str, Any], name: str) -> None:
    """Raise `ValueError` unless `state` was written by the strategy called `name`."""
    written_by = state.get("strategy")
    if written_by != name:
        raise ValueError(f"state was written by strategy {written_by!r}, not {name!r}")


# The strategies by name; importing a strategy's module registers it (on the first lookup).
STRATEGIES: Registry[type[Strategy]] = Registry("strategy", modules=(
    "nas.strategies.reinforce", "nas.strategies.random", "nas.strategies.evolution",
    "nas.strategies.tpe",
))

StrategyClass = TypeVar("StrategyClass", bound=type[Strategy])


def register_strategy(cls: StrategyClass) -> StrategyClass:
    """Class decorator: register a strategy under its `name`."""
    STRATEGIES.add(cls.name, cls)
    return cls

