"""A whole ENAS search's memory, and its derived cell's latency next to the classics.

Runs `nas search --json` on the peers' CIFAR configuration (`../shared/PEERS.md`: CIFAR-10
subset with 1,000 images held out, batch 64, ENAS's five ops, 5 blocks, width 16, 8 cells)
as a child process: with the default objective; with `objective.latency_target_ms` set to
ResNet-20's batch-1 forward latency measured here first; the first once more with
`NAS_KEEP_TRITON=1` (triton loaded as before `nas.without_triton`: the memory baseline) and
once more for each `evaluator.micro_batch` of `--micro-batches` (default 16 and 8). While
each runs, the RSS of its whole process tree (`/proc`, every 0.2 s) is summed; its peak is the
search's footprint.

Then, in this process, each search's best cell (as `nas export` builds it: the search's
network settings) and resnet20 / mobilenet_v2 are measured with `nas.latency` (a batch-1
forward pass in the exported module's memory format, and a training step at batch 64 on the
memory format training uses), the networks interleaved over `--rounds` rounds; medians.

    .venv/bin/python bench/search_footprint.py [--search-seconds 240] [--threads 1]
        [--warmup-epochs 2] [--rounds 3] [--latency-weight -0.5] [--micro-batches 16 8]
        [--no-docs]

Prints one JSON object and rewrites the "Search footprint and latency" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (
    CIFAR,
    PEERS_CIFAR,
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

from nas.config import parse_config
from nas.latency import measure_latency
from searchspace.complexity import count_parameters
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork
from searchspace.zoo import create_network

SHAPE = (3, 32, 32)
BATCH = 64
SECTION = "Search footprint and latency (bench/search_footprint.py)"
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TRITON_BASELINE = "no target, NAS_KEEP_TRITON=1"


def search_config(seconds: float, warmup_epochs: int, latency_target_ms: float | None,
                  latency_weight: float, micro_batch: int | None = None) -> dict:
    config = {
        "name": "bench-footprint", "seed": 0,
        "dataset": PEERS_CIFAR,
        "network": {"cells": 2, "channels": 16},
        "evaluator": {"name": "enas", "warmup_epochs": warmup_epochs,
                      "micro_batch": micro_batch},
        "budget": {"architectures": 160, "seconds": seconds},
    }
    if latency_target_ms is not None:
        config["objective"] = {"latency_target_ms": latency_target_ms,
                               "latency_weight": latency_weight}
    return config


def tree_rss_mib(root: int) -> float:
    """The summed resident memory of `root` and all its descendants."""
    parents: dict[int, int] = {}
    resident: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        resident[pid] = pages
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(resident.get(pid, 0) for pid in tree) * PAGE_KIB / 1024


def run_search(config: dict, threads: int, workdir: Path, name: str,
               environment: dict[str, str]) -> dict:
    """`nas search --json` in a child process; its summary, wall time and peak tree RSS."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "NAS_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "NAS_HOME": str(workdir / "home"), **environment}
    env.pop("NAS_DATABASE_URL", None)  # the search's own SQLite file under NAS_HOME
    started = time.perf_counter()
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "nas"), "search", "-c", str(path),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=workdir)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mib(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"nas search failed ({process.returncode}):\n{err[-3000:]}")
    summary = json.loads(out)
    return {"summary": summary, "wall_s": round(time.perf_counter() - started, 1),
            "peak_tree_rss_mib": round(peak, 1)}


def latencies(networks: dict, rounds: int) -> dict:
    """Median forward (batch 1) and training-step (batch 64) milliseconds per network."""
    forward: dict[str, list[float]] = {name: [] for name in networks}
    step: dict[str, list[float]] = {name: [] for name in networks}
    for _ in range(rounds):
        for name, network in networks.items():
            measured = measure_latency(network, SHAPE, batch_size=BATCH, num_classes=10)
            forward[name].append(measured.forward_ms)
            step[name].append(measured.train_step_ms)
    return {name: {"forward_ms": round(statistics.median(forward[name]), 2),
                   "train_step_ms": round(statistics.median(step[name]), 1),
                   "params": count_parameters(network)}
            for name, network in networks.items()}


