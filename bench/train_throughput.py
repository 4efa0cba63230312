"""Training throughput on the CPU: images/s of resnet20, mobilenet_v2 and a NASNet-A cell network.

Each model takes training steps of the kind `nas/train.py` takes (forward, cross-entropy,
backward, gradient clipping, SGD with Nesterov momentum and weight decay) at batch 64 on random
3x32x32 images, once in the default memory format and once with `channels_last` (model and
input). The two variants are separate copies of the same initial weights; after a few warm-up
steps each, they alternate step by step (A B, then B A, ...) so that other load on the machine
affects both alike. Reported: the median step time and images/s of each, and the speed-up
default / channels_last as the median of the per-round ratios (each round's two steps ran back
to back, so the ratio holds up under load that comes and goes better than a ratio of medians,
which is reported too as `speedup_of_medians`, with `speedup_of_best`, the ratio of the two
fastest steps, the ones least touched by other work).

The NASNet-A network (searchspace.references.NASNET_A, CIFAR stem, 2 cells per stage) gets the
channel count whose parameter count is closest to resnet20's, so the three rows compare a
hand-designed residual net, a mobile net and a searched cell at (for two of them) equal size.

    .venv/bin/python bench/train_throughput.py [--steps 15] [--max-seconds 200] [--no-docs]

Prints one JSON object on stdout and rewrites the "Training throughput" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _common import (
    command_line,
    load_average,
    machine_info,
    markdown_table,
    set_threads,
    summarize,
    today,
    write_section,
)
from torch import nn

from nas.memory_format import use_channels_last
from searchspace.complexity import count_flops, count_parameters
from searchspace.network import CellNetwork
from searchspace.references import NASNET_A
from searchspace.zoo import create_network

TITLE = "Training throughput (bench/train_throughput.py)"
MODELS = ("resnet20", "mobilenet_v2", "nasnet_a")
VARIANTS = ("default", "channels_last")
NUM_CLASSES, INPUT_SIZE, IN_CHANNELS = 10, 32, 3
NASNET_CELLS = 2
# The loop's defaults (nas.train.TrainConfig), repeated so the benchmark does not import the loop.
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP = 0.05, 0.9, 3e-4, 5.0
# PEERS.md, "The floor": a random-cell child of width 16, 8 cells, batch 64, Adam, 2 threads.
MIN_ROUNDS = 5  # rounds every model gets, however long they take
PEER_CHILD_STEP = {"default": (0.46, 0.50), "channels_last": (0.29, 0.29)}


def nasnet_channels_for(target_params: int, cells: int = NASNET_CELLS) -> int:
    """The even channel count whose NASNet-A network has the parameter count nearest the target."""
    best, best_gap = 2, None
    for channels in range(4, 65, 2):
        model = CellNetwork(NASNET_A, num_classes=NUM_CLASSES, cells=cells, channels=channels)
        gap = abs(count_parameters(model) - target_params)
        if best_gap is not None and gap > best_gap:
            break  # the count grows with the channels: past the nearest one
        best, best_gap = channels, gap
    return best


def build(name: str, target_params: int) -> tuple[nn.Module, dict]:
    if name == "nasnet_a":
        channels = nasnet_channels_for(target_params)
        model = CellNetwork(
            NASNET_A, num_classes=NUM_CLASSES, cells=NASNET_CELLS, channels=channels,
            in_channels=IN_CHANNELS,
        )
        return model, {"cells": NASNET_CELLS, "channels": channels}
    return create_network(name, NUM_CLASSES, INPUT_SIZE, IN_CHANNELS), {}


def make_step(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> Callable[[], float]:
    """A closure that takes one training step and returns its loss."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True,
        weight_decay=WEIGHT_DECAY,
    )
    model.train()

    def step() -> float:
        output = model(images)
        logits = output[0] if isinstance(output, tuple) else output
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        return loss.item()

    return step


