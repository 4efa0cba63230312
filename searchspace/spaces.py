"""Search spaces: which ops and how many blocks a cell has, and which cells are searched.

A space turns a genotype into the flat sequence of decisions a controller emits (for each
searched cell, for each block: input_a, op_a, input_b, op_b) and back, and samples uniformly.
When only the normal cell is searched, the reduction cell repeats the normal cell's blocks
(applied at stride 2), so every token sequence still names one whole genotype.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from searchspace.genotype import CELL_NAMES, Block, Genotype, InvalidGenotype, validate_genotype
from searchspace.ops import OPS

DEFAULT_OPS: tuple[str, ...] = (
    "identity", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "conv_1x7_7x1",
    "inception", "se_sep_conv_3x3", "mbconv_3x3", "avg_pool_3x3", "max_pool_3x3",
)
# ENAS's own five ops (Pham et al., 2018): the default when candidates share weights. Each op
# of a supernet trains only on the minibatches whose path samples it, so fewer, lighter ops
# train far faster (docs/benchmarks.md, "ENAS": the ten-op supernet barely learns in the
# same time).
ENAS_OPS: tuple[str, ...] = (
    "identity", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
)


@dataclass(frozen=True)
class Decision:
    """One token of the controller's sequence: which cell and block, what kind, how many choices."""

    cell: str
    block: int
    field: str
    kind: Literal["input", "op"]
    choices: int


@dataclass(frozen=True)
class SearchSpace:
    """NASNet-style cell space: `blocks` blocks per cell, each op drawn from `ops`."""

    ops: tuple[str, ...] = DEFAULT_OPS
    blocks: int = 5
    cells: tuple[str, ...] = field(default=CELL_NAMES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "cells", tuple(self.cells))
        for op in self.ops:
            OPS.get_entry(op)  # an unknown op raises UnknownOp, naming the known ones
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise ValueError("a space needs at least one op and no op twice")
        if self.blocks < 1:
            raise ValueError(f"blocks must be at least 1, got {self.blocks}")
        if self.cells not in (("normal",), CELL_NAMES):
            raise ValueError(
                f"cells must be ['normal'] or ['normal', 'reduction'], got {self.cells}"
            )

    def decisions(self) -> list[Decision]:
        """The controller's decisions in order, with the number of choices of each."""
        sequence = []
        for cell in self.cells:
            for block in range(self.blocks):
                for field_name in ("input_a", "op_a", "input_b", "op_b"):
                    if field_name.startswith("input"):
                        sequence.append(Decision(cell, block, field_name, "input", block + 2))
                    else:
                        sequence.append(Decision(cell, block, field_name, "op", len(self.ops)))
        return sequence

    def validate(self, genotype: Genotype) -> None:
        """Raise `InvalidGenotype` naming the cell, block and field that does not fit this space."""
        validate_genotype(genotype, self.ops, self.blocks, cells=CELL_NAMES)
        if self.cells == ("normal",) and genotype.reduction != genotype.normal:
            raise InvalidGenotype(
                "reduction cell: this space searches only the normal cell, so the reduction "
                "cell must repeat the normal cell's blocks"
            )

    def to_tokens(self, genotype: Genotype) -> list[int]:
        """The decision sequence of `genotype` (input indices, op indices into `self.ops`)."""
        self.validate(genotype)
        tokens = []
        for cell in self.cells:
            for input_a, op_a, input_b, op_b in genotype.cell(cell):
                tokens += [input_a, self.ops.index(op_a), input_b, self.ops.index(op_b)]
        return tokens

    def from_tokens(self, tokens: list[int]) -> Genotype:
        """The genotype a decision sequence names; a bad length or token raises InvalidGenotype."""
        decisions = self.decisions()
        if len(tokens) != len(decisions):
            raise InvalidGenotype(f"expected {len(decisions)} tokens, got {len(tokens)}")
        for token, decision in zip(tokens, decisions, strict=True):
            if not 0 <= token < decision.choices:
                raise InvalidGenotype(
                    f"{decision.cell} cell, block {decision.block}, {decision.field}: token "
                    f"{token} out of range 0..{decision.choices - 1}"
                )
        cells: dict[str, list[Block]] = {}
        for position in range(0, len(tokens), 4):
            decision = decisions[position]
            input_a, op_a, input_b, op_b = tokens[position:position + 4]
            block = (input_a, self.ops[op_a], input_b, self.ops[op_b])
            cells.setdefault(decision.cell, []).append(block)
        normal = tuple(cells["normal"])
        return Genotype(normal=normal, reduction=tuple(cells.get("reduction", normal)))

    def sample(self, rng: random.Random) -> Genotype:
        """A uniformly random genotype of this space."""
        return self.from_tokens([rng.randrange(d.choices) for d in self.decisions()])

    def sample_ops(self, rng: random.Random, topology: Genotype) -> Genotype:
        """A genotype with `topology`'s inputs and uniformly random ops (the supernet's
        topology warm-up: its ops learn before its paths also vary in what they read)."""
        tokens = [token if decision.kind == "input" else rng.randrange(decision.choices)
                  for token, decision in zip(self.to_tokens(topology), self.decisions(),
                                             strict=True)]
        return self.from_tokens(tokens)

    def fair_paths(self, rng: random.Random, topology: Genotype | None = None
                   ) -> list[Genotype]:
        """As many genotypes as ops, which together use every op once in every op decision
        (FairNAS's strict fairness, Chu et al., 2021: one supernet step trains each op of each
        block once); their inputs are drawn uniformly, or kept from `topology`."""
        kept = self.to_tokens(topology) if topology is not None else None
        columns = []
        for index, decision in enumerate(self.decisions()):
            if decision.kind == "input":
                columns.append([kept[index] if kept is not None
                                else rng.randrange(decision.choices) for _ in self.ops])
            else:
                order = list(range(decision.choices))
                rng.shuffle(order)
                columns.append(order)
        return [self.from_tokens([column[path] for column in columns])
                for path in range(len(self.ops))]

    def num_cells(self) -> int:
        """Distinct cells (one searched cell), counting a block's two inputs as unordered."""
        count = 1
        for block in range(self.blocks):
            choices = (block + 2) * len(self.ops)
            count *= choices * (choices + 1) // 2
        return count

    def num_genotypes(self) -> int:
        """Distinct genotypes: the product over searched cells of `num_cells()`."""
        return self.num_cells() ** len(self.cells)
