"""Registry of the classic networks, in the style of timm's `register_model` / `create_model`.

A family module decorates a builder with `@register_network("name")`; callers build any network
by name with `create_network(name, num_classes=..., input_size=..., in_channels=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

NetworkBuilder = Callable[..., nn.Module]
Builder = TypeVar("Builder", bound=NetworkBuilder)

_BUILDERS: dict[str, NetworkBuilder] = {}


class UnknownNetwork(ValueError):
    """No network is registered under the requested name."""

    def __init__(self, name: str, known_names: list[str]) -> None:
        super().__init__(f"unknown network {name!r}; known networks: {', '.join(known_names)}")
        self.name = name
        self.known_names = known_names


def register_network(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers `builder(num_classes=, input_size=, in_channels=)` as `name`."""

    def decorator(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"a network named {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_networks() -> list[str]:
    """Names of all registered networks, sorted."""
    return sorted(_BUILDERS)


def create_network(
    name: str, num_classes: int = 10, input_size: int = 32, in_channels: int = 3
) -> nn.Module:
    """Build the network registered as `name` for square inputs of `input_size` pixels."""
    _require_at_least("num_classes", num_classes, 2)
    _require_at_least("input_size", input_size, 8)
    _require_at_least("in_channels", in_channels, 1)
    if name not in _BUILDERS:
        raise UnknownNetwork(name, list_networks())
    return _BUILDERS[name](num_classes=num_classes, input_size=input_size, in_channels=in_channels)


def _require_at_least(argument: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
