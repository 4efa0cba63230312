"""Searched cell vs classics: does the default search on the CIFAR subset find a cell that
beats random cells and the classic networks when all are trained with one recipe?

1. the default-config ENAS search on the CIFAR-10 subset (`nas search` with only the dataset
   named: its defaults for everything else), run once per set of defaults and kept in
   `--cache` under a digest of them (a change of a default runs a new search); and the same
   search with a latency target (`objective.latency_target_ms`: ResNet-20's batch-1 forward
   latency measured here first) for each `latency_weight` of `--latency-weights`, kept alike;
2. their best derived cells, `--random-cells` uniformly sampled cells of the same space,
   resnet20 and mobilenet_v2, each trained from scratch with one recipe (the cells as 3 stages of
   `--cells` normal cells of width 16 in the layout `nas export` writes: close to ResNet-20's
   parameters) for `--epochs` epochs of SGD (batch 64, lr 0.05, cosine, crop and flip) with
   each of `--seeds` seeds, on the search's train split; accuracy on its held-out split;
3. the latency of each of those networks, measured in this process, the networks interleaved
   over `--rounds` rounds (`nas.latency`: a batch-1 forward pass on one thread, a training step
   at batch 64): one CPU, so their ratios hold where the trainings ran on different ones.

Each (network, seed) result is kept in a file of its own under `--cache` (a cell's file names
its genotype, so a new searched cell is trained anew): the benchmark stops
after `--budget-seconds` (between trainings) and resumes where it stopped, so its hours of CPU
can be spent across several runs; `--device cuda` trains on a GPU where there is one.

    .venv/bin/python bench/classics.py [--epochs 30] [--seeds 2] [--random-cells 3]
        [--cells 2] [--threads 2] [--device cpu] [--budget-seconds S] [--cache DIR]
        [--latency-weights -0.07 -0.5] [--rounds 3] [--no-docs]

Prints one JSON object and, once every training has a result, rewrites the "Searched cell
vs classics" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import (
    CIFAR,
    ROOT,
    command_line,
    cpu_text,
    load_average,
    machine_info,
    markdown_table,
    protocol_text,
    set_threads,
    today,
    write_section,
)

from nas.config import SearchConfig, parse_config
from nas.latency import measure_latency
from nas.search import create_search, open_dataset, run_search
from nas.store import Store
from nas.train import TrainConfig, train_model
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork
from searchspace.zoo import create_network

SECTION = "Searched cell vs classics (bench/classics.py)"
CLASSICS = ("resnet20", "mobilenet_v2")
LATENCY_REFERENCE = "resnet20"  # whose forward latency the targeted search aims at
SEARCHED, TARGETED = "searched cell", "searched cell, latency target"


def targeted_label(weight: float) -> str:
    return f"{TARGETED}, weight {weight:g}"


def default_search_config(latency: tuple[float, float] | None = None) -> SearchConfig:
    """What `nas search --dataset cifar10 --data-path <subset>` runs: every other default; with
    `latency` (target ms, weight), an objective that targets that forward latency."""
    raw: dict = {"name": "bench-classics", "dataset": {"name": "cifar10", "path": str(CIFAR)}}
    if latency is not None:
        raw["objective"] = {"latency_target_ms": latency[0], "latency_weight": latency[1]}
    return parse_config(raw)


def defaults_digest(config: SearchConfig) -> tuple[dict, str]:
    """The search's settings less the dataset's location, and a digest of them: a search kept
    in the cache stands for the default search only while its defaults are still the defaults.
    A latency target counts as ResNet-20's latency, whatever it measured on the search's CPU."""
    settings = config.model_dump(mode="json")
    settings["dataset"].pop("path")
    keyed = json.loads(json.dumps(settings))
    if keyed["objective"]["latency_target_ms"] is not None:
        keyed["objective"]["latency_target_ms"] = LATENCY_REFERENCE
    text = json.dumps(keyed, sort_keys=True)
    return settings, hashlib.sha256(text.encode()).hexdigest()[:12]


def targeted_cell(cache: Path, weight: float, info) -> dict:
    """The best derived cell of the default search with a latency target: ResNet-20's forward
    latency, measured here before the search is run (once, then kept in `cache`)."""
    _, digest = defaults_digest(default_search_config((1.0, weight)))
    path = cache / f"search-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())
    reference = build(LATENCY_REFERENCE, 0, info)
    shape = (info.in_channels, info.input_size, info.input_size)
    target = round(statistics.median(measure_latency(reference, shape).forward_ms
                                     for _ in range(3)), 3)
    return searched_cell(default_search_config((target, weight)), cache)


def searched_cell(config: SearchConfig, cache: Path) -> dict:
    """The best derived cell of the default search (run once per set of defaults, kept in
    `cache`)."""
    settings, digest = defaults_digest(config)
    path = cache / f"search-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home, Store(f"sqlite:///{home}/search.db") as store:
        record = run_search(store, create_search(store, config).id)
        best = store.architectures(record.id, role="derived", order="reward")[0]
        found = {"search_id": record.id, "status": str(record.status),
                 "seconds": round(time.perf_counter() - started, 1),
                 "candidates": store.count_architectures(record.id, role="candidate"),
                 "cpu": cpu_text(machine_info()),
                 "genotype": best.genotype.to_dict(), "reward": best.reward,
                 "date": today(), "settings": settings}
    path.write_text(json.dumps(found))
    return found


def contenders(config: SearchConfig, searched: dict, targeted: dict[float, dict],
               random_cells: int) -> dict[str, Genotype | str]:
    space = config.space.build()
    rows: dict[str, Genotype | str] = {SEARCHED: Genotype.from_dict(searched["genotype"])}
    rows |= {targeted_label(weight): Genotype.from_dict(search["genotype"])
             for weight, search in targeted.items()}
    rows |= {f"random cell {index}": space.sample(random.Random(f"classics-random-{index}"))
             for index in range(random_cells)}
    return rows | {name: name for name in CLASSICS}


def build(contender: Genotype | str, cells: int, info) -> torch.nn.Module:
    if isinstance(contender, str):
        return create_network(contender, num_classes=info.num_classes,
                              input_size=info.input_size, in_channels=info.in_channels)
    return CellNetwork(contender, num_classes=info.num_classes, in_channels=info.in_channels,
                       cells=cells, channels=16, reduce_inputs=True)


def result_file(cache: Path, label: str, contender: Genotype | str, seed: int, epochs: int,
                cells: int) -> Path:
    name = label.replace(" ", "-")
    if isinstance(contender, Genotype):
        name += f"-{contender.id}"
    return cache / "runs" / f"{name}-seed{seed}-{epochs}ep-{cells}cells.json"


def train_one(label: str, contender: Genotype | str, seed: int, args, data) -> dict:
    info = data.info
    torch.manual_seed(seed)
    network = build(contender, args.cells, info)
    shape = (info.in_channels, info.input_size, info.input_size)
    params, flops = count_parameters(network), count_flops(network, shape)
    recipe = TrainConfig(epochs=args.epochs, batch_size=64, learning_rate=0.05, seed=seed)
    result = train_model(network, data, recipe, device=torch.device(args.device))
    return {"network": label, "seed": seed, "accuracy": result.history[-1].val_accuracy,
            "params": params, "multiply_adds": flops,
            "seconds_per_epoch": round(result.seconds / args.epochs, 2),
            "device": args.device, "threads": torch.get_num_threads(),
            "cpu": cpu_text(machine_info()),
            "genotype": None if isinstance(contender, str) else contender.id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--random-cells", type=int, default=3)
    parser.add_argument("--cells", type=int, default=2, help="normal cells per stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="start no training after this many seconds")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "results" / "classics",
                        help="kept between runs (committed: the hours of training outlive a "
                        "session's machine)")
    parser.add_argument("--latency-weights", type=float, nargs="*", default=[-0.07, -0.5],
                        help="objective.latency_weight of each latency-targeted search (-0.07: "
                        "the product's default, MnasNet's soft constraint)")
    parser.add_argument("--rounds", type=int, default=3, help="of the latency measurements")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not CIFAR.exists():
        sys.exit(f"bench/classics.py needs {CIFAR} (the peers' data)")
    set_threads(args.threads)
    before, started = load_average(), time.perf_counter()
    config = default_search_config()
    searched = searched_cell(config, args.cache)
    data = open_dataset(config)
    targeted = {weight: targeted_cell(args.cache, weight, data.info)
                for weight in args.latency_weights}
    networks = contenders(config, searched, targeted, args.random_cells)
    runs = []
    for seed in range(args.seeds):  # every network's first seed before any second one
        for label, contender in networks.items():
            path = result_file(args.cache, label, contender, seed, args.epochs, args.cells)
            if not path.exists():
                if (args.budget_seconds is not None
                        and time.perf_counter() - started > args.budget_seconds):
                    continue
                row = train_one(label, contender, seed, args, data)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(row))
                print(json.dumps(row), file=sys.stderr, flush=True)
            runs.append(json.loads(path.read_text()))
    expected = args.seeds * len(networks)
    complete = len(runs) == expected
    result = {"machine": machine_info(), "command": command_line(), "date": today(),
              "search": searched, "targeted_searches": list(targeted.values()), "runs": runs,
              "complete": complete, "expected_runs": expected,
              "latency": latencies(networks, args, data.info) if complete else None,
              "threads": args.threads, "rounds": args.rounds,
              "load_average": {"before": before, "after": load_average()}}
    print(json.dumps(result, indent=2))
    if result["complete"] and not args.no_docs:
        write_section(SECTION, render(result, args))


def latencies(networks: dict[str, Genotype | str], args, info) -> dict:
    """Median batch-1 forward and batch-64 training-step milliseconds of each network, built
    as it was trained, the networks interleaved over `args.rounds` rounds in this process."""
    built = {label: build(contender, args.cells, info) for label, contender in networks.items()}
    shape = (info.in_channels, info.input_size, info.input_size)
    measured: dict[str, list] = {label: [] for label in built}
    for _ in range(args.rounds):
        for label, network in built.items():
            measured[label].append(measure_latency(network, shape, batch_size=64,
                                                   num_classes=info.num_classes))
    return {label: {"forward_ms": round(statistics.median(m.forward_ms for m in rows), 2),
                    "train_step_ms": round(statistics.median(m.train_step_ms for m in rows), 1)}
            for label, rows in measured.items()}


def render(result: dict, args: argparse.Namespace) -> str:
    by_network: dict[str, list[dict]] = {}
    for row in result["runs"]:
        by_network.setdefault(row["network"], []).append(row)
    rows = []
    for network, seeds in by_network.items():
        accuracies = [row["accuracy"] for row in sorted(seeds, key=lambda row: row["seed"])]
        rows.append([network, f"{statistics.mean(accuracies):.3f}",
                     ", ".join(f"{value:.3f}" for value in accuracies),
                     f"{seeds[0]['params']:,}", f"{seeds[0]['multiply_adds']:,}",
                     f"{statistics.median(row['seconds_per_epoch'] for row in seeds):.1f}",
                     seeds[0]["device"],
                     ", ".join(sorted({row.get("cpu", "CPU not recorded") for row in seeds}))])
    search = result["search"]
    return "\n".join([
        f"Run on {result['date']} with `{result['command']}` (its trainings may come from "
        "several runs: each is kept under --cache). The search: `nas search` on the CIFAR-10 "
        f"subset with every default of {search['date']} ({defaults_text(search['settings'])}; "
        f"{search_text(search)}). " + targeted_text(result["targeted_searches"]) + "Every "
        "network trained from scratch with one recipe: "
        f"{args.epochs} epochs of SGD (batch 64, lr 0.05, cosine, crop and flip), seeds "
        f"0-{args.seeds - 1}; cells as 3 stages of {args.cells} normal cells of width 16 in the "
        "exported layout; accuracy on the search's held-out split. Seconds per epoch depend "
        "on the CPU each training ran on (its column): machines of one kind differ.",
        "",
        markdown_table(["network", "mean accuracy", "per seed", "params", "multiply-adds",
                        "s / epoch", "device", "CPU"], rows, align="lrrrrrll"),
        "",
        *latency_lines(result),
        verdict(by_network, result.get("latency")),
    ])


def search_text(search: dict) -> str:
    return (f"{search['candidates']} candidates, {search['seconds']:.0f} s on {search['cpu']}, "
            f"status {search['status']}")


def targeted_text(searches: list[dict]) -> str:
    return "".join(
        f"A latency-targeted search: the same with `objective.latency_target_ms` "
        f"{search['settings']['objective']['latency_target_ms']} (ResNet-20's batch-1 forward "
        "latency, measured first on the search's CPU) and `latency_weight` "
        f"{search['settings']['objective']['latency_weight']:g} "
        f"(run {search['date']}; {search_text(search)}). " for search in searches)


def latency_lines(result: dict) -> list[str]:
    """The latency table: every network of the table above, measured in one process."""
    measured = result.get("latency")
    if not measured:
        return []
    params = {row["network"]: row["params"] for row in result["runs"]}
    reference = measured[LATENCY_REFERENCE]
    rows = [[name, f"{params[name]:,}", row["forward_ms"],
             f"x{row['forward_ms'] / reference['forward_ms']:.2f}", row["train_step_ms"],
             f"x{row['train_step_ms'] / reference['train_step_ms']:.2f}"]
            for name, row in measured.items()]
    return [
        f"Latency on {cpu_text(result['machine'])}, every network measured in this run's "
        "process as it was trained (forward: batch 1, one thread, eval mode, the exported "
        f"module's layout; training step: SGD at batch 64, {result['threads']} threads, the "
        f"layout training picks; medians of {result['rounds']} interleaved rounds), against "
        "ResNet-20:",
        "",
        markdown_table(["network", "params", "forward ms (batch 1)", "forward vs resnet20",
                        "training step ms (batch 64)", "step vs resnet20"], rows,
                       align="lrrrrr"),
        "",
    ]


def defaults_text(settings: dict) -> str:
    """The defaults that shape what the search finds, as a reader knows them."""
    evaluator, strategy = settings["evaluator"], settings["strategy"]
    return (f"{strategy['name']} over {len(settings['space']['ops'])} ops, "
            f"{evaluator['name']} scoring each candidate on {protocol_text(evaluator)}")


def verdict(by_network: dict[str, list[dict]], latency: dict | None) -> str:
    """The searched cell against the median random cell and each classic, from the rows; the
    latency-targeted searches' cells against both."""
    def mean(network: str) -> float:
        return statistics.mean(row["accuracy"] for row in by_network[network])

    def step_ratio(network: str, name: str) -> float:
        return latency[network]["train_step_ms"] / latency[name]["train_step_ms"]

    def time_against(name: str) -> str:  # from one process: the trainings' CPUs may differ
        if not latency:
            return "not timed in one process"
        return f"the searched cell's training step is x{step_ratio(SEARCHED, name):.2f} {name}'s"

    searched = mean(SEARCHED)
    randoms = [mean(name) for name in by_network if name.startswith("random cell")]
    ranked = sorted(by_network, key=mean, reverse=True)
    spread = {name: max(row["accuracy"] for row in rows) - min(row["accuracy"] for row in rows)
              for name, rows in by_network.items()}
    widest = max(spread, key=spread.get)
    against = [f"the median random cell {statistics.median(randoms):.3f} "
               f"({searched - statistics.median(randoms):+.3f})"]
    against += [f"{name} {mean(name):.3f} ({searched - mean(name):+.3f}; "
                + time_against(name) + ")" for name in CLASSICS if name in by_network]
    text = (f"The searched cell's mean accuracy, {searched:.3f}, ranks "
            f"{ranked.index(SEARCHED) + 1} of {len(ranked)}. Against it: "
            + "; ".join(against) + ". Seeds move a network by up to "
            f"{spread[widest]:.3f} ({widest}).")
    reference = LATENCY_REFERENCE
    for label in by_network:
        if not label.startswith(TARGETED) or not latency:
            continue
        targeted = mean(label)
        forward = latency[label]["forward_ms"] / latency[reference]["forward_ms"]
        text += (f" With a latency target ({label.rsplit(', ', 1)[1]}) the search's cell "
                 f"reaches {targeted:.3f} ({targeted - searched:+.3f} against the searched "
                 f"cell, {targeted - mean(reference):+.3f} against resnet20), and its training "
                 f"step takes x{step_ratio(label, reference):.2f} ResNet-20's (the searched "
                 f"cell's: x{step_ratio(SEARCHED, reference):.2f}), its batch-1 forward pass "
                 f"x{forward:.2f}.")
    return text


if __name__ == "__main__":
    main()
