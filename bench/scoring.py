"""The search's scoring protocols in whole ENAS searches on the CIFAR subset.

`bench/ranking.py` measures how well each way of scoring ranks fixed cells under a fixed
supernet; this runs the real search with each protocol (`evaluator.score_on`, `score_by`,
`score_batches`), so the controller learns from it and trains the supernet on the paths it
asks for. Each search: the peers' CIFAR configuration (ENAS's five ops, width 16, 8 cells,
batch 64), the REINFORCE controller, 4 warm-up epochs, 160 candidates, seed 0 (as
`bench/enas.py`'s search). Reported per protocol: the search's seconds and its seconds of
scoring per candidate; the ranking the search stores (`metrics.ranking`: Kendall's tau between
derivation's 32 candidates' scores under the protocol and their whole-split scores); the
derived best's whole-split accuracy under the shared weights; and the derived best trained
from scratch with `bench/ranking.py`'s stated recipe (2 epochs, seeds 0 and 1, the same split),
placed among that bench's 32 random cells trained alike (their standalone results are read
from its committed cache).

    .venv/bin/python bench/scoring.py [--protocols enas,shared-loss,shared-loss-4]
        [--seeds 0,1] [--threads 2] [--no-docs] [--render]

Each protocol's result is kept in bench/results/scoring/NAME.json as soon as it is done (a run
skips protocols already kept); the section "Scoring protocols in whole searches" of
docs/benchmarks.md is rewritten from the kept files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
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
    set_threads,
    tau_text,
    today,
    write_section,
)
from ranking import train_standalone

from nas.config import SearchConfig, parse_config
from nas.enas import EnasEvaluator
from nas.search import create_search, open_dataset, run_search
from nas.store import Store

RESULTS = ROOT / "bench" / "results" / "scoring"
RANKING_CACHE = ROOT / "bench" / "results" / "ranking"  # bench/ranking.py's CIFAR cells
SECTION = "Scoring protocols in whole searches (bench/scoring.py)"
STANDALONE_EPOCHS = 2  # bench/ranking.py's CIFAR recipe
PROTOCOLS = {  # each states all three options
    "enas": ("own batch, accuracy (ENAS's; the default before 2026-12-06)",
             {"score_on": "own", "score_by": "accuracy", "score_batches": 1}),
    "shared-loss": ("shared batch, loss",
                    {"score_on": "shared", "score_by": "loss", "score_batches": 1}),
    "shared-loss-4": ("4 shared batches, loss (the default)",
                      {"score_on": "shared", "score_by": "loss", "score_batches": 4}),
}


def search_config(options: dict, seed: int = 0) -> SearchConfig:
    return parse_config({
        "name": "bench-scoring", "seed": seed, "dataset": PEERS_CIFAR,
        "network": {"cells": 2, "channels": 16},
        "evaluator": {"name": "enas", "warmup_epochs": 4, "epochs": STANDALONE_EPOCHS,
                      **options},
        "budget": {"architectures": 160},
    })


class TimedScoring(EnasEvaluator):
    """The evaluator, adding up the seconds its scoring of the search's candidates takes."""

    scoring_seconds = 0.0

    def evaluate(self, genotypes):
        started = time.perf_counter()
        try:
            return super().evaluate(genotypes)
        finally:
            self.scoring_seconds += time.perf_counter() - started


def random_cells() -> list[float]:
    """bench/ranking.py's CIFAR cells trained with the same recipe: the mean of their two seeds
    (of those trained with both)."""
    by_cell: dict[str, list[float]] = {}
    for path in sorted((RANKING_CACHE / "standalone").glob(f"*-{STANDALONE_EPOCHS}-epochs*.json")):
        row = json.loads(path.read_text())
        by_cell.setdefault(row["genotype"], []).append(row["accuracy"])
    return [statistics.mean(accuracies) for accuracies in by_cell.values() if len(accuracies) == 2]


def result_file(name: str, seed: int) -> Path:
    return RESULTS / (f"{name}.json" if seed == 0 else f"{name}-seed{seed}.json")


def run_protocol(name: str, options: dict, seed: int) -> dict:
    config = search_config(options, seed)
    data = open_dataset(config)
    enas = TimedScoring(config, data)
    with tempfile.TemporaryDirectory() as folder, Store(f"sqlite:///{folder}/bench.db") as store:
        started = time.perf_counter()
        record = run_search(store, create_search(store, config).id, evaluator=enas)
        search_seconds = time.perf_counter() - started
        candidates = store.architectures(record.id, role="candidate")
        derived = store.architectures(record.id, role="derived", order="reward")
    best = derived[0]
    by_epoch: dict[int, list[float]] = {}
    for row in candidates:
        by_epoch.setdefault(row.metrics.supernet_epochs, []).append(row.accuracy)
    with tempfile.TemporaryDirectory() as folder:  # not bench/ranking.py's cache of random cells
        trained = [train_standalone(enas, config, data, best.genotype, Path(folder), weights_seed)
                   for weights_seed in (0, 1)]
    return {
        "protocol": name, "seed": seed, "options": options, "status": record.status.value,
        "search_seconds": round(search_seconds, 1), "candidates": len(candidates),
        "scoring_seconds_per_candidate": round(enas.scoring_seconds / len(candidates), 4),
        "supernet_epochs": enas.epochs_done,
        "mean_accuracy_by_epoch": {epoch: round(statistics.mean(values), 4)
                                   for epoch, values in sorted(by_epoch.items())},
        "ranking": best.metrics.ranking.model_dump(),
        "derived": {"genotype": best.genotype.id, "whole_split_accuracy": best.accuracy,
                    "params": best.params, "standalone": trained},
        "machine": machine_info(), "date": today(), "command": command_line(),
        "load_average_after": load_average(),
    }


