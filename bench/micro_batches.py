"""Supernet training in micro-batches (`evaluator.micro_batch`): memory against step time.

Each variant trains the ENAS supernet of the peers' CIFAR configuration (`../shared/PEERS.md`:
CIFAR-10 subset with 1,000 images held out, batch 64, ENAS's five ops, 5 blocks, width 16, 8
cells) for one epoch of uniformly drawn paths (the same paths and batches in every variant),
through the engine's own `EnasEvaluator.train_epoch`, in a fresh process set up as the `nas`
command sets itself up (OpenMP waiting, allocator, triton). Each process reports its seconds
per step, the epoch's mean loss and its peak resident memory (VmHWM: the whole process, torch
and the dataset included). Variants run interleaved, round after round; medians.

    .venv/bin/python bench/micro_batches.py [--micro-batches 32 16 8] [--rounds 3]
        [--threads 2] [--no-docs]

Prints one JSON object and rewrites the "Micro-batches" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
    today,
    write_section,
)

TITLE = "Micro-batches (bench/micro_batches.py)"
WHOLE = 0  # the variant without micro-batches


def child(micro_batch: int, threads: int) -> dict:
    """One epoch of supernet training with `micro_batch` (0: whole batches) in this process."""
    from nas.allocator import keep_freed_memory
    from nas.threads import prefer_passive_openmp

    prefer_passive_openmp()  # what the `nas` command does before torch loads
    keep_freed_memory()
    import torch

    from nas.config import parse_config
    from nas.enas import EnasEvaluator
    from nas.search import open_dataset
    from nas.without_triton import hide_triton_without_gpu

    hide_triton_without_gpu()
    torch.set_num_threads(threads)
    config = parse_config({
        "dataset": PEERS_CIFAR, "network": {"cells": 2, "channels": 16},
        "evaluator": {"name": "enas", "micro_batch": micro_batch or None},
    })
    evaluator = EnasEvaluator(config, open_dataset(config))
    steps = len(evaluator.data.train_loader(config.evaluator.batch_size, seed=0))
    built = status_mib("VmRSS")
    started = time.perf_counter()
    loss = evaluator.train_epoch(None, uniform=True)
    seconds = time.perf_counter() - started
    return {"step_s": seconds / steps, "loss": loss, "steps": steps,
            "peak_mib": status_mib("VmHWM"), "built_mib": built}


def status_mib(field: str) -> float:
    """A memory figure of this process (`VmRSS`, `VmHWM`) from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))
    return round(kib / 1024, 1)


def run_variant(micro_batch: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NAS_THREADS": str(threads)}
    result = subprocess.run([sys.executable, __file__, "--child", str(micro_batch),
                             "--threads", str(threads)], env=env, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro-batches", type=int, nargs="+", default=[32, 16, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads)))
        return
    if not CIFAR.exists():
        sys.exit(f"bench/micro_batches.py needs {CIFAR} (the peers' data)")
    before, started = load_average(), time.perf_counter()
    variants = [WHOLE, *args.micro_batches]
    runs: dict[int, list[dict]] = {variant: [] for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            runs[variant].append(run_variant(variant, args.threads))
    summary = {}
    for variant, samples in runs.items():
        summary[str(variant)] = {
            "step_s": round(statistics.median(run["step_s"] for run in samples), 4),
            "peak_mib": round(statistics.median(run["peak_mib"] for run in samples), 1),
            "built_mib": round(statistics.median(run["built_mib"] for run in samples), 1),
            "loss": samples[0]["loss"],
            # the median, over rounds, of this variant's step time over the whole batches' one
            "step_ratio": round(statistics.median(
                run["step_s"] / whole["step_s"]
                for run, whole in zip(samples, runs[WHOLE], strict=True)), 3),
        }
    result = {"command": command_line(), "machine": machine_info(), "threads": args.threads,
              "rounds": args.rounds, "steps": runs[WHOLE][0]["steps"], "variants": summary,
              "runs": {str(variant): samples for variant, samples in runs.items()},
              "seconds": round(time.perf_counter() - started, 1),
              "load_average": {"before": before, "after": load_average()}}
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(TITLE, markdown(result))


def markdown(result: dict) -> str:
    load = result["load_average"]
    rows = [["whole batches of 64" if variant == str(WHOLE) else f"micro-batches of {variant}",
             f"{row['built_mib']:,.0f}", f"{row['peak_mib']:,.0f}", f"{row['step_s']:.3f}",
             f"x{row['step_ratio']:.2f}", f"{row['loss']:.3f}"]
            for variant, row in result["variants"].items()]
    return "\n".join([
        f"Run on {today()} with `{result['command']}` ({result['seconds']:.0f} s in all), "
        f"on {cpu_text(result['machine'])}, "
        f"{result['threads']} torch thread(s), load average (1, 5, 15 min) before "
        f"{load['before']}, after {load['after']}. One epoch ({result['steps']} steps) of the "
        "ENAS supernet of the peers' CIFAR configuration (ENAS's five ops, width 16, 8 cells, "
        "batch 64, Adam) on uniformly drawn paths, the same paths and batches in every "
        "variant, through `EnasEvaluator.train_epoch` in a fresh process set up as `nas` "
        f"sets itself up; {result['rounds']} rounds, the variants interleaved; medians. RSS "
        "before training: with torch, the engine, the dataset, the supernet and Adam. Peak: "
        "the process's VmHWM (torch, the engine and the dataset included). Step vs whole: "
        "the median over rounds of the ratio to the same round's whole-batch step. Loss: "
        "the epoch's mean training loss (batch norm computes its statistics per micro-batch).",
        "",
        markdown_table(["training", "RSS before training (MiB)", "peak RSS (MiB)", "s / step",
                        "step vs whole", "epoch loss"], rows, align="lrrrrr"),
    ]) + "\n"


if __name__ == "__main__":
    main()
