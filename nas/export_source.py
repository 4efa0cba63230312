"""The standalone `.py` module of a cell network, written from the project's own definitions.

The ops (their registered builders in `searchspace.ops` and the classes those use), the stem and
the stage plan (`searchspace.network`) are copied with `inspect.getsource`, so the exported
module cannot drift from the network that was searched. Only what a reader wants spelt out is
generated here: the normal and reduction cells, block by block, and the inference `Network`.
Its modules mirror `CellNetwork`'s attribute names, so the project's state dicts load into it.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable
from typing import Any, Literal

from searchspace import network as network_module
from searchspace import ops as op_module
from searchspace.genotype import Block, loose_ends
from searchspace.ops import OPS, FactorizedReduce, ReLUConvBN, concat_channels

AUXILIARY_PREFIX = "auxiliary_head."
# The modules definitions are copied from, in the order they are written out.
_SOURCE_MODULES = (op_module, network_module)
_RULE = "# " + "-" * 93


class UnexportableOp(ValueError):
    """An op whose builder is not a named module-level function of `searchspace.ops`."""


def python_string(text: str, width: int = 88) -> str:
    """`text` as a Python string expression, escaped by `repr` (user-given text never becomes
    code): one literal, or literals of pieces of it in parentheses, each line within `width`."""
    pieces, piece = [], ""
    for character in text:
        if piece and len(repr(piece + character)) > width:
            pieces.append(piece)
            piece = ""
        piece += character
    pieces.append(piece)
    if len(pieces) == 1:
        return repr(text)
    return "(\n" + "".join(f"    {piece!r}\n" for piece in pieces) + ")"


# ---------------------------------------------------------------------------------------------
# copying definitions


def op_builder(op: str) -> Callable[..., Any]:
    """The registered builder of `op`, checked to be copyable (a named function of the ops
    module, so the exported code can call it by name)."""
    builder = OPS[op]
    if (not isinstance(builder, types.FunctionType) or builder.__name__ == "<lambda>"
            or getattr(op_module, builder.__name__, None) is not builder):
        raise UnexportableOp(f"cannot export op {op!r}: its builder is not a named function "
                             "of searchspace.ops")
    return builder


def _definition_source(definition: Callable[..., Any] | type) -> str:
    """The source of a module-level function or class, without its decorators (the registry
    they register with is not part of the export)."""
    lines = inspect.getsource(definition).splitlines()
    while lines and lines[0].startswith("@"):
        lines.pop(0)
    return "\n".join(lines).strip()


def _own_definitions(module: types.ModuleType, source: str) -> set[str]:
    """The names in `source` of functions and classes that `module` itself defines."""
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    return {
        name for name in names
        if isinstance(value := getattr(module, name, None), type | types.FunctionType)
        and value.__module__ == module.__name__
    }


def copied_definitions(roots: Iterable[Callable[..., Any] | type]) -> str:
    """The source of `roots` and of every definition of the same modules they use, in the
    order of the modules and of their lines there (so base classes come first)."""
    wanted: dict[tuple[int, int], str] = {}
    pending = list(roots)
    seen: set[str] = set()
    while pending:
        definition = pending.pop()
        module = inspect.getmodule(definition)
        key = f"{module.__name__}.{definition.__qualname__}"
        if key in seen:
            continue
        seen.add(key)
        source = _definition_source(definition)
        line = inspect.getsourcelines(definition)[1]
        wanted[(_SOURCE_MODULES.index(module), line)] = source
        pending += [getattr(module, name) for name in _own_definitions(module, source)]
    return "\n\n\n".join(source for _, source in sorted(wanted.items()))


# ---------------------------------------------------------------------------------------------
# the generated parts


def _state_names(blocks: tuple[Block, ...]) -> list[str]:
    return ["s0", "s1"] + [f"b{index}" for index in range(len(blocks))]


def _cell_wiring(blocks: tuple[Block, ...], reduction: bool) -> tuple[list[str], list[str]]:
    """The lines of a cell's op list (calls of the copied builders) and of its forward pass."""
    names = _state_names(blocks)
    op_lines, forward_lines = [], []
    for index, (input_a, op_a, input_b, op_b) in enumerate(blocks):
        calls = []
        for source, op in ((input_a, op_a), (input_b, op_b)):
            stride = 2 if reduction and source < 2 else 1
            op_lines.append(f"{op_builder(op).__name__}(channels, stride={stride}),"
                            f"  # {len(op_lines)}: b{index}, on {names[source]}")
            calls.append(f"self.ops[{len(op_lines) - 1}]({names[source]})")
        forward_lines.append(f"b{index} = {calls[0]} + {calls[1]}")
    return op_lines, forward_lines


