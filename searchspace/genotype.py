"""Genotypes: the searched description of a normal and a reduction cell.

A cell has two inputs, numbered 0 (the output of the cell two back) and 1 (the previous cell),
and a sequence of blocks. Block `i` is `(input_a, op_a, input_b, op_b)`: it applies `op_a` to
state `input_a` and `op_b` to state `input_b` and sums them into state `i + 2`. The cell's output
concatenates every block output that no later block consumes (NASNet's "loose ends").
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from searchspace.unique_keys import KeyGivenTwice, unique_keys

Block = tuple[int, str, int, str]
CELL_NAMES = ("normal", "reduction")
BLOCK_FIELDS = ("input_a", "op_a", "input_b", "op_b")
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _short(value: Any) -> str:
    """`repr(value)` cut short (a few levels deep, a few items wide) for error messages."""
    return _SHORT.repr(value)


class InvalidGenotype(ValueError):
    """A genotype that is malformed or does not fit a search space; the message says where."""


def _where(cell: str, block: int | None = None, field: str | None = None) -> str:
    place = f"{cell} cell"
    if block is not None:
        place += f", block {block}"
    if field is not None:
        place += f", {field}"
    return place


def _parse_block(cell: str, index: int, raw: Any) -> Block:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != 4:
        raise InvalidGenotype(
            f"{_where(cell, index)}: expected [input_a, op_a, input_b, op_b], got {_short(raw)}"
        )
    for field, value in zip(BLOCK_FIELDS, raw, strict=True):
        expected = str if field.startswith("op") else int
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidGenotype(
                f"{_where(cell, index, field)}: expected {expected.__name__}, got {_short(value)}"
            )
    input_a, op_a, input_b, op_b = raw
    return (input_a, op_a, input_b, op_b)


MAX_BLOCKS = 64  # blocks per cell; a search space has at most 10

@dataclass(frozen=True)
class Genotype:
    """An immutable pair of cells, each a tuple of `(input_a, op_a, input_b, op_b)` blocks."""

    normal: tuple[Block, ...]
    reduction: tuple[Block, ...]

    def __post_init__(self) -> None:
        for cell in CELL_NAMES:
            blocks = getattr(self, cell)
            if isinstance(blocks, str) or not isinstance(blocks, Iterable):
                raise InvalidGenotype(
                    f"{cell} cell: expected a list of blocks, got {_short(blocks)}")
            parsed = tuple(_parse_block(cell, i, block) for i, block in enumerate(blocks))
            if not parsed:
                raise InvalidGenotype(f"{cell} cell: needs at least one block")
            if len(parsed) > MAX_BLOCKS:
                raise InvalidGenotype(f"{cell} cell: has {len(parsed)} blocks, at most "
                                      f"{MAX_BLOCKS} (the widest cell's concatenation outgrows "
                                      f"memory)")
            for i, (input_a, _, input_b, _) in enumerate(parsed):
                for field, source in (("input_a", input_a), ("input_b", input_b)):
                    if not 0 <= source < i + 2:
                        raise InvalidGenotype(
                            f"{_where(cell, i, field)}: input {source} out of range; block {i} "
                            f"may read states 0..{i + 1} (0, 1 = cell inputs, k >= 2 = block k-2)"
                        )
            object.__setattr__(self, cell, parsed)

    def cell(self, name: str) -> tuple[Block, ...]:
        """The blocks of cell `name` ('normal' or 'reduction')."""
        if name not in CELL_NAMES:
            raise ValueError(f"unknown cell {name!r}; cells are {CELL_NAMES}")
        return getattr(self, name)

    def ops(self) -> set[str]:
        """Every op name used by either cell."""
        return {op for cell in CELL_NAMES for block in self.cell(cell) for op in block[1::2]}

    def canonical(self) -> Genotype:
        """The same architecture written one way: the two inputs of each block sorted."""
        return Genotype(
            normal=tuple(_canonical_block(block) for block in self.normal),
            reduction=tuple(_canonical_block(block) for block in self.reduction),
        )

    @property
    def id(self) -> str:
        """A stable id: the first 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.canonical().to_json().encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, list[list[int | str]]]:
        return {cell: [list(block) for block in self.cell(cell)] for cell in CELL_NAMES}

    def to_json(self, indent: int | None = None) -> str:
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators)

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        if not isinstance(data, dict):
            raise InvalidGenotype(
                f"expected an object with 'normal' and 'reduction', got {_short(data)}")
        missing = [cell for cell in CELL_NAMES if cell not in data]
        if missing:
            raise InvalidGenotype(f"missing cell(s): {', '.join(missing)}")
        unknown = sorted(map(str, set(data) - set(CELL_NAMES)))
        if unknown:
            raise InvalidGenotype(f"unknown key(s): {_short(', '.join(unknown))}; expected "
                                  f"{CELL_NAMES}")
        return cls(normal=data["normal"], reduction=data["reduction"])

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text, object_pairs_hook=unique_keys)
        except KeyGivenTwice as error:
            raise InvalidGenotype(str(error)) from None
        except json.JSONDecodeError as error:
            raise InvalidGenotype(f"not valid JSON: {error}") from None
        except RecursionError:  # a genotype is three levels deep; thousands are no genotype
            raise InvalidGenotype("not a genotype: JSON nested too deeply") from None
        return cls.from_dict(data)


def _canonical_block(block: Block) -> Block:
    input_a, op_a, input_b, op_b = block
    (input_a, op_a), (input_b, op_b) = sorted([(input_a, op_a), (input_b, op_b)])
    return (input_a, op_a, input_b, op_b)


def loose_ends(blocks: Sequence[Block]) -> list[int]:
    """States (2 + block index) that no later block reads: the cell's concatenated output."""
    used = {source for input_a, _, input_b, _ in blocks for source in (input_a, input_b)}
    return [i + 2 for i in range(len(blocks)) if i + 2 not in used]


def validate_genotype(
    genotype: Genotype, ops: Iterable[str], blocks: int | None = None,
    cells: Iterable[str] = CELL_NAMES,
) -> None:
    """Check that `genotype` uses only `ops` and has `blocks` blocks in each of `cells`."""
    allowed = list(ops)
    for cell in cells:
        cell_blocks = genotype.cell(cell)
        if blocks is not None and len(cell_blocks) != blocks:
            raise InvalidGenotype(
                f"{cell} cell: has {len(cell_blocks)} blocks, the space has {blocks}"
            )
        for i, (_, op_a, _, op_b) in enumerate(cell_blocks):
            for field, op in (("op_a", op_a), ("op_b", op_b)):
                if op not in allowed:
                    raise InvalidGenotype(
                        f"{_where(cell, i, field)}: {op!r} is not an op of this space "
                        f"(ops: {', '.join(allowed)})"
                    )


def describe_cell(blocks: Sequence[Block]) -> list[str]:
    """A cell as lines of text: one per block, then the concatenated output."""
    names = ["c{k-2}", "c{k-1}"] + [f"b{i}" for i in range(len(blocks))]
    lines = [
        f"b{i} = {op_a}({names[input_a]}) + {op_b}({names[input_b]})"
        for i, (input_a, op_a, input_b, op_b) in enumerate(blocks)
    ]
    lines.append("out = concat(" + ", ".join(names[i] for i in loose_ends(blocks)) + ")")
    return lines
