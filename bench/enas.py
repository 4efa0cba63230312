"""ENAS against training every candidate, on the peers' configuration (`../shared/PEERS.md`).

CIFAR-10 subset (`../shared/data/cifar10-subset`, 1,000 images held out for validation), batch
64, 2 threads, ENAS's five ops, 5 blocks, width 16, 2 normal cells per stage (8 cells):

1. cost per scored candidate: ENAS scoring (shared weights, as the search scores: on
   `evaluator.score_batches` validation batches, 4 by default) versus the
   standalone evaluator training the same candidate from scratch with its proxy budget;
2. supernet overhead: a training step of the supernet on a sampled path versus the same
   genotype built as a standalone network, same batch (interleaved), and the peak memory of
   each (RSS of a fresh process that runs only that);
3. search quality: an ENAS search (`--search-seconds`), then the derived best cell, random
   cells, resnet20 and mobilenet_v2 each trained from scratch with the same budget and seed;
4. ranking fidelity on digits: Kendall's tau between each candidate's shared-weight reward
   (its scoring batches, as during the search; and re-scored on the whole validation split)
   and its accuracy after standalone proxy training.

    .venv/bin/python bench/enas.py [--search-seconds 600] [--train-epochs 4] [--random-cells 3]
        [--rank-candidates 12] [--no-docs] [--parts cost,step [--previous LAST.json]]

Prints one JSON object, keeps it in bench/results/enas.json (a later `--parts` run takes the
other parts from there unless `--previous` names another file) and rewrites the "ENAS"
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import (
    CIFAR,
    PEERS_CIFAR,
    ROOT,
    command_line,
    cpu_text,
    machine_info,
    markdown_table,
    protocol_text,
    set_threads,
    tau_text,
    today,
    write_section,
)

from nas.config import SearchConfig, parse_config
from nas.enas import EnasEvaluator
from nas.evaluators import StandaloneEvaluator
from nas.ranking import agreement
from nas.search import create_search, open_dataset, run_search
from nas.store import Store
from nas.train import TrainConfig, train_model
from searchspace.complexity import count_flops, count_parameters
from searchspace.network import CellNetwork
from searchspace.supernet import Supernet, extract_network
from searchspace.zoo import create_network

RESULT = ROOT / "bench" / "results" / "enas.json"  # the last run that rewrote the docs
PARTS = ("cost", "step", "memory", "quality", "ranking")
NNI = {"step_s": 0.83, "score_s": 0.39, "peak_rss_gib": 2.3, "accuracy_after_335s": "15-25%"}


def cifar_config(**overrides) -> SearchConfig:
    data = {
        "name": "bench-enas", "seed": 0,
        "dataset": PEERS_CIFAR,
        "network": {"cells": 2, "channels": 16},
    }
    data.update(overrides)
    return parse_config(data)


def step_overhead(config: SearchConfig, genotypes: int, repeats: int) -> dict:
    """Median step time of the supernet on a path and of that path's standalone network."""
    data = open_dataset(config)
    images, labels = next(iter(data.train_loader(64, seed=0)))
    images = images.contiguous(memory_format=torch.channels_last)
    space = config.space.build()
    supernet = Supernet(space, num_classes=10, cells=2, channels=16).to(
        memory_format=torch.channels_last)
    ratios, supernet_times, child_times = [], [], []
    for genotype in (space.sample(random.Random(seed)) for seed in range(genotypes)):
        child = extract_network(supernet, genotype).to(memory_format=torch.channels_last)
        runs = {"supernet": (supernet, lambda x, g=genotype: supernet(x, g)),
                "child": (child, child)}
        optimizers = {name: torch.optim.Adam(model.parameters(), 1e-3)
                      for name, (model, _) in runs.items()}
        times = {"supernet": [], "child": []}
        for repeat in range(repeats + 1):
            for name, (model, forward) in runs.items():  # interleaved
                model.train()
                started = time.perf_counter()
                optimizers[name].zero_grad(set_to_none=True)
                F.cross_entropy(forward(images), labels).backward()
                optimizers[name].step()
                if repeat:  # the first is a warm-up
                    times[name].append(time.perf_counter() - started)
        supernet_s = statistics.median(times["supernet"])
        child_s = statistics.median(times["child"])
        supernet_times.append(supernet_s)
        child_times.append(child_s)
        ratios.append(supernet_s / child_s)
    return {"supernet_step_s": statistics.median(supernet_times),
            "child_step_s": statistics.median(child_times),
            "ratio": statistics.median(ratios), "ratios": ratios}