def cell_source(kind: Literal["normal", "reduction"], blocks: tuple[Block, ...]) -> str:
    """A cell class written out block by block; its ops are calls of the copied builders."""
    reduction = kind == "reduction"
    names = _state_names(blocks)
    op_lines, forward_lines = _cell_wiring(blocks, reduction)
    concat = [names[i] for i in loose_ends(blocks)]
    summary = "\n".join(
        [f"        b{i} = {op_a}({names[a]}) + {op_b}({names[b]})"
         for i, (a, op_a, b, op_b) in enumerate(blocks)]
        + [f"        out = concat({', '.join(concat)})"]
    )
    effect = ("halves the height and width (stride 2 on the cell inputs)"
              if reduction else "keeps the height and width")
    ops_text = textwrap.indent("\n".join(op_lines), " " * 12)
    forward_text = textwrap.indent("\n".join(forward_lines), " " * 8)
    return f'''
class {"Reduction" if reduction else "Normal"}Cell(nn.Module):
    """The searched {kind} cell: {effect}.

    s0 is the cell two back, s1 the previous cell (each brought to `channels` first); block i
    sums its two ops into b<i>:

{summary}
    """

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool) -> None:
        super().__init__()
        # After a reduction cell, the input two back is twice as large: halve it too.
        if reduction_prev:
            self.preprocess_prev_prev = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess_prev_prev = ReLUConvBN(c_prev_prev, channels, 1)
        self.preprocess_prev = ReLUConvBN(c_prev, channels, 1)
        self.ops = nn.ModuleList([  # in block order: index: block, on which state
{ops_text}
        ])
        self.out_channels = {len(concat)} * channels

    def forward(self, prev_prev: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        s0 = self.preprocess_prev_prev(prev_prev)
        s1 = self.preprocess_prev(prev)
{forward_text}
        # the loose ends: block outputs no other block reads
        return concat_channels([{", ".join(concat)}])
'''.strip("\n")


NETWORK_SOURCE = f'''
class Network(nn.Module):
    """Stem, three stages of normal cells with a reduction cell between stages, classifier."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        cells: int = CELLS,
        channels: int = CHANNELS,
        in_channels: int = IN_CHANNELS,
        stem: str = STEM,
    ) -> None:
        super().__init__()
        self.stem, plan = build_stem(stem, in_channels, channels)
        plan += stage_plan(cells, channels)  # (channels, is_reduction) of each cell
        stem_channels = self.stem[0].out_channels
        self.cells = nn.ModuleList()
        c_prev_prev, c_prev, reduction_prev = stem_channels, stem_channels, False
        for cell_channels, reduction in plan:
            cell_class = ReductionCell if reduction else NormalCell
            cell = cell_class(c_prev_prev, c_prev, cell_channels, reduction_prev)
            self.cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, reduction
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev_prev = prev = self.stem(x)
        for cell in self.cells:
            prev_prev, prev = prev, cell(prev_prev, prev)
        return self.classifier(self.global_pool(prev).flatten(1))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a `.pt` state dict (or a checkpoint holding one under "state_dict") into `model`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    state = {{key: value for key, value in state.items()
             if not key.startswith("{AUXILIARY_PREFIX}")}}
    model.load_state_dict(state)
    return model


def build_model(num_classes: int = NUM_CLASSES, weights: str | Path | None = WEIGHTS) -> Network:
    """The network; with `weights` (by default the exported ones, if any) loaded into it."""
    model = Network(num_classes=num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model


if __name__ == "__main__":
    model = build_model().eval()
    images = torch.randn(2, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        print("logits:", tuple(model(images).shape))
    print("parameters:", sum(p.numel() for p in model.parameters()))
'''.strip("\n")


def header_source(*, genotype_id: str, cells: int, channels: int, in_channels: int,
                  num_classes: int, input_size: int, stem: str, title: str,
                  weights_file: str | None) -> str:
    """The module docstring, imports and the constants the network is built with."""
    weights_line = (
        f"WEIGHTS: Path | None = Path(__file__).with_name({weights_file!r})"
        if weights_file else "WEIGHTS: Path | None = None  # exported without trained weights"
    )
    about = textwrap.fill(
        f"Exported from the architecture SOURCE names (below): genotype {genotype_id}, "
        f"{cells} normal cell(s) per stage, {channels} initial channels, "
        f"{in_channels} input channel(s), {stem} stem, {num_classes} classes, made for "
        f"{input_size}x{input_size} inputs.", width=92)
    return f'''"""A NASNet-style cell network, written out to need only PyTorch.

{about}

    model = build_model()                 # with the exported weights, when there are any
    model = build_model(num_classes=5, weights=None)  # a fresh network, e.g. to fine-tune
    load_weights(model, "model.pt")       # any state dict of the same network
    logits = model.eval()(images)         # images: N x {in_channels} x H x W

Generated by `nas export`; the module and parameter names match the project's CellNetwork,
so its state dicts load directly (the auxiliary head's weights, if any, are skipped).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = {num_classes}
IN_CHANNELS = {in_channels}
CELLS = {cells}  # normal cells per stage
CHANNELS = {channels}  # channels of the first stage's cells
INPUT_SIZE = {input_size}
STEM = {stem!r}
# what this network was exported from
SOURCE = {python_string(title)}
{weights_line}'''


def module_source(blocks: dict[Literal["normal", "reduction"], tuple[Block, ...]],
                  header: str) -> str:
    """The whole module: `header`, the copied definitions, the cells and the network."""
    used_ops = {op for cell in blocks.values() for _, op_a, _, op_b in cell for op in (op_a, op_b)}
    roots = [op_builder(op) for op in sorted(used_ops)]
    roots += [FactorizedReduce, ReLUConvBN, concat_channels, network_module.build_stem,
              network_module.stage_plan]
    cells = "\n\n\n".join(cell_source(kind, cell) for kind, cell in blocks.items())
    return "".join([
        header,
        f"\n\n\n{_RULE}\n# operations, stem and stage plan (as defined in the project)\n\n\n",
        copied_definitions(roots),
        f"\n\n\n{_RULE}\n# cells\n\n\n{cells}",
        f"\n\n\n{_RULE}\n# network\n\n\n{NETWORK_SOURCE}\n",
    ])