def measure(
    name: str, target_params: int, batch_size: int, warmup: int, steps: int,
    budget_s: float = float("inf"),
) -> dict:
    """Time `steps` rounds of the two variants of model `name`.

    Past `budget_s` seconds for this model (on a machine busy with other work) it stops early,
    after at least MIN_ROUNDS rounds, and says so in `rounds` and `stopped_by_budget`.
    """
    started_model = time.perf_counter()
    torch.manual_seed(0)
    model, extra = build(name, target_params)
    params = count_parameters(model)
    multiply_adds = count_flops(model, (IN_CHANNELS, INPUT_SIZE, INPUT_SIZE))
    images = torch.randn(batch_size, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,))
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    runners = {
        "default": make_step(model, images, labels),
        "channels_last": make_step(
            last, images.contiguous(memory_format=torch.channels_last), labels
        ),
    }
    for variant in VARIANTS:
        for _ in range(warmup):
            runners[variant]()
    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_index in range(steps):
        over_budget = time.perf_counter() - started_model > budget_s
        if over_budget and round_index >= min(steps, MIN_ROUNDS):
            break
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            started = time.perf_counter()
            runners[variant]()
            seconds[variant].append(time.perf_counter() - started)
    result = {"model": name, "params": params, "multiply_adds": multiply_adds, **extra,
              "batch_size": batch_size, "rounds": len(seconds["default"]),
              "stopped_by_budget": len(seconds["default"]) < steps}
    for variant in VARIANTS:
        stats = summarize(seconds[variant])
        stats["images_per_s"] = batch_size / stats["median_s"]
        result[variant] = stats
    # Paired: each round's two steps ran back to back, so their ratio shares that moment's load.
    ratios = [a / b for a, b in zip(seconds["default"], seconds["channels_last"], strict=True)]
    result["channels_last_speedup"] = statistics.median(ratios)
    result["speedup_of_medians"] = (
        result["default"]["median_s"] / result["channels_last"]["median_s"]
    )
    # The fastest steps are the ones least touched by other work: a check on the median ratio.
    result["speedup_of_best"] = result["default"]["min_s"] / result["channels_last"]["min_s"]
    result["step_seconds"] = {v: [round(t, 4) for t in seconds[v]] for v in VARIANTS}
    return result


def _steps_text(report: dict, steps: int) -> str:
    rounds = sorted({r["rounds"] for r in report["results"]})
    if rounds == [steps]:
        return str(steps)
    return f"{'-'.join(str(n) for n in (rounds[0], rounds[-1]) if n)} (of {steps}: time budget)"


def _load_text(load: list[float] | None) -> str:
    return "unknown" if load is None else " / ".join(f"{value:.2f}" for value in load)


def _range(low: float, high: float) -> str:
    return f"{low:.2f} s" if low == high else f"{low:.2f}-{high:.2f} s"


