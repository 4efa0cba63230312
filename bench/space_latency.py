"""How fast a network of a search space can be, next to ResNet-20 (bench/space_latency.py).

A latency target can only move a search towards cells that its space holds. This measures the
training step (batch 64, SGD, in the layout training picks) and the forward latency (batch 1,
one thread, eval mode) of uniformly random genotypes of several spaces, of random ops on a
residual chain (one loose end), and of the genotypes that use one op everywhere (every block
on both cell inputs, or as a residual chain), each as the search exports it
(the peers' CIFAR layout: width 16, 2 cells per stage, ENAS-style reductions). ResNet-20 is
measured in the same process between every few genotypes; each genotype's step is divided by
the median of ResNet-20's steps.
"""
# ruff: noqa: E402  (the allocator and OpenMP are set up before torch loads)

from __future__ import annotations

from nas.allocator import keep_freed_memory
from nas.threads import prefer_passive_openmp

prefer_passive_openmp()  # as the `nas` command sets itself up, before torch loads
keep_freed_memory()

import argparse
import json
import random
import statistics
import time

import torch
from _common import (
    ROOT,
    command_line,
    cpu_text,
    load_average,
    machine_info,
    markdown_table,
    set_threads,
    today,
    write_section,
)

from nas.latency import measure_latency
from searchspace.complexity import count_parameters
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork
from searchspace.spaces import DEFAULT_OPS, ENAS_OPS, SearchSpace
from searchspace.zoo import create_network

SHAPE = (3, 32, 32)
BATCH = 64
SECTION = "How fast a cell of the space can be (bench/space_latency.py)"
RESULT = ROOT / "bench" / "results" / "space_latency.json"
FIVE = "ENAS's five ops, 5 blocks (the enas default)"
SMALL = "ENAS's five ops, 2 blocks"
CHAIN_SPACE = "ENAS's five ops, 5 blocks, residual-chain inputs"
FIVE_WITH_CONV = tuple("conv_3x3" if op == "sep_conv_5x5" else op for op in ENAS_OPS)
SPACES = {
    FIVE: SearchSpace(ops=ENAS_OPS, blocks=5),
    "ten default ops, 5 blocks": SearchSpace(ops=DEFAULT_OPS, blocks=5),
    SMALL: SearchSpace(ops=ENAS_OPS, blocks=2),
    "five ops with conv_3x3 for sep_conv_5x5, 5 blocks": SearchSpace(ops=FIVE_WITH_CONV,
                                                                      blocks=5),
}
RESNET_EVERY = 4
"""ResNet-20 is measured again after this many genotypes."""


def pure(op: str, blocks: int = 5) -> Genotype:
    """The genotype whose every block applies `op` to both cell inputs."""
    cell = tuple((0, op, 1, op) for _ in range(blocks))
    return Genotype(normal=cell, reduction=cell)


def chain(op: str, blocks: int = 5) -> Genotype:
    """The residual chain: block i adds `op` of the previous state to that state itself, so the
    cell has one loose end and outputs as many channels as it reads (as a ResNet stage)."""
    cell = tuple((i + 1, op, i + 1, "identity") for i in range(blocks))
    return Genotype(normal=cell, reduction=cell)


def random_chain(space: SearchSpace, rng: random.Random) -> Genotype:
    """A genotype of `space` whose block i reads only the previous state (one loose end), with
    uniformly random ops."""
    def cell() -> tuple:
        return tuple((i + 1, rng.choice(space.ops), i + 1, rng.choice(space.ops))
                     for i in range(space.blocks))

    return Genotype(normal=cell(), reduction=cell())


def network_of(genotype: Genotype) -> CellNetwork:
    return CellNetwork(genotype, num_classes=10, cells=2, channels=16, reduce_inputs=True)


def measure(network: torch.nn.Module) -> dict:
    measured = measure_latency(network, SHAPE, batch_size=BATCH, num_classes=10)
    return {"params": count_parameters(network), "forward_ms": measured.forward_ms,
            "train_step_ms": measured.train_step_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=24, help="random genotypes per space")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    load_before = load_average()
    started = time.perf_counter()
    resnet = create_network("resnet20", num_classes=10, input_size=32, in_channels=3)
    resnet_runs = [measure(resnet)]
    rows: list[dict] = []

    def add(group: str, genotype: Genotype) -> None:
        rows.append({"group": group, "genotype": genotype.to_dict(),
                     **measure(network_of(genotype))})
        if len(rows) % RESNET_EVERY == 0:
            resnet_runs.append(measure(resnet))

    for op in dict.fromkeys(DEFAULT_OPS + FIVE_WITH_CONV):
        add(f"pure {op}", pure(op))
        if op != "identity":
            add(f"chain {op}", chain(op))
    for label, space in SPACES.items():
        rng = random.Random(args.seed)
        for _ in range(args.samples):
            add(label, space.sample(rng))
    rng = random.Random(args.seed)
    for _ in range(args.samples):
        add(CHAIN_SPACE, random_chain(SPACES[FIVE], rng))
    resnet_runs.append(measure(resnet))
    resnet20 = {"params": resnet_runs[0]["params"],
                "forward_ms": statistics.median(r["forward_ms"] for r in resnet_runs),
                "train_step_ms": statistics.median(r["train_step_ms"] for r in resnet_runs),
                "runs": len(resnet_runs)}
    for row in rows:
        row["step_vs_resnet20"] = round(row["train_step_ms"] / resnet20["train_step_ms"], 3)
        row["forward_vs_resnet20"] = round(row["forward_ms"] / resnet20["forward_ms"], 3)
    result = {"machine": machine_info(), "command": command_line(), "date": today(),
              "samples": args.samples, "seed": args.seed, "resnet20": resnet20, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1),
              "load_average": {"before": load_before, "after": load_average()}}
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
        write_section(SECTION, render(result))


