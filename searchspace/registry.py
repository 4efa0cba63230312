"""One way to register things by name, in the style of timm's `register_model` / `create_model`.

A `Registry` holds the entries of one kind (ops, zoo networks, strategies, evaluators):

    OPS = Registry("op")

    @OPS.register("conv_3x3")
    def conv_3x3(channels: int, stride: int) -> nn.Module: ...

    OPS.create("conv_3x3", 16, 1)   # calls the entry
    OPS.names()                    # the registered names, sorted
    OPS["conv_3x3"]                # the entry itself; a registry is a read-only mapping

Every lookup of a name that is not registered raises `UnknownName`, whose message is the same
for every kind: "unknown op 'y'; choose one of a, b, c". A registry can name the modules whose
import registers its entries (`modules=`); they are imported on the first lookup, so a
registry can sit below the modules that fill it without importing them up front.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry")
Registered = TypeVar("Registered")


class UnknownName(KeyError, ValueError):
    """No entry of `kind` is registered as `name`; the message lists the known names.

    A `KeyError` (a registry is a mapping) and a `ValueError` (a bad name is bad input).
    """

    def __init__(self, kind: str, name: object, known_names: builtins.list[str]) -> None:
        choices = ", ".join(known_names) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; choose one of {choices}")
        self.kind = kind
        self.name = name
        self.known_names = known_names

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


class Registry(Mapping[str, Entry], Generic[Entry]):
    """Entries of one `kind` by name; `unknown` is the error class raised for unknown names."""

    def __init__(
        self,
        kind: str,
        *,
        modules: tuple[str, ...] = (),
        unknown: type[UnknownName] = UnknownName,
    ) -> None:
        self.kind = kind
        self.unknown = unknown
        self._modules = modules
        self._loaded = not modules
        self._entries: dict[str, Entry] = {}

    def register(self, name: str) -> Callable[[Registered], Registered]:
        """Decorator registering its argument as `name` (and returning it unchanged)."""

        def decorator(entry: Registered) -> Registered:
            self.add(name, entry)  # type: ignore[arg-type]
            return entry

        return decorator

    def add(self, name: str, entry: Entry) -> None:
        """Register `entry` as `name`; a name is registered once."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry

    def get_entry(self, name: str) -> Entry:
        """The entry registered as `name`; `UnknownName` (or `unknown`) when there is none."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name"
            raise self.unknown(self.kind, name, self.names()) from None

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the entry registered as `name` with the given arguments (build the thing)."""
        return self.get_entry(name)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> builtins.list[str]:
        """The registered names, sorted (timm's `list_models`)."""
        self._load()
        return sorted(self._entries)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    # the read-only mapping: registry[name], name in registry, iteration over sorted names

    def __getitem__(self, name: str) -> Entry:
        return self.get_entry(name)

    def __contains__(self, name: object) -> bool:
        self._load()
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