MEMORY_PROBE = """
import random, sys, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
torch.set_num_threads(2)
from searchspace.spaces import SearchSpace, ENAS_OPS
from searchspace.supernet import Supernet, extract_network
space = SearchSpace(ops=ENAS_OPS, blocks=5)
torch.manual_seed(0)
model = Supernet(space, num_classes=10, cells=2, channels=16)
genotype = space.sample(random.Random(0))
if {kind!r} == "child":
    model = extract_network(model, genotype)
    forward = model
else:
    forward = lambda x: model(x, space.sample(random.Random(torch.randint(0, 10**6, ()).item())))
model = model.to(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
def high_water_kib():  # VmHWM starts afresh at exec; ru_maxrss would carry the parent's
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = high_water_kib()
for _ in range(8):
    x = torch.randn(64, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad()
    F.cross_entropy(forward(x), torch.randint(0, 10, (64,))).backward()
    optimizer.step()
print(high_water_kib(), before)
"""


def peak_memory_mib(kind: str) -> dict:
    """Peak RSS of a fresh process training `kind` (supernet on sampled paths, or a child),
    and its RSS after importing torch and building the model."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(root=str(ROOT), kind=kind)],
                         capture_output=True, text=True, check=True).stdout.split()
    peak, before = (int(value) / 1024 for value in out)
    return {"peak_rss_mib": round(peak, 1), "after_imports_mib": round(before, 1)}


def scoring_protocol(config: SearchConfig) -> dict:
    """How the search scores a candidate (kept with each figure that depends on it)."""
    options = config.evaluator
    return {"score_batches": options.score_batches, "score_on": options.score_on,
            "score_by": options.score_by}


def cost_per_candidate(config: SearchConfig, candidates: int) -> dict:
    """Seconds to score a candidate under shared weights vs to train it standalone."""
    data = open_dataset(config)
    enas = EnasEvaluator(config, data)
    space = config.space.build()
    genotypes = [space.sample(random.Random(100 + seed)) for seed in range(candidates)]
    enas.evaluate(genotypes[:1])  # warm-up
    started = time.perf_counter()
    enas.evaluate(genotypes)
    enas_s = (time.perf_counter() - started) / candidates
    standalone = StandaloneEvaluator(config, data)  # the same network and proxy budget
    started = time.perf_counter()
    evaluation = standalone.evaluate_one(genotypes[0])
    standalone_s = time.perf_counter() - started
    return {"enas_score_s": enas_s, "standalone_train_s": standalone_s,
            "ratio": standalone_s / enas_s, "proxy_epochs": config.evaluator.epochs,
            "protocol": scoring_protocol(config), "standalone_state": evaluation.state}


def shared_weight_curve(store: Store, search_id: str) -> list[dict]:
    """Mean shared-weight accuracy and reward of the candidates of each supernet epoch."""
    by_epoch: dict[int, list] = {}
    for row in store.architectures(search_id, role="candidate"):
        by_epoch.setdefault(row.metrics.supernet_epochs, []).append(row)
    return [{"epoch": epoch, "mean_accuracy": statistics.mean(row.accuracy for row in rows),
             "mean_reward": statistics.mean(row.reward for row in rows), "candidates": len(rows)}
            for epoch, rows in sorted(by_epoch.items())]


def curve_text(curve: list[dict]) -> str:
    """The per-epoch means NNI's accuracy compares with: accuracies where the run kept them
    (a search scoring by loss rewards exp(-loss), not an accuracy)."""
    if curve and "mean_accuracy" in curve[0]:
        return ("mean shared-weight accuracy per epoch: "
                + ", ".join(f"{point['mean_accuracy']:.2f}" for point in curve))
    return ("mean shared-weight reward per epoch (this run kept no accuracies; the reward is "
            "the objective applied to exp(-loss) when scoring by loss): "
            + ", ".join(f"{point['mean_reward']:.2f}" for point in curve))


def train_from_scratch(model: torch.nn.Module, data, epochs: int) -> tuple[float, float]:
    config = TrainConfig(epochs=epochs, batch_size=64, learning_rate=0.05, seed=0, cutout=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        result = train_model(model, data, config)
    return result.history[-1].val_accuracy, result.seconds


def search_quality(store: Store, search_seconds: float, train_epochs: int, random_cells: int
                   ) -> dict:
    """An ENAS search on CIFAR, then the derived cell vs random cells vs the zoo, retrained."""
    # 4 uniform warm-up epochs, then 8 controller epochs of 5 steps x 4 candidates; the time
    # budget caps it (the learning rate anneals over the 12 planned epochs).
    config = cifar_config(budget={"architectures": 160, "seconds": search_seconds},
                          evaluator={"name": "enas", "warmup_epochs": 4})
    started = time.perf_counter()
    record = run_search(store, create_search(store, config).id)
    search_s = time.perf_counter() - started
    derived = store.architectures(record.id, role="derived", order="reward")
    data = open_dataset(config)
    info = data.info
    shape = (info.in_channels, info.input_size, info.input_size)
    space = config.space.build()
    contenders = [("ENAS derived best", derived[0].genotype)]
    contenders += [(f"random cell {seed}", space.sample(random.Random(1000 + seed)))
                   for seed in range(random_cells)]
    rows = []
    for label, genotype in contenders:
        torch.manual_seed(0)
        network = CellNetwork(genotype, num_classes=10, cells=2, channels=16)
        accuracy, seconds = train_from_scratch(network, data, train_epochs)
        rows.append({"network": label, "genotype": genotype.id, "accuracy": accuracy,
                     "params": count_parameters(network), "flops": count_flops(network, shape),
                     "train_s": seconds})
    for name in ("resnet20", "mobilenet_v2"):
        torch.manual_seed(0)
        network = create_network(name, num_classes=10, input_size=32, in_channels=3)
        accuracy, seconds = train_from_scratch(network, data, train_epochs)
        rows.append({"network": name, "genotype": None, "accuracy": accuracy,
                     "params": count_parameters(network), "flops": count_flops(network, shape),
                     "train_s": seconds})
    random_accuracies = [row["accuracy"] for row in rows if row["network"].startswith("random")]
    curve = shared_weight_curve(store, record.id)
    return {"protocol": scoring_protocol(config), "search_s": search_s,
            "supernet_epochs": curve[-1]["epoch"] if curve else 0,
            "candidates": store.count_architectures(record.id, role="candidate"),
            "curve": curve, "derived_reward": derived[0].reward, "rows": rows,
            "median_random": statistics.median(random_accuracies),
            "beats_median_random": rows[0]["accuracy"] > statistics.median(random_accuracies)}


def ranking_fidelity(store: Store, candidates: int) -> dict:
    """Kendall's tau on digits between shared-weight rewards and standalone accuracies."""
    config = parse_config({"name": "bench-rank", "seed": 0, "dataset": {"name": "digits"},
                           "strategy": {"name": "random"}})
    data = open_dataset(config)
    enas = EnasEvaluator(config, data)
    record = run_search(store, create_search(store, config).id, evaluator=enas)
    rows = store.architectures(record.id, role="candidate", order="step")
    last = rows[-candidates:]  # scored under the final shared weights' last epoch
    genotypes = [row.genotype for row in last]
    searched = [row.reward for row in last]
    whole_split = enas.accuracies(genotypes, [enas.whole_split()] * len(genotypes))
    standalone = StandaloneEvaluator(config, data)  # the same network and proxy budget
    trained = [standalone.evaluate_one(genotype).accuracy for genotype in genotypes]
    return {"protocol": scoring_protocol(config), "candidates": len(genotypes),
            "search_rewards": searched,
            "whole_split_rewards": whole_split, "standalone_accuracies": trained,
            "search": agreement(searched, trained, seed=0).model_dump(),
            "whole_split": agreement(whole_split, trained, seed=0).model_dump()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-seconds", type=float, default=600)
    parser.add_argument("--train-epochs", type=int, default=4)
    parser.add_argument("--random-cells", type=int, default=3)
    parser.add_argument("--rank-candidates", type=int, default=12)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} to measure")
    parser.add_argument("--previous", type=Path, default=RESULT,
                        help="JSON of an earlier run whose other parts are kept")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS) or (parts != set(PARTS) and not args.previous.exists()):
        sys.exit(f"--parts: a subset of {','.join(PARTS)}; a subset needs the JSON of an "
                 f"earlier run ({args.previous} is missing)")
    set_threads(2)
    if not CIFAR.exists():
        sys.exit(f"bench/enas.py needs {CIFAR} (the peers' data)")
    config = cifar_config()
    result = json.loads(args.previous.read_text()) if parts != set(PARTS) else {}
    result |= {"machine": machine_info(), "command": command_line(), "date": today(), "nni": NNI,
               "measured_now": sorted(parts)}
    if "cost" in parts:
        result["cost"] = cost_per_candidate(config, candidates=20)
    if "step" in parts:
        result["step"] = step_overhead(config, genotypes=4, repeats=3)
    if "memory" in parts:
        result["memory"] = {kind: peak_memory_mib(kind) for kind in ("supernet", "child")}
    with tempfile.TemporaryDirectory() as home, Store(f"sqlite:///{home}/bench.db") as store:
        if "quality" in parts:
            result["quality"] = search_quality(store, args.search_seconds, args.train_epochs,
                                               args.random_cells)
        if "ranking" in parts:
            result["ranking"] = ranking_fidelity(store, args.rank_candidates)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
        write_section("ENAS (bench/enas.py)", render(result))


