"""JSON objects that give a key twice are refused: `json.loads` would keep the last value
without a word. Pass `unique_keys` as `object_pairs_hook`."""

from __future__ import annotations

from typing import Any


class KeyGivenTwice(ValueError):
    """A JSON object gave one key twice; the message names it."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of `pairs`; `KeyGivenTwice` for a key given twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise KeyGivenTwice(f"key {key[:100]!r} given twice")
        found[key] = value
    return found
