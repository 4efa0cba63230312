"""Best reward found versus architectures evaluated, for reinforce, random, evolution and tpe.

Two tasks, several seeds each, all run through the real search loop (`nas.search.run_search`)
on a temporary SQLite store:

- synthetic: reward = share of the 40 decisions (5 blocks, 2 cells, the default 10 ops) equal
  to a hidden target genotype; optimum 1.0, no training. Each seed hides its own target
  (`target-<seed>`), none of them the targets the controller's defaults were chosen on.
  Besides the strategies' defaults, REINFORCE with the ENAS micro-search recipe (attention
  over inputs, one shared op softmax, 1.1 * tanh clamp, lr 0.0035, baseline decay 0.99, no
  advantage normalisation) in the same code.
- digits: each candidate trained from scratch on scikit-learn's digits (1 normal cell per
  stage, 8 channels, `--epochs` epochs); reward = validation accuracy.

    .venv/bin/python bench/strategies.py [--seeds 5] [--synthetic-budget 1200]
        [--samples-per-step 20] [--digits-seeds 2] [--digits-budget 16] [--epochs 2]
        [--no-docs]

Prints one JSON object and rewrites the "Search strategies" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    command_line,
    load_average,
    machine_info,
    markdown_table,
    set_threads,
    today,
    write_section,
)

from nas.config import parse_config
from nas.search import create_search, run_search
from nas.store import Store

DIGITS_NOTE = (
    "Evolution's first `population_size` (20) asks are uniform samples with the same seed as "
    "random search, so below 20 architectures the two coincide; at this digits budget the "
    "spread between seeds is as large as the gaps between strategies, so the digits rows show "
    "that every strategy runs end to end on real training, not which is best."
)

ENAS_RECIPE = {"name": "reinforce", "input_heads": "shared", "op_heads": "shared",
               "lstm_layers": 1, "lr": 0.0035, "adam_beta1": 0.0, "temperature": None,
               "tanh_constant": 1.1, "op_tanh_reduce": 2.5, "baseline_decay": 0.99,
               "normalize_advantage": False, "entropy_weight": 1e-4}
SYNTHETIC_NOTE = (
    "`reinforce` runs with its defaults: one LSTM layer of 64, a softmax head per decision "
    "(inputs and ops), logits clamped to 2.5 * tanh(logits / 5), advantage = (reward - EMA "
    "baseline) / EMA standard deviation (decay 0.95 per reward), entropy weight 1e-4, Adam "
    "lr 0.01 with beta1 = 0 as ENAS. `reinforce (ENAS recipe)` is the ENAS micro-search "
    "controller's settings in the same code. PPO (NASNet's update, 4 clipped epochs per told "
    "batch) was measured by this benchmark at commit 34c7cb4 and then removed: 0.975 "
    "(0.925-1.000) at 1,200 against reinforce's 1.000, in 3-4x the controller time."
)

STRATEGIES = {
    "reinforce": {"name": "reinforce"},
    "reinforce (ENAS recipe)": ENAS_RECIPE,
    "random": {"name": "random"},
    "evolution": {"name": "evolution", "population_size": 20, "tournament_size": 5},
    "tpe": {"name": "tpe", "n_startup_trials": 10},
}
DIGITS_STRATEGIES = ("reinforce", "random", "evolution", "tpe")


def best_so_far(store: Store, search_id: str) -> list[float]:
    """The running maximum of the reward, architecture by architecture in the order asked."""
    curve, best = [], float("-inf")
    for architecture in store.architectures(search_id, order="step"):
        if architecture.reward is not None:
            best = max(best, architecture.reward)
        curve.append(best)
    return curve


def run(store: Store, task: str, strategy: str, seed: int, budget: int, epochs: int,
        samples_per_step: int) -> tuple[list[float], float]:
    config = {"name": f"bench-{task}-{strategy}-{seed}", "seed": seed,
              "strategy": STRATEGIES[strategy], "budget": {"architectures": budget},
              "samples_per_step": samples_per_step}
    if task == "synthetic":
        config["evaluator"] = {"name": "synthetic"}
    else:
        config |= {"evaluator": {"name": "standalone", "epochs": epochs},
                   "dataset": {"name": "digits"}, "network": {"cells": 1, "channels": 8}}
    started = time.perf_counter()
    record = run_search(store, create_search(store, parse_config(config)).id)
    return best_so_far(store, record.id), time.perf_counter() - started


def measure(store: Store, task: str, strategies: Sequence[str], seeds: int, budget: int,
            epochs: int, samples_per_step: int) -> dict:
    results = {}
    for strategy in strategies:
        curves, seconds = [], []
        for seed in range(seeds):
            curve, elapsed = run(store, task, strategy, seed, budget, epochs, samples_per_step)
            curves.append(curve)
            seconds.append(elapsed)
            print(f"{task} {strategy} seed {seed}: best {curve[-1]:.4f} in {elapsed:.1f} s",
                  file=sys.stderr, flush=True)
        results[strategy] = {
            "mean_best_curve": [statistics.mean(values) for values in zip(*curves, strict=True)],
            "final_best": [curve[-1] for curve in curves],
            "seconds": seconds,
            "options": STRATEGIES[strategy],
        }
    return {"task": task, "seeds": seeds, "budget": budget, "samples_per_step": samples_per_step,
            "strategies": results}


def checkpoints(budget: int) -> list[int]:
    marks = sorted({max(1, budget // 12), budget // 6, budget // 3, budget})
    return [mark for mark in marks if mark >= 1]


def render_task(result: dict, title: str) -> str:
    marks = checkpoints(result["budget"])
    rows = []
    for strategy, data in result["strategies"].items():
        curve = data["mean_best_curve"]
        spread = data["final_best"]
        rows.append([strategy, *[f"{curve[mark - 1]:.3f}" for mark in marks],
                     f"{min(spread):.3f}-{max(spread):.3f}",
                     f"{statistics.mean(data['seconds']):.1f}"])
    headers = ["strategy", *[f"best @{mark}" for mark in marks],
               f"final range ({result['seeds']} seeds)", "s / search"]
    return f"{title}\n\n" + markdown_table(headers, rows, align="l" + "r" * (len(headers) - 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds (each with its own hidden target) of the synthetic task")
    parser.add_argument("--synthetic-budget", type=int, default=1200)
    parser.add_argument("--samples-per-step", type=int, default=20,
                        help="architectures asked and told per step on the synthetic task")
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES),
                        default=list(STRATEGIES),
                        help="strategies of the synthetic task (tpe takes ~10 min a search "
                             "at 1,200 on 2 loaded cores)")
    parser.add_argument("--digits-seeds", type=int, default=2)
    parser.add_argument("--digits-budget", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per digits candidate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    started, machine = time.perf_counter(), machine_info()
    with tempfile.TemporaryDirectory() as folder, \
            Store(f"sqlite:///{Path(folder) / 'bench.db'}") as store:
        synthetic = measure(store, "synthetic", args.strategies, args.seeds,
                            args.synthetic_budget, 0, args.samples_per_step)
        digits = (measure(store, "digits", DIGITS_STRATEGIES, args.digits_seeds,
                          args.digits_budget, args.epochs, 4)
                  if args.digits_seeds > 0 else None)
    report = {"benchmark": "strategies", "date": today(), "command": command_line(),
              "machine": machine, "load_average_after": load_average(),
              "seconds": round(time.perf_counter() - started, 1),
              "synthetic": synthetic, "digits": digits}
    print(json.dumps(report))
    if not args.no_docs:
        parts = [
            f"Run on {report['date']} with `{report['command']}` "
            f"({report['seconds']:.0f} s in all; load average (1, 5, 15 min) at the start "
            f"{report['machine']['load_average']}, at the end {report['load_average_after']} on "
            f"{report['machine']['cpu_count']} cores). Mean over seeds of the best reward "
            f"found after N architectures, through the real search loop.",
            "",
            render_task(synthetic, f"**Synthetic objective** (share of 40 decisions equal to a "
                                   f"hidden target, a different target per seed; optimum 1.0; "
                                   f"{synthetic['samples_per_step']} architectures per step):"),
            "",
            SYNTHETIC_NOTE,
        ]
        if digits is not None:
            parts += ["", render_task(
                digits, f"**Digits proxy task** (each candidate trained from scratch for "
                        f"{args.epochs} epochs, 1 cell per stage, 8 channels; reward = "
                        f"validation accuracy; 4 architectures per step):"), "", DIGITS_NOTE]
        else:
            parts += ["", "The digits proxy task was not run this time (`--digits-seeds 0`)."]
        write_section("Search strategies (bench/strategies.py)", "\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
