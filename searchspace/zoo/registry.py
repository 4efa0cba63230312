"""Registry of the classic networks: `searchspace.registry.Registry` of kind "network".

A family module decorates a builder with `@register_network("name")`; callers build any network
by name with `create_network(name, num_classes=..., input_size=..., in_channels=...)` and list
them with `list_networks()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from searchspace.registry import Registry, UnknownName

NetworkBuilder = Callable[..., nn.Module]
Builder = TypeVar("Builder", bound=NetworkBuilder)


class UnknownNetwork(UnknownName):
    """No network is registered under the requested name."""


NETWORKS: Registry[NetworkBuilder] = Registry("network", unknown=UnknownNetwork)


def register_network(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers `builder(num_classes=, input_size=, in_channels=)` as `name`."""
    return NETWORKS.register(name)


def list_networks() -> list[str]:
    """Names of all registered networks, sorted."""
    return NETWORKS.names()


def create_network(
    name: str, num_classes: int = 10, input_size: int = 32, in_channels: int = 3
) -> nn.Module:
    """Build the network registered as `name` for square inputs of `input_size` pixels."""
    _require_at_least("num_classes", num_classes, 2)
    _require_at_least("input_size", input_size, 8)
    _require_at_least("in_channels", in_channels, 1)
    return NETWORKS.create(name, num_classes=num_classes, input_size=input_size,
                           in_channels=in_channels)


def _require_at_least(argument: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