def render(report: dict, args: argparse.Namespace) -> str:
    rows = []
    for r in report["results"]:
        label = r["model"]
        if "channels" in r:
            label += f" (cells={r['cells']}, channels={r['channels']})"
        rows.append([
            label,
            f"{r['params'] / 1e3:.0f}k",
            f"{r['multiply_adds'] / 1e6:.1f}M",
            f"{r['default']['median_s']:.3f}",
            f"{r['default']['images_per_s']:.0f}",
            f"{r['channels_last']['median_s']:.3f}",
            f"{r['channels_last']['images_per_s']:.0f}",
            f"x{r['channels_last_speedup']:.2f}",
            f"x{r['speedup_of_best']:.2f}",
        ])
    table = markdown_table(
        ["model", "params", "multiply-adds", "default s/step", "default images/s",
         "channels_last s/step", "channels_last images/s", "speed-up (default / CL)",
         "speed-up of fastest steps"],
        rows,
        align="lrrrrrrrr",
    )
    machine = report["machine"]
    speedups = [r["channels_last_speedup"] for r in report["results"]]
    faster = [r["model"] for r in report["results"] if r["channels_last_speedup"] > 1.05]
    slower = [r["model"] for r in report["results"] if r["channels_last_speedup"] < 0.95]
    if faster and not slower:
        every = len(faster) == len(speedups) and len(speedups) > 1
        verdict = "channels_last is faster for " + (
            f"all {len(speedups)} models" if every else ", ".join(faster)
        )
    elif slower and not faster:
        verdict = f"channels_last is slower for {', '.join(slower)}"
    elif faster:
        verdict = (f"channels_last is faster for {', '.join(faster)} but slower for "
                   f"{', '.join(slower)}")
    else:
        verdict = "channels_last makes no difference beyond ±5%"
    sentence = (
        f"On this CPU {verdict} (default / channels_last step time x{min(speedups):.2f} to "
        f"x{max(speedups):.2f}, median of per-round paired ratios, default and channels_last "
        f"steps alternating in the same process)."
    )
    loads = [load[0] for load in (report["load_average_before"], report["load_average_after"])
             if load is not None]
    if loads and max(loads) > machine["cpu_count"]:
        sentence += (
            f" The machine was busy with other work during this run (1-minute load up to "
            f"{max(loads):.1f} on {machine['cpu_count']} cores), so the absolute step times are "
            f"pessimistic; the paired ratios are the more reliable figure."
        )
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    uses = "channels_last" if use_channels_last(torch.device("cpu")) else "the default layout"
    sentence += (
        f" The training loop uses {uses} on this CPU"
        + (f" (oneDNN capped at {isa})" if isa else "")
        + ": channels_last only where oneDNN runs its AVX-512 kernels, because its AVX2 "
        "kernel for narrow stride-2 1x1 convolutions corrupts memory in NHWC "
        "(nas/memory_format.py); on AVX2-only CPUs every figure of the default column is the "
        "one that applies."
    )
    lines = [
        f"Run on {report['date']} with `{report['command']}`: torch {machine['torch']}, "
        f"{machine['threads']} threads on {machine['cpu_count']} CPU cores, batch "
        f"{args.batch_size} of random 3x32x32 images, {args.warmup} warm-up steps then "
        f"{_steps_text(report, args.steps)} timed steps per variant; medians. Load average "
        f"(1/5/15 min) "
        f"{_load_text(report['load_average_before'])} before and "
        f"{_load_text(report['load_average_after'])} after (the latter includes this "
        f"benchmark's own threads).",
        "",
        table,
        "",
        sentence,
    ]
    nasnet = next((r for r in report["results"] if r["model"] == "nasnet_a"), None)
    if nasnet is not None:
        low, high = PEER_CHILD_STEP["default"]
        cl_low, cl_high = PEER_CHILD_STEP["channels_last"]
        default_s = nasnet["default"]["median_s"]
        last_s = nasnet["channels_last"]["median_s"]
        peer_ratio = (low + high) / 2 / ((cl_low + cl_high) / 2)
        lines += [
            "",
            f"For comparison, PEERS.md's floor (a random-cell child of width 16, 8 cells, "
            f"140-220k parameters, batch 64, Adam, 2 threads, on this machine) takes "
            f"{_range(low, high)} per step in the default format and {_range(cl_low, cl_high)} "
            f"with channels_last (x{peer_ratio:.1f}). The NASNet-A network here "
            f"({nasnet['params'] / 1e3:.0f}k parameters, the same 6 normal + 2 reduction "
            f"layout, but heavier cells: separable 5x5 convolutions, 7x7 in reduction cells, "
            f"{nasnet['multiply_adds'] / 1e6:.1f}M multiply-adds) takes {default_s:.2f} s and "
            f"{last_s:.2f} s, {default_s / ((low + high) / 2):.1f}x and "
            f"{last_s / ((cl_low + cl_high) / 2):.1f}x the child's figures; its channels_last "
            f"gain (x{nasnet['channels_last_speedup']:.2f}) is of the same order as the peer "
            f"child's.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    parser.add_argument(
        "--max-seconds", type=float, default=200,
        help="time budget of the whole run; a model past its share stops after "
        f"{MIN_ROUNDS} rounds (keeps a busy machine from stretching the run)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        parser.error("--steps, --batch-size and --threads must be >= 1, --warmup >= 0")

    set_threads(args.threads)
    target = count_parameters(create_network("resnet20", NUM_CLASSES, INPUT_SIZE, IN_CHANNELS))
    load_before = load_average()
    started = time.perf_counter()
    results = []
    share = args.max_seconds / len(args.models)
    for name in args.models:
        results.append(measure(name, target, args.batch_size, args.warmup, args.steps, share))
        print(f"{name}: done", file=sys.stderr, flush=True)
    report = {
        "benchmark": "train_throughput",
        "date": today(),
        "command": command_line(),
        "machine": machine_info(),
        "settings": {"batch_size": args.batch_size, "warmup": args.warmup, "steps": args.steps,
                     "max_seconds": args.max_seconds,
                     "input": [IN_CHANNELS, INPUT_SIZE, INPUT_SIZE], "num_classes": NUM_CLASSES,
                     "optimizer": "SGD nesterov, clip_grad_norm 5"},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    if not args.no_docs:
        write_section(TITLE, render(report, args))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