def steps_of(result: dict, group: str) -> list[float]:
    """The training steps of a group's networks, each against ResNet-20's."""
    return [row["step_vs_resnet20"] for row in result["rows"] if row["group"] == group]


def render(result: dict) -> str:
    resnet20 = result["resnet20"]
    groups = {row["group"] for row in result["rows"]}
    spaces = [label for label in [*SPACES, CHAIN_SPACE] if label in groups]
    space_rows = []
    for label in spaces:
        rows = [r for r in result["rows"] if r["group"] == label]
        steps = steps_of(result, label)
        fastest = min(rows, key=lambda r: r["step_vs_resnet20"])
        space_rows.append([
            label, len(rows), f"{statistics.median(r['params'] for r in rows):,.0f}",
            f"x{min(steps):.2f}", f"x{statistics.quantiles(steps, n=10)[0]:.2f}",
            f"x{statistics.median(steps):.2f}", f"x{max(steps):.2f}",
            f"{fastest['params']:,}",
            f"x{statistics.median(r['forward_vs_resnet20'] for r in rows):.2f}",
            sum(s <= 1.0 for s in steps),
        ])
    by_group = {r["group"]: r for r in result["rows"]}
    pure_rows = []
    for group, row in by_group.items():
        if not group.startswith("pure "):
            continue
        op = group.removeprefix("pure ")
        cells = [row, by_group.get(f"chain {op}")]
        pure_rows.append([op, *(text for cell in cells for text in (
            ("-", "-", "-") if cell is None else
            (f"{cell['params']:,}", f"{cell['train_step_ms']:.1f}",
             f"x{cell['step_vs_resnet20']:.2f}")))])
    load = result["load_average"]
    return "\n".join([
        f"Run on {result['date']} with `{result['command']}` ({result['seconds']:.0f} s), on "
        f"{cpu_text(result['machine'])}, {result['machine']['threads']} torch thread(s), load "
        f"average before {load['before']}, after {load['after']}. Every network is built as a "
        "search of the peers' CIFAR configuration exports it (width 16, 2 cells per stage, "
        "ENAS-style reductions, 32x32 RGB input, 10 classes) and freshly initialised. Training "
        "step: `nas.latency.train_step_ms` (SGD at batch 64, in the layout training picks, "
        "median of 3 after one untimed step); forward: `nas.latency.forward_ms` (batch 1, one "
        "thread, eval mode, median of 5). ResNet-20 was measured "
        f"{resnet20['runs']} times in between: {resnet20['params']:,} parameters, step "
        f"{resnet20['train_step_ms']:.1f} ms, forward {resnet20['forward_ms']:.2f} ms "
        "(medians); every ratio is against those medians.",
        "",
        f"**Random genotypes** ({result['samples']} per space, seed {result['seed']}): the "
        "training step against ResNet-20's.",
        "",
        markdown_table(["space", "genotypes", "median params", "fastest step", "10th percentile",
                        "median step", "slowest step", "fastest's params", "median forward",
                        "steps <= ResNet-20's"], space_rows, align="lrrrrrrrrr"),
        "",
        "**One op everywhere** (5 blocks, both cells): \"pure\", every block applies the op to "
        "both cell inputs (5 loose ends: each cell outputs 5 x its width); \"chain\", block i "
        "adds the op of the previous state to that state (a residual chain, one loose end).",
        "",
        markdown_table(["op", "pure: params", "pure: step ms", "pure: vs ResNet-20",
                        "chain: params", "chain: step ms", "chain: vs ResNet-20"], pure_rows,
                       align="lrrrrrr"),
        "",
        *verdict(result),
    ])


def verdict(result: dict) -> list[str]:
    """What the tables say about a latency target's reach, from the figures themselves."""
    rows = result["rows"]
    fastest = min(rows, key=lambda r: r["step_vs_resnet20"])
    floor = next((r for r in rows if r["group"] == "chain avg_pool_3x3"), None)
    first = (f"- {sum(r['step_vs_resnet20'] <= 1.0 for r in rows)} of the {len(rows)} "
             "networks measured train a step as fast as ResNet-20.")
    if fastest is not floor:
        first += (f" The fastest, {fastest['group']} ({fastest['params']:,} parameters), "
                  f"takes x{fastest['step_vs_resnet20']:.2f}.")
    lines = [first]
    if floor is not None:
        lines.append(
            "- The network around the cells sets a floor: the network whose cells only "
            f"average-pool ({floor['params']:,} parameters"
            + (", the fastest measured" if floor is fastest else "")
            + f") takes x{floor['step_vs_resnet20']:.2f} ResNet-20's step. What else such a "
            "network computes is its stem (3 x the width at "
            "full resolution), the two 1x1 preprocessing convolutions of every cell, the "
            "reductions of the cells' inputs and the classifier.")
    five, small = steps_of(result, FIVE), steps_of(result, SMALL)
    if five and small:
        lines.append(
            "- So a latency target can move a search of ENAS's five ops from the median "
            f"random cell (x{statistics.median(five):.2f}) at best to its fastest cells "
            f"(x{min(five):.2f} of those measured). Parity with ResNet-20 needs a lighter "
            "network around the cells and fewer or cheaper ops in them (random cells of 2 "
            f"blocks: from x{min(small):.2f}), not a different search.")
    return lines


if __name__ == "__main__":
    main()