def render(result: dict) -> str:
    cost, step, memory = result["cost"], result["step"], result["memory"]
    quality, ranking = result["quality"], result["ranking"]
    lines = [
        f"{result['date']}, `{result['command']}`, on {cpu_text(result['machine'])}, load "
        f"average {result['machine']['load_average']}, {result['machine']['threads']} threads. "
        "CIFAR-10 subset with 1,000 validation images, batch 64, ENAS's five ops, 5 blocks, "
        "width 16, 8 cells: the configuration NNI was measured on (`../shared/PEERS.md`). "
        + ("" if len(result["measured_now"]) == len(PARTS) else
           f"This run measured {', '.join(result['measured_now'])}; the other figures are "
           "kept from the previous full run (`--previous`). ")
        + "Peak RSS is a fresh process's high-water mark while it trains only the network "
        "(random batches, no dataset loaded); NNI's figure is its whole search process.",
        "",
        markdown_table(["figure", "ours", "NNI 3.0 ENAS", "target"], [
            [f"score one candidate ({protocol_text(cost['protocol'])})",
             f"{cost['enas_score_s']:.3f} s", f"{NNI['score_s']} s (one batch)", "-"],
            [f"train it standalone ({cost['proxy_epochs']} proxy epochs)",
             f"{cost['standalone_train_s']:.1f} s", "-", "-"],
            ["cost ratio standalone / ENAS", f"{cost['ratio']:.0f}x", "-", ">= 1000x"],
            ["supernet training step on a sampled path", f"{step['supernet_step_s']:.3f} s",
             f"{NNI['step_s']} s", "<= 0.41 s (half NNI)"],
            ["same genotype as a standalone network", f"{step['child_step_s']:.3f} s", "-", "-"],
            ["supernet / standalone step", f"{step['ratio']:.2f}x", "-", "<= 1.15x"],
            ["peak RSS, supernet training",
             f"{memory['supernet']['peak_rss_mib']:.0f} MiB", f"{NNI['peak_rss_gib']} GiB",
             "< 1 GiB"],
            ["peak RSS, standalone network training",
             f"{memory['child']['peak_rss_mib']:.0f} MiB", "-", "-"],
        ], align="lrrr"),
        "",
        f"Search: {quality['search_s']:.0f} s, {quality['supernet_epochs']} supernet epochs, "
        f"{quality['candidates']} candidates scored on "
        f"{protocol_text(quality['protocol'])}; {curve_text(quality['curve'])} (NNI's "
        f"accuracy after 335 s: {NNI['accuracy_after_335s']}). Derived best: "
        f"{quality['derived_reward']:.3f} on the whole validation split under shared weights.",
        "",
        "Each network below trained from scratch with the same budget and seed "
        f"({result['quality']['rows'][0]['train_s']:.0f} s for the derived cell):",
        "",
        markdown_table(["network", "val accuracy", "params", "mult-adds", "train s"], [
            [row["network"], f"{row['accuracy']:.3f}", f"{row['params']:,}",
             f"{row['flops']:,}", f"{row['train_s']:.0f}"] for row in quality["rows"]
        ], align="lrrrr"),
        "",
        f"The derived cell {'beats' if quality['beats_median_random'] else 'does not beat'} "
        f"the median random cell ({quality['median_random']:.3f}).",
        "",
        f"Ranking fidelity (digits, {ranking['candidates']} candidates of the last supernet "
        "epoch of a default-sized search with uniformly sampled candidates, each also trained "
        "standalone for the proxy budget): Kendall's tau "
        f"{tau_text(ranking['search'])} with the search's reward "
        f"({protocol_text(ranking['protocol'])}; before), "
        f"{tau_text(ranking['whole_split'])} re-scored on the whole validation split (after; "
        "what derivation does); 95% bootstrap intervals over the candidates.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
