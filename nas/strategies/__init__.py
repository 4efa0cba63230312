"""Search strategies behind one ask/tell interface, created by name with `create`.

`STRATEGIES` is their registry (`searchspace.registry.Registry`): `STRATEGIES.names()` lists
them; a strategy class registers itself with `@register_strategy` under its `name`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.strategies.base import (
    STRATEGIES,
    IncompatibleState,
    Strategy,
    StrategyOptions,
    register_strategy,
)

__all__ = [
    "STRATEGIES", "IncompatibleState", "Strategy", "StrategyOptions", "create",
    "validate_options",
    "register_strategy",
]


def create(name: str, space: Any, *, seed: int = 0, **options: Any) -> Strategy:
    """The strategy `name` over `space`; unknown names (`UnknownName`) and options raise
    `ValueError`."""
    return STRATEGIES.create(name, space, seed=seed, **options)


def validate_options(name: str, options: dict[str, Any], ops: Sequence[str]
                     ) -> StrategyOptions:
    """The options of strategy `name` for a space of `ops`, checked as `create` checks them,
    without building the strategy (no controller, no study, no global setting touched)."""
    checked = STRATEGIES[name].Options(**options)
    checked.check_ops(ops)
    return checked