def classics() -> dict:
    return {name: create_network(name, num_classes=10, input_size=32, in_channels=3)
            for name in ("resnet20", "mobilenet_v2")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-seconds", type=float, default=240)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each search and of the latency measurements")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--latency-weight", type=float, default=-0.5,
                        help="objective.latency_weight of the targeted search")
    parser.add_argument("--micro-batches", type=int, nargs="*", default=[16, 8],
                        help="evaluator.micro_batch of one more untargeted search each")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not CIFAR.exists():
        sys.exit(f"bench/search_footprint.py needs {CIFAR} (the peers' data)")
    set_threads(args.threads)
    load_before = load_average()
    started = time.perf_counter()
    target = latencies({"resnet20": classics()["resnet20"]}, args.rounds)["resnet20"]
    searches = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("no target", None, {}, None),
                    (TRITON_BASELINE, None, {"NAS_KEEP_TRITON": "1"}, None),
                    ("latency target", target["forward_ms"], {}, None)]
        variants += [(f"no target, micro-batches of {micro_batch}", None, {}, micro_batch)
                     for micro_batch in args.micro_batches]
        for label, latency_target, environment, micro_batch in variants:
            config = search_config(args.search_seconds, args.warmup_epochs, latency_target,
                                   args.latency_weight, micro_batch)
            searches[label] = run_search(config, args.threads, Path(tmp),
                                         f"search-{len(searches)}", environment)
            searches[label]["latency_target_ms"] = latency_target
    networks = {f"derived best, {label}": CellNetwork(  # the layout the search exports
        Genotype.from_dict(run["summary"]["best_genotype"]), num_classes=10, cells=2,
        channels=16, reduce_inputs=True)
        for label, run in searches.items() if label in ("no target", "latency target")}
    measured = latencies({**networks, **classics()}, args.rounds)
    result = {"machine": machine_info(), "threads": args.threads, "rounds": args.rounds,
              "latency_weight": args.latency_weight, "command": command_line(),
              "search_seconds": args.search_seconds, "micro_batches": args.micro_batches,
              "warmup_epochs": args.warmup_epochs, "resnet20_target": target,
              "scoring": protocol_text(parse_config(search_config(
                  args.search_seconds, args.warmup_epochs, None, 0.0)).evaluator.model_dump()),
              "searches": searches, "latency": measured,
              "seconds": round(time.perf_counter() - started, 1),
              "load_average": {"before": load_before, "after": load_average()}}
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(SECTION, markdown(result))


def markdown(result: dict) -> str:
    searches, measured = result["searches"], result["latency"]
    load = result["load_average"]
    lines = [
        f"Run on {today()} with `{result['command']}` ({result['seconds']:.0f} s in all), "
        f"on {cpu_text(result['machine'])}, "
        f"{result['threads']} torch thread(s), load average (1, 5, 15 min) before "
        f"{load['before']}, after {load['after']}. `nas search` runs of the peers' CIFAR "
        f"configuration (ENAS's five ops, width 16, 8 cells, {result['warmup_epochs']} warm-up "
        f"epochs, at most 160 candidates, {result['search_seconds']:.0f} s budget): one with "
        "the default objective; one with `objective.latency_target_ms` = ResNet-20's "
        "batch-1 forward latency "
        f"measured first ({result['resnet20_target']['forward_ms']} ms) and "
        f"`latency_weight` {result['latency_weight']}; the first again with "
        "`NAS_KEEP_TRITON=1`, which loads triton as `nas` did before it kept triton out of "
        "processes without a GPU (`nas.without_triton`): the memory baseline" + (
            "; and the first again in micro-batches of "
            f"{' and of '.join(str(size) for size in result['micro_batches'])} "
            "(`evaluator.micro_batch`)." if result.get("micro_batches") else "."),
        "",
        "**Whole search**: peak of the summed RSS of the `nas search` process tree (sampled "
        "every 0.2 s):",
        "",
        markdown_table(
            ["search", "wall s", "candidates scored", "peak RSS (MiB)", "best reward",
             "best params", "best forward ms", "ranking tau (95% interval)"],
            [[label, run["wall_s"], run["summary"]["architectures"],
              f"{run['peak_tree_rss_mib']:.0f}",
              round(run["summary"]["best_reward"], 3),
              f"{run['summary']['best_params']:,}", run["summary"].get("best_latency_ms"),
              ranking_text(run["summary"].get("ranking"))]
             for label, run in searches.items()]),
        "",
        "Best forward ms: the search's own measurement of its best derived network, with the "
        "supernet's weights, in the search process (batch 1, one thread). Ranking tau: "
        "Kendall's tau between derivation's candidates' scores as the search scores a "
        f"candidate ({result['scoring']}) and "
        "their whole-split accuracies, as `nas show` reports it. What a latency target does "
        "to a whole default search: section \"Searched cell vs classics\"." + (
            " No candidate was scored before derivation: after the warm-up, the time reserved "
            "for derivation (its candidates scored on the whole validation split) took the rest "
            "of the budget, so the best cell was chosen by derivation's ranking alone."
            if any(run["summary"]["architectures"] == 0 for run in searches.values()) else "")
        + triton_text(searches),
        "",
        f"**Latency** (medians of {result['rounds']} interleaved rounds; forward: batch 1, "
        "contiguous, eval mode, one thread; training step: SGD at batch 64; each network freshly "
        "initialised in this process):",
        "",
        markdown_table(
            ["network", "params", "forward ms (batch 1)", "training step ms (batch 64)",
             "step vs resnet20"],
            [[name, f"{row['params']:,}", row["forward_ms"], row["train_step_ms"],
              f"x{row['train_step_ms'] / measured['resnet20']['train_step_ms']:.2f}"]
             for name, row in measured.items()]),
    ]
    return "\n".join(lines) + "\n"


def triton_text(searches: dict) -> str:
    if TRITON_BASELINE not in searches:
        return ""
    kept = searches[TRITON_BASELINE]["peak_tree_rss_mib"]
    hidden = searches["no target"]["peak_tree_rss_mib"]
    return (f" Triton kept out of the search process: peak {kept:.0f} -> {hidden:.0f} MiB "
            f"({hidden - kept:+.0f} MiB).")


def ranking_text(ranking: dict | None) -> str:
    if not ranking or ranking["kendall_tau"] is None:
        return "-"
    return (f"{ranking['kendall_tau']:.2f} ({ranking['low']:.2f} to {ranking['high']:.2f}), "
            f"{ranking['candidates']} candidates")


if __name__ == "__main__":
    sys.exit(main())
