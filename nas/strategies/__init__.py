"""Search strategies behind one ask/tell interface, created by name with `create`."""

from __future__ import annotations

from typing import Any

from nas.strategies.base import Strategy, StrategyOptions

__all__ = ["Strategy", "StrategyOptions", "create", "STRATEGIES"]


def _registry() -> dict[str, type[Strategy]]:
    from nas.strategies.evolution import RegularizedEvolution
    from nas.strategies.random import RandomSearch
    from nas.strategies.reinforce import Reinforce
    from nas.strategies.tpe import TPE

    return {cls.name: cls for cls in (Reinforce, RandomSearch, RegularizedEvolution, TPE)}


STRATEGIES = ("reinforce", "random", "evolution", "tpe")


def create(name: str, space: Any, *, seed: int = 0, **options: Any) -> Strategy:
    """The strategy `name` over `space`; unknown names and options raise `ValueError`."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return registry[name](space, seed=seed, **options)