def render(results: list[dict], cells: list[float]) -> str:
    first = results[0]
    commands = " and ".join(dict.fromkeys(f"`{result['command']}`" for result in results))
    rows = []
    for result in results:
        accuracies = [row["accuracy"] for row in result["derived"]["standalone"]]
        mean = statistics.mean(accuracies)
        beaten = sum(cell < mean for cell in cells)
        rows.append([
            PROTOCOLS[result["protocol"]][0], str(result.get("seed", 0)),
            f"{result['search_seconds']:.0f}",
            f"{result['scoring_seconds_per_candidate']:.3f}",
            tau_text(result["ranking"]),
            f"{result['derived']['whole_split_accuracy']:.3f}",
            f"{result['derived']['params']:,}",
            f"{mean:.3f} ({accuracies[0]:.3f}, {accuracies[1]:.3f})",
            f"{beaten} of {len(cells)}",
        ])
    table = markdown_table(
        ["scoring", "search seed", "search s", "scoring s / candidate",
         "stored ranking tau (search's scores vs whole split)", "derived best, whole split",
         "params", "trained: mean (seed 0, 1)", "random cells below it"], rows)
    return (
        f"Run on {first['date']} with {commands}, on {cpu_text(first['machine'])}. "
        "Each row is one whole ENAS search (its seed as given) on the peers' CIFAR "
        "configuration (ENAS's "
        "five ops, width 16, 8 cells, batch 64, 1,000 validation images in 16 batches), the "
        "REINFORCE controller, 4 warm-up epochs, 160 candidates, scored as the row says (ENAS's "
        "protocol is `enas` in `--protocols`, named `default` in the first runs, when it was "
        "the default). The "
        "stored ranking is what `nas show` gives: Kendall's tau between derivation's candidates' "
        "scores under the row's protocol and their whole-split scores (95% bootstrap interval). "
        "The derived best is then trained from scratch with `bench/ranking.py`'s recipe (2 "
        "epochs, seeds 0 and 1) and placed among that bench's random cells trained alike "
        f"(mean of two seeds; theirs range {min(cells):.3f} to {max(cells):.3f}, median "
        f"{statistics.median(cells):.3f}).\n\n{table}\n\n{summary(results, cells)}\n")


def summary(results: list[dict], cells: list[float]) -> str:
    """Per protocol, over its searches: the derived bests' trained accuracy and stored tau."""
    lines = []
    for name, (label, _) in PROTOCOLS.items():
        own = [result for result in results if result["protocol"] == name]
        if not own:
            continue
        trained = [statistics.mean(row["accuracy"] for row in result["derived"]["standalone"])
                   for result in own]
        taus = [result["ranking"]["kendall_tau"] for result in own]
        seconds = statistics.mean(result["scoring_seconds_per_candidate"] for result in own)
        lines.append(
            f"- {label}: {len(own)} search(es); derived best trained "
            f"{statistics.mean(trained):.3f} on average ({', '.join(f'{v:.3f}' for v in trained)};"
            f" random cells' median {statistics.median(cells):.3f}), stored tau "
            f"{', '.join(f'{tau:.2f}' for tau in taus)}, scoring "
            f"{seconds:.3f} s a candidate.")
    return "\n".join(lines)


def seeds_of(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, not {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--seeds", type=seeds_of, default="0,1", help="the searches' seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--render", action="store_true", help="only rewrite the docs section")
    args = parser.parse_args()
    names = args.protocols.split(",")
    if unknown := set(names) - set(PROTOCOLS):
        sys.exit(f"--protocols: unknown {', '.join(sorted(unknown))}; "
                 f"choose from {','.join(PROTOCOLS)}")
    if not args.render:
        if not CIFAR.exists():
            sys.exit(f"bench/scoring.py needs {CIFAR} (the peers' data)")
        set_threads(args.threads)
        RESULTS.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for name in names:
                path = result_file(name, seed)
                if not path.exists():
                    path.write_text(json.dumps(run_protocol(name, PROTOCOLS[name][1], seed),
                                               indent=1) + "\n")
    kept = [result_file(name, seed) for name in names for seed in args.seeds]
    results = [json.loads(path.read_text()) for path in kept if path.exists()]
    print(json.dumps(results, indent=2))
    if results and not args.no_docs:
        write_section(SECTION, render(results, random_cells()))


if __name__ == "__main__":
    main()
