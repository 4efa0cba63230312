"""Cells drawn as SVG graphs: the two inputs, each block's two ops as labelled edges into the
block's node, and the concatenated output fed by the loose ends.

Pure string building (no dependency): the dashboard embeds `cell_svg` inline and
`nas show --svg FILE` writes `genotype_svg`. Every op edge is a `<g class="op-edge">`, so a
cell of n blocks has 2n of them; names are XML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from searchspace.genotype import CELL_NAMES, Block, Genotype, loose_ends

COLUMN = 190  # horizontal distance between node columns
ROW = 70  # vertical distance between nodes of one column
NODE_W, NODE_H = 64, 30
MARGIN = 24
BEND = 18  # how far op_a bends up and op_b down, so two edges between one pair stay apart


@dataclass(frozen=True)
class _Node:
    key: str
    label: str
    kind: str
    x: float
    y: float


def _depths(blocks: Sequence[Block]) -> list[int]:
    """Column of each state: inputs 0, a block one right of its deepest input."""
    depth = [0, 0]
    for input_a, _, input_b, _ in blocks:
        depth.append(1 + max(depth[input_a], depth[input_b]))
    return depth


def _layout(blocks: Sequence[Block]) -> tuple[list[_Node], _Node, float, float]:
    depth = _depths(blocks)
    output_column = max(depth) + 1
    columns: dict[int, list[int]] = {}
    for state, column in enumerate(depth):
        columns.setdefault(column, []).append(state)
    tallest = max(len(states) for states in columns.values())
    height = MARGIN * 2 + tallest * ROW
    labels = ["c{k-2}", "c{k-1}"] + [f"b{i}" for i in range(len(blocks))]
    nodes: list[_Node] = [None] * len(depth)  # type: ignore[list-item]
    for column, states in columns.items():
        top = (height - len(states) * ROW) / 2 + ROW / 2
        for row, state in enumerate(states):
            kind = "input" if state < 2 else "block"
            nodes[state] = _Node(f"s{state}", labels[state], kind,
                                 MARGIN + NODE_W / 2 + column * COLUMN, top + row * ROW)
    output = _Node("out", "concat", "output", MARGIN + NODE_W / 2 + output_column * COLUMN,
                   height / 2)
    width = output.x + NODE_W / 2 + MARGIN
    return nodes, output, width, height


def _edge(start: _Node, end: _Node, bend: float) -> tuple[str, float, float]:
    """A quadratic curve from `start`'s right side to `end`'s left side, bent by `bend`;
    with the point on the curve halfway along it (where its label goes). An edge that skips a
    column bends half a row, so that it passes between the nodes of the columns it crosses."""
    if end.x - start.x > COLUMN * 1.5:
        bend = ROW / 2 if bend >= 0 else -ROW / 2
    x1, y1 = start.x + NODE_W / 2, start.y
    x2, y2 = end.x - NODE_W / 2, end.y
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 2 * bend
    mid_x, mid_y = (x1 + 2 * cx + x2) / 4, (y1 + 2 * cy + y2) / 4
    return f"M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}", mid_x, mid_y


def _node_svg(node: _Node) -> str:
    return (f'<g class="node node-{node.kind}"><rect x="{node.x - NODE_W / 2:.1f}" '
            f'y="{node.y - NODE_H / 2:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{node.x:.1f}" y="{node.y + 4:.1f}" text-anchor="middle">'
            f'{escape(node.label)}</text></g>')


def cell_svg(blocks: Sequence[Block], title: str = "cell", *, element_id: str | None = None
             ) -> str:
    """One cell as a standalone `<svg>` element (inline in HTML, or a file of its own)."""
    nodes, output, width, height = _layout(blocks)
    arrow = f"arrow-{element_id or 'cell'}"
    marker = f'marker-end="url(#{arrow})"'
    parts: list[str] = []
    for index, (input_a, op_a, input_b, op_b) in enumerate(blocks):
        target = nodes[index + 2]
        for field, source, op, bend in (("a", input_a, op_a, -BEND), ("b", input_b, op_b, BEND)):
            path, label_x, label_y = _edge(nodes[source], target, bend)
            parts.append(
                f'<g class="op-edge" data-block="{index}" data-input="{field}">'
                f'<title>{escape(f"b{index} {field}: {op}({nodes[source].label})")}</title>'
                f'<path d="{path}" {marker}/>'
                f'<text x="{label_x:.1f}" y="{label_y - 3:.1f}" text-anchor="middle">'
                f'{escape(op)}</text></g>')
    for state in loose_ends(blocks):
        path, _, _ = _edge(nodes[state], output, -1.0 if nodes[state].y <= output.y else 1.0)
        parts.append(f'<g class="concat-edge"><path d="{path}" {marker}/></g>')
    parts += [_node_svg(node) for node in (*nodes, output)]
    id_attribute = f" id={quoteattr(element_id)}" if element_id else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg"{id_attribute} class="cell-graph" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label={quoteattr(title)}>'
        f"<title>{escape(title)}</title>{_STYLE}"
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>" + "".join(parts) + "</svg>")


_STYLE = (
    "<style>.cell-graph{font:12px sans-serif}"
    ".cell-graph path{fill:none;stroke:#57606a;stroke-width:1.4}"
    ".cell-graph marker path{fill:#57606a;stroke:none}"
    ".cell-graph .op-edge text{fill:#0b4f8a;font-size:11px;paint-order:stroke;"
    "stroke:#fff;stroke-width:3px}"
    ".cell-graph .concat-edge path{stroke-dasharray:4 3}"
    ".cell-graph rect{fill:#eef3f8;stroke:#57606a}"
    ".cell-graph .node-input rect{fill:#fff4d6}"
    ".cell-graph .node-output rect{fill:#e3f4e1}</style>"
)


def genotype_svg(genotype: Genotype, title: str = "architecture") -> str:
    """Both cells, one above the other, as one SVG document (what `nas show --svg` writes)."""
    drawn = [(cell, cell_svg(genotype.cell(cell), f"{title}: {cell} cell", element_id=cell),
              _layout(genotype.cell(cell))) for cell in CELL_NAMES]
    width = max(layout[2] for _, _, layout in drawn)
    y, inner = 0.0, []
    for cell, svg, layout in drawn:
        inner.append(f'<text x="{MARGIN}" y="{y + 18:.0f}" font-family="sans-serif" '
                     f'font-weight="bold">{escape(cell)} cell</text>')
        inner.append(f'<g transform="translate(0,{y + 24:.0f})">{svg}</g>')
        y += layout[3] + 30
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width:.0f} {y:.0f}" width="{width:.0f}" height="{y:.0f}">'
            f"<title>{escape(title)}</title>" + "".join(inner) + "</svg>\n")
