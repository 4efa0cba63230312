"""How fast the ENAS supernet learns: ENAS's five ops against the ten default ops.

For each op set, the real `EnasEvaluator` trains its supernet epoch by epoch on uniformly
sampled paths (a fresh path per minibatch, as a search's warm-up does); after each epoch the
same `--paths` random paths are scored on the whole validation split under the shared
weights. Each op set also runs with the topology warm-up (`evaluator.fixed_topology_epochs`:
for the first epochs the paths keep one genotype's inputs and vary only their ops). A control
row trains one fixed path of the ten-op space alone in the same supernet: what the weights
learn when nothing is shared between paths. The row `five-topology-micro` (not run by
default) trains the five ops with the topology warm-up in micro-batches of `--micro-batch`
(`evaluator.micro_batch`: batch norm's statistics per micro-batch). The rows `five-fair` and
`ten-fair`, and with the topology warm-up `five-fair-topology` and `ten-fair-topology` (not
run by default), train with `evaluator.path_sampling: fair`: each minibatch trains as many
paths as ops, which together use every op of every block once (FairNAS).

`--row-epochs ROW=N` gives one row its own number of epochs (its schedule planned for N, its
topology warm-up a third of them unless `--fixed-topology-epochs` says): rows of equal wall
time where a fair epoch of the ten ops costs five times the five's (CIFAR subset: 766 s, 151 s).

    .venv/bin/python bench/supernet_learning.py [--dataset digits|cifar] [--epochs 8]
        [--paths 10] [--threads 1] [--fixed-topology-epochs K] [--rows five ...]
        [--row-epochs ten-fair=2 ...] [--micro-batch 16] [--no-docs]

Prints one JSON object and rewrites the "Supernet learning, five ops vs ten ops" section of
docs/benchmarks.md (one table per dataset run; the other dataset's table is kept; a run of fair
rows only has a section of its own, ", fair paths").
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

from _common import (
    CIFAR,
    PEERS_CIFAR,
    command_line,
    cpu_text,
    load_average,
    machine_info,
    markdown_table,
    set_threads,
    today,
    write_section,
)

from nas.config import parse_config
from nas.enas import EnasEvaluator
from nas.search import open_dataset
from searchspace.spaces import DEFAULT_OPS, ENAS_OPS

DATASETS = {
    "digits": ({"name": "digits"}, 1),
    "cifar": (PEERS_CIFAR, 2),
}
SECTION = "Supernet learning, five ops vs ten ops (bench/supernet_learning.py)"


def learning_curve(dataset: str, ops: tuple[str, ...], epochs: int, paths: int,
                   fixed: bool = False, fixed_topology_epochs: int = 0,
                   micro_batch: int | None = None, path_sampling: str = "uniform"
                   ) -> list[dict]:
    """Loss and mean whole-split accuracy of `paths` random paths after each epoch."""
    data_config, cells = DATASETS[dataset]
    config = parse_config({
        "name": "bench-learning", "seed": 0, "dataset": data_config,
        "space": {"ops": list(ops)}, "network": {"cells": cells, "channels": 16},
        "evaluator": {"name": "enas", "warmup_epochs": epochs,
                      "fixed_topology_epochs": fixed_topology_epochs,
                      "micro_batch": micro_batch, "path_sampling": path_sampling},
        "budget": {"architectures": 1},  # plans `epochs` + 1 epochs: the cosine schedule
    })
    data = open_dataset(config)
    enas = EnasEvaluator(config, data)
    space = enas.supernet.space
    scored = [space.sample(random.Random(f"paths-{index}")) for index in range(paths)]
    if fixed:
        scored = scored[:1]
        enas.supernet.space = OnePath(space, scored[0])
    curve, trained = [], 0.0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        loss = enas.train_epoch(None, uniform=True)
        trained += time.perf_counter() - started
        accuracies = [enas.score_on_whole_split(genotype) for genotype in scored]
        curve.append({"epoch": epoch, "steps": epoch * (data.info.train_size // 64),
                      "loss": round(loss, 3),
                      "accuracy": round(statistics.mean(accuracies), 3),
                      "train_s": round(trained, 1)})
    return curve


class OnePath:
    """`space`, except that sampling always gives `genotype` (the control: one path trains
    alone, no weights are shared between paths)."""

    def __init__(self, space, genotype) -> None:
        self.space, self.genotype = space, genotype

    def sample(self, rng: random.Random):
        return self.genotype

    def __getattr__(self, name: str):
        return getattr(self.space, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--paths", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fixed-topology-epochs", type=int, default=None,
                        help="the topology warm-up's epochs in its rows (default: a third)")
    parser.add_argument("--rows", nargs="+", default=["five", "five-topology", "ten",
                                                      "ten-topology", "control"])
    parser.add_argument("--row-epochs", nargs="+", default=[], metavar="ROW=N",
                        help="a row's own number of epochs (default: --epochs)")
    parser.add_argument("--micro-batch", type=int, default=16,
                        help="evaluator.micro_batch of the five-topology-micro row")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.dataset == "cifar" and not CIFAR.exists():
        sys.exit(f"bench/supernet_learning.py --dataset cifar needs {CIFAR} (the peers' data)")
    definitions, row_epochs = row_definitions(args), parse_row_epochs(args.row_epochs)
    if unknown := set(args.rows) - set(definitions):
        sys.exit(f"--rows: unknown {sorted(unknown)}; known: {list(definitions)}")
    if unknown := set(row_epochs) - set(args.rows):
        sys.exit(f"--row-epochs: {sorted(unknown)} not among --rows {args.rows}")
    set_threads(args.threads)
    load_before, started = load_average(), time.perf_counter()
    runs = {}
    for key in (key for key in definitions if key in args.rows):
        label, ops, paths, fixed, topology, micro, sampling = definitions[key]
        epochs = row_epochs.get(key, args.epochs)
        warmup = 0
        if topology:
            warmup = (epochs // 3 if args.fixed_topology_epochs is None
                      else min(args.fixed_topology_epochs, epochs))
            label = label.replace("topology warm-up", f"topology warm-up ({warmup} epochs)")
        if key in row_epochs:
            label += f", {epochs} epochs"
        runs[label] = learning_curve(args.dataset, ops, epochs, paths, fixed=fixed,
                                     fixed_topology_epochs=warmup, micro_batch=micro,
                                     path_sampling=sampling)
    result = {"machine": machine_info(), "command": command_line(), "dataset": args.dataset,
              "epochs": max(len(curve) for curve in runs.values()),
              "paths": args.paths, "threads": args.threads, "runs": runs,
              "seconds": round(time.perf_counter() - started, 1),
              "load_average": {"before": load_before, "after": load_average()}}
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        fair_only = all("fair" in key for key in args.rows)  # kept beside the uniform table
        write_section(f"{SECTION}, {args.dataset}" + (", fair paths" if fair_only else ""),
                      markdown(result))


def parse_row_epochs(values: list[str]) -> dict[str, int]:
    """`ROW=N` arguments as {row: epochs}; exits with a one-line error on a bad one."""
    parsed = {}
    for value in values:
        row, _, epochs = value.partition("=")
        if not epochs.isdigit() or int(epochs) < 1:
            sys.exit(f"--row-epochs: {value!r} is not ROW=N with N a positive number of epochs")
        parsed[row] = int(epochs)
    return parsed


def row_definitions(args: argparse.Namespace) -> dict[str, tuple]:
    """Row key -> (label, ops, paths, fixed path, whether it has the topology warm-up,
    micro-batch, path sampling)."""
    return {
        "five": ("ENAS's five ops", ENAS_OPS, args.paths, False, False, None, "uniform"),
        "five-topology": ("five ops, topology warm-up", ENAS_OPS,
                          args.paths, False, True, None, "uniform"),
        "five-topology-micro": ("five ops, topology warm-up, "
                                f"micro-batches of {args.micro_batch}", ENAS_OPS, args.paths,
                                False, True, args.micro_batch, "uniform"),
        "five-fair": ("five ops, fair paths", ENAS_OPS, args.paths, False, False, None,
                      "fair"),
        "five-fair-topology": ("five ops, fair paths, topology warm-up",
                               ENAS_OPS, args.paths, False, True, None, "fair"),
        "ten": ("ten default ops", DEFAULT_OPS, args.paths, False, False, None, "uniform"),
        "ten-topology": ("ten ops, topology warm-up", DEFAULT_OPS,
                         args.paths, False, True, None, "uniform"),
        "ten-fair": ("ten ops, fair paths", DEFAULT_OPS, args.paths, False, False, None, "fair"),
        "ten-fair-topology": ("ten ops, fair paths, topology warm-up",
                              DEFAULT_OPS, args.paths, False, True, None, "fair"),
        "control": ("one fixed ten-op path (control)", DEFAULT_OPS, 1, True, False, None,
                    "uniform"),
    }


def markdown(result: dict) -> str:
    runs, load = result["runs"], result["load_average"]
    names = list(runs)
    headers = ["epoch"] + [f"{name}: loss / accuracy" for name in names]
    rows = [[epoch + 1] + [f"{runs[name][epoch]['loss']} / {runs[name][epoch]['accuracy']}"
                           if epoch < len(runs[name]) else "" for name in names]
            for epoch in range(result["epochs"])]
    rows.append(["train s"] + [runs[name][-1]["train_s"] for name in names])
    return "\n".join([
        f"Run on {today()} with `{result['command']}` ({result['seconds']:.0f} s in all), "
        f"on {cpu_text(result['machine'])}, "
        f"{result['threads']} torch thread(s), load average before {load['before']}, after "
        f"{load['after']}. {result['runs'][next(iter(result['runs']))][0]['steps']} minibatches "
        f"per epoch. Supernet of width 16, {DATASETS[result['dataset']][1]} cell(s) per "
        "stage, batch 64, Adam 1e-2 warmed up over 3 epochs and cosine-annealed, a uniformly "
        "sampled path per minibatch unless the row says otherwise. Loss: the epoch's mean "
        "training loss; accuracy: the mean "
        f"over {result['paths']} fixed random paths of each one's accuracy on the whole "
        "validation split under the shared weights (the control: its one path); train s: "
        "seconds of supernet training in all. Topology warm-up: in its first epochs the "
        "paths keep one genotype's inputs and draw only their ops. Fair paths "
        "(`evaluator.path_sampling: fair`): each minibatch trains as many paths as ops, which "
        "together use every op of every block once, and takes one step on their mean loss. "
        "A row named with its epochs had its own schedule, planned for those epochs.",
        "",
        markdown_table(headers, rows, align="l" + "r" * len(names)),
    ]) + "\n"


if __name__ == "__main__":
    main()
