"""Ray workers: candidates per minute with 1 and 2 workers, and Ray's overhead per candidate.

Scaling: the same seeded random genotypes (NASNet cells of 2 blocks, 8 channels, 1 cell per
stage) are trained for `--epochs` epochs on digits by `RayEvaluator` with `max_concurrent` 1,
then 2 (each trial 1 CPU, torch 1 thread), alternating 1, 2, 2, 1, ... for `--rounds` rounds,
each a new evaluator as a new search would start one (its trial actors' start-up included);
reported: the median candidates per minute of each and the ratio (target: 1.8x on 2 cores).

Overhead: tiny candidates (4 channels, 1 epoch, 200 images) trained one at a time in-process by
`StandaloneEvaluator` and by `RayEvaluator` with one worker; the difference of the seconds per
candidate is what Ray (the trial actor's start, shared by all candidates of a search, Tune's
trial bookkeeping, shipping results and metrics) adds to each.

    .venv/bin/python bench/ray_scaling.py [--candidates 12] [--rounds 2] [--no-docs]

Prints one JSON object on stdout and rewrites the "Ray workers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

import ray
from _common import (
    command_line,
    load_average,
    machine_info,
    markdown_table,
    set_threads,
    today,
    write_section,
)

from nas.config import SearchConfig, parse_config
from nas.evaluators import StandaloneEvaluator
from nas.search import open_dataset
from nas.strategies import create
from workers.ray_evaluator import RayEvaluator

TITLE = "Ray workers (bench/ray_scaling.py)"


def search_config(workers: int, channels: int, epochs: int, limit: int) -> SearchConfig:
    return parse_config({
        "seed": 0, "dataset": {"name": "digits", "limit": limit},
        "evaluator": {"epochs": epochs, "batch_size": 32},
        "network": {"cells": 1, "channels": channels}, "space": {"blocks": 2},
        "workers": {"max_concurrent": workers, "cpus_per_trial": 1},
    })


def genotypes(config: SearchConfig, count: int) -> list:
    return create("random", config.space.build(), seed=0).ask(count)


def time_ray(config: SearchConfig, candidates: list, rounds: int) -> list[float]:
    """Seconds for a new `RayEvaluator` (a new search) to train every candidate, `rounds` times:
    the trial actors' start (a process importing torch) is part of what a search pays."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        evaluator = RayEvaluator(config, open_dataset(config))
        try:
            results = evaluator.evaluate(candidates)
        finally:
            evaluator.close()
        timings.append(time.perf_counter() - started)
        failed = [result.error for result in results if result.state != "COMPLETE"]
        if failed:
            raise RuntimeError(f"candidates failed: {failed}")
    return timings


def time_in_process(config: SearchConfig, candidates: list) -> float:
    evaluator = StandaloneEvaluator(config, open_dataset(config))
    started = time.perf_counter()
    for genotype in candidates:
        evaluator.evaluate_one(genotype)
    return time.perf_counter() - started


def measure_scaling(args: argparse.Namespace) -> dict:
    configs = {workers: search_config(workers, 8, args.epochs, args.limit) for workers in (1, 2)}
    candidates = genotypes(configs[1], args.candidates)
    per_minute: dict[int, list[float]] = {1: [], 2: []}
    for round_index in range(args.rounds):
        for workers in (1, 2) if round_index % 2 == 0 else (2, 1):
            [seconds] = time_ray(configs[workers], candidates, 1)
            per_minute[workers].append(len(candidates) / seconds * 60)
            print(f"scaling round {round_index + 1}: {workers} worker(s) "
                  f"{per_minute[workers][-1]:.1f}/min", file=sys.stderr, flush=True)
    medians = {workers: statistics.median(values) for workers, values in per_minute.items()}
    return {
        "candidates": len(candidates), "epochs": args.epochs, "limit": args.limit,
        "candidates_per_minute": {str(k): [round(v, 2) for v in vs]
                                  for k, vs in per_minute.items()},
        "median_per_minute": {str(k): round(v, 2) for k, v in medians.items()},
        "speedup": round(medians[2] / medians[1], 2),
    }


def measure_overhead(args: argparse.Namespace) -> dict:
    config = search_config(1, 4, 1, 200)
    candidates = genotypes(config, args.candidates)
    time_in_process(config, candidates[:1])  # warm-up: imports, first-touch allocations
    in_process = [time_in_process(config, candidates) / len(candidates)
                  for _ in range(args.rounds)]
    on_ray = [seconds / len(candidates) for seconds in time_ray(config, candidates, args.rounds)]
    in_process_s, on_ray_s = statistics.median(in_process), statistics.median(on_ray)
    return {
        "candidates": len(candidates),
        "in_process_s_per_candidate": round(in_process_s, 3),
        "ray_s_per_candidate": round(on_ray_s, 3),
        "overhead_s_per_candidate": round(on_ray_s - in_process_s, 3),
    }


def render(report: dict) -> str:
    scaling, overhead = report["scaling"], report["overhead"]
    load = report["load_average_before"], report["load_average_after"]
    rows = [[workers, scaling["median_per_minute"][workers],
             ", ".join(f"{value:.1f}" for value in scaling["candidates_per_minute"][workers])]
            for workers in ("1", "2")]
    lines = [
        f"{report['date']}, `{report['command']}`, {report['machine']['cpu_count']} cores, "
        f"torch {report['machine']['torch']}, Ray {report['ray']}; load average (1, 5, 15 min) "
        f"before {load[0]}, after {load[1]}.",
        "",
        f"Scaling: {scaling['candidates']} seeded random candidates (2 blocks, 8 channels, "
        f"{scaling['epochs']} epochs on {scaling['limit']} digits), each trial 1 CPU and 1 "
        f"torch thread, Ray started with 2 CPUs.",
        "",
        markdown_table(["workers", "candidates/min (median)", "each round"], rows, "rrl"),
        "",
        f"Speed-up with 2 workers: **x{scaling['speedup']:.2f}** (target x1.8).",
        "",
        f"Overhead on tiny candidates ({overhead['candidates']} of 4 channels, 1 epoch on 200 "
        f"digits, one at a time): in-process {overhead['in_process_s_per_candidate']:.3f} s per "
        f"candidate, on Ray {overhead['ray_s_per_candidate']:.3f} s: Ray adds "
        f"**{overhead['overhead_s_per_candidate']:.3f} s per candidate**.",
    ]
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--candidates", type=int, default=12, help="candidates per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of each measurement")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per scaling candidate")
    parser.add_argument("--limit", type=int, default=1000, help="digits images for scaling")
    parser.add_argument("--note", default="", help="a sentence added under the table")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.candidates, args.rounds, args.epochs) < 1:
        parser.error("--candidates, --rounds and --epochs must be >= 1")

    set_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    load_before = load_average()
    started = time.perf_counter()
    try:
        scaling = measure_scaling(args)
        overhead = measure_overhead(args)
    finally:
        ray.shutdown()
    report = {
        "benchmark": "ray_scaling", "date": today(),
        "command": shlex.join([*command_line().split(" ")[:2], *sys.argv[1:]]),
        "machine": machine_info(), "ray": ray.__version__,
        "load_average_before": load_before, "load_average_after": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
        "scaling": scaling, "overhead": overhead, "note": args.note,
    }
    if not args.no_docs:
        write_section(TITLE, render(report))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
