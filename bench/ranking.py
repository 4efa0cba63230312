"""Ranking fidelity on the CIFAR subset (or digits): do shared-weight scores rank candidates
as training each one from scratch does, and what does each way of scoring cost?

1. supernet: the peers' configuration (ENAS's five ops, 5 blocks, width 16, 8 cells, batch
   64; on digits, `--dataset digits`, the network of a default ENAS search: width 16, 5
   cells), trained `--supernet-epochs` epochs on uniformly sampled paths (or fair ones) by the real
   `EnasEvaluator` (as a search's warm-up trains it, cosine-annealed over those epochs), from
   `--supernet-seed` (its initial weights, paths and data order; the data split is seed 0's);
2. standalone accuracy: `--candidates` uniformly sampled genotypes, each trained from scratch
   with one stated proxy recipe: its network in the layout a search exports, freshly
   initialised (seed 0), `--standalone-epochs` epochs of the standalone evaluator's SGD recipe
   (batch 64, lr 0.05, cosine, crop and flip) on the search's train split, accuracy on its
   validation split;
3. protocols: every candidate scored under the shared weights in several ways (the search's
   own scoring among them); for each, Kendall's tau against the standalone accuracies with a
   95% bootstrap interval (`nas.ranking`), seconds per candidate, and the cost ratio
   standalone / scoring. Once every candidate was also trained with seed 1 (`--repeat`), tau
   is also taken against the mean of the two seeds' accuracies: a less noisy reference.

Both trained parts are kept under `--cache` (the supernet once, each standalone accuracy in a
file of its own), so a run can stop and resume, and shards can train candidates side by side:

    .venv/bin/python bench/ranking.py [--dataset cifar|digits] [--candidates 32]
        [--supernet-epochs 10]
        [--standalone-epochs 2] [--fixed-topology-epochs 0] [--path-sampling uniform|fair]
        [--supernet-seed 0]
        [--threads 2]
        [--parts supernet,standalone,score] [--shard 0/1] [--standalone-seconds S]
        [--repeat N] [--cache DIR] [--no-docs] [--render]

Prints one JSON object and, once every candidate has its standalone accuracy, keeps it in
`--cache` (scores-*.json, named as the supernet) and rewrites the "Ranking fidelity on the
CIFAR subset" (or "on digits") section of docs/benchmarks.md (`--render`: only that, from the
kept file).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
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

from nas.config import EvaluatorConfig, SearchConfig, parse_config
from nas.enas import EnasEvaluator, accuracy_of
from nas.evaluators import standalone_train_config
from nas.ranking import BOOTSTRAP_RESAMPLES, CONFIDENCE, agreement, kendall
from nas.search import open_dataset
from nas.seeding import stream_seed
from nas.train import train_model
from searchspace.genotype import Genotype

PARTS = ("supernet", "standalone", "score")
SECTIONS = {"cifar": "Ranking fidelity on the CIFAR subset (bench/ranking.py)",
            "digits": "Ranking fidelity on digits (bench/ranking.py)"}
# the proxy network each dataset's candidates are built as: the peers' CIFAR configuration, and
# on digits a default ENAS search's (nas.config's ENAS_DEFAULTS on NetworkConfig's one cell)
NETWORKS = {"cifar": {"cells": 2, "channels": 16}, "digits": {"cells": 1, "channels": 16}}
DATASETS = {"cifar": PEERS_CIFAR, "digits": {"name": "digits"}}
# the standalone proxy recipe's epochs: 2 on the CIFAR subset, the standalone evaluator's
# default on digits
DEFAULT_STANDALONE_EPOCHS = {"cifar": 2, "digits": 3}
Batch = tuple[torch.Tensor, torch.Tensor]


def bench_config(supernet_epochs: int, standalone_epochs: int, fixed_topology_epochs: int,
                 path_sampling: str = "uniform", dataset: str = "cifar") -> SearchConfig:
    return parse_config({
        "name": "bench-ranking", "seed": 0, "dataset": DATASETS[dataset],
        "network": NETWORKS[dataset],
        "evaluator": {"name": "enas", "warmup_epochs": supernet_epochs - 1,
                      "epochs": standalone_epochs,
                      "fixed_topology_epochs": fixed_topology_epochs,
                      "path_sampling": path_sampling,
                      # the "search" rows are ENAS's protocol (the default until 2026-12-06)
                      "score_on": "own", "score_batches": 1, "score_by": "accuracy"},
        "strategy": {"name": "random"},
        # plans `supernet_epochs` epochs: the learning rate anneals over them
        "budget": {"architectures": 1},
    })


def candidates(config: SearchConfig, count: int) -> list[Genotype]:
    space = config.space.build()
    rng = random.Random("bench-ranking-candidates")
    found: dict[str, Genotype] = {}
    while len(found) < count:
        genotype = space.sample(rng)
        found.setdefault(genotype.id, genotype)
    return list(found.values())


def supernet_path(cache: Path, epochs: int, evaluator: EvaluatorConfig, seed: int = 0) -> Path:
    warm_up = (f"-topology-{evaluator.fixed_topology_epochs}"
               if evaluator.fixed_topology_epochs else "")
    fair = "-fair" if evaluator.path_sampling == "fair" else ""
    seeded = f"-seed{seed}" if seed else ""
    return cache / f"supernet-{epochs}-epochs{warm_up}{fair}{seeded}.pt"


def supernet_config(config: SearchConfig, seed: int) -> SearchConfig:
    """`config` with the supernet's seed (its initial weights, paths and data order): the data
    split stays seed 0's, the split every standalone accuracy was measured on."""
    return config.model_copy(update={"seed": seed})


def trained_supernet(config: SearchConfig, data, cache: Path, epochs: int) -> EnasEvaluator:
    """The evaluator with its supernet trained `epochs` epochs of warm-up paths, uniform or fair
    as `config` says, from `config.seed` (kept in `cache`)."""
    enas = EnasEvaluator(config, data)
    path = supernet_path(cache, epochs, config.evaluator, config.seed)
    if path.exists():
        enas.load_state_dict(torch.load(path, weights_only=False))
        return enas
    started = time.perf_counter()
    losses = [enas.train_epoch(strategy=None, uniform=True) for _ in range(epochs)]
    state = enas.state_dict() | {"losses": losses,
                                 "seconds": time.perf_counter() - started}
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return enas


def supernet_facts(cache: Path, epochs: int, evaluator: EvaluatorConfig, seed: int) -> dict:
    state = torch.load(supernet_path(cache, epochs, evaluator, seed), weights_only=False)
    return {"epochs": state["epochs_done"], "losses": [round(v, 4) for v in state["losses"]],
            "seconds": round(state["seconds"], 1), "seed": seed}


def standalone_file(cache: Path, genotype: Genotype, epochs: int, seed: int = 0) -> Path:
    suffix = "" if seed == 0 else f"-seed{seed}"
    return cache / "standalone" / f"{genotype.id}-{epochs}-epochs{suffix}.json"


def train_standalone(enas: EnasEvaluator, config: SearchConfig, data, genotype: Genotype,
                     cache: Path, seed: int = 0) -> dict:
    """Train `genotype`'s exported-layout network from scratch with the stated recipe (the
    initial weights and the data order from `seed`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "candidate-weights"))
        network = enas.supernet.standalone(genotype)
    recipe = standalone_train_config(config).model_copy(update={"seed": seed})
    result = train_model(network, data, recipe)
    row = {"genotype": genotype.id, "accuracy": result.history[-1].val_accuracy,
           "train_seconds": round(result.seconds, 2), "threads": torch.get_num_threads(),
           "params": enas.path_parameters(genotype), "epochs": config.evaluator.epochs,
           "seed": seed}
    path = standalone_file(cache, genotype, config.evaluator.epochs, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row))
    return row


# scoring protocols: each takes (evaluator, genotype, index) and returns a score (an accuracy,
# or minus a loss), higher for a better candidate


def search_protocol(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
    """What a search does: the next validation batch in turn, batch statistics."""
    return enas.evaluate([genotype])[0].accuracy


def shared_batches(count: int) -> Callable[[EnasEvaluator, Genotype, int], float]:
    def protocol(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
        return enas.accuracies([genotype], [enas.valid_batches[:count]])[0]
    return protocol


def whole_split(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
    return enas.score_on_whole_split(genotype)


def recalibrated(train_batches: int, valid_batches: int | None
                 ) -> Callable[[EnasEvaluator, Genotype, int], float]:
    """Batch norm's running statistics re-estimated for the path on `train_batches` training
    batches (no gradients), then eval mode on the first `valid_batches` (None: all)."""
    def protocol(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
        supernet = enas.supernet
        norms = [m for m in supernet.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in norms]
        batches = enas.valid_batches[:valid_batches]
        try:
            for module in norms:
                module.reset_running_stats()
                module.momentum = None  # a cumulative average over the batches
            supernet.train()
            with torch.inference_mode():
                for images, _ in recalibration_batches(enas, train_batches):
                    supernet(images.contiguous(memory_format=enas.memory_format), genotype)
                supernet.eval()
                counts = []
                for images, labels in batches:
                    images = images.contiguous(memory_format=enas.memory_format)
                    correct = (supernet(images, genotype).argmax(1) == labels).sum().item()
                    counts.append((int(correct), labels.numel()))
        finally:
            for module, (mean, var, momentum) in zip(norms, saved, strict=True):
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)
                module.momentum = momentum
        return accuracy_of(counts)
    return protocol


def negative_loss(enas: EnasEvaluator, genotype: Genotype, batches: Sequence[Batch]) -> float:
    """Minus the mean cross-entropy of `genotype` on `batches` under the shared weights, batch
    statistics as in the search: a continuous score, where one batch's accuracy moves in
    steps of 1/64."""
    [outcomes] = enas.batch_outcomes([genotype], [batches])
    return -sum(loss for _, _, loss in outcomes) / sum(seen for _, seen, _ in outcomes)


def loss_in_turn(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
    """The search's batch (the next in turn), scored by the loss instead of the accuracy."""
    batch = enas.valid_batches[enas.valid_cursor % len(enas.valid_batches)]
    enas.valid_cursor += 1
    return negative_loss(enas, genotype, [batch])


def shared_loss(count: int | None) -> Callable[[EnasEvaluator, Genotype, int], float]:
    """The loss on the first `count` validation batches (None: the whole split)."""
    def protocol(enas: EnasEvaluator, genotype: Genotype, index: int) -> float:
        return negative_loss(enas, genotype, enas.valid_batches[:count])
    return protocol


_recalibration: list[Batch] = []


def recalibration_batches(enas: EnasEvaluator, count: int) -> list[Batch]:
    """The first `count` training batches of a fixed order, loaded once."""
    if len(_recalibration) < count:
        _recalibration.clear()
        for batch in enas.data.train_loader(enas.options.batch_size, seed=12345):
            _recalibration.append(batch)
            if len(_recalibration) == count:
                break
    return _recalibration[:count]


PROTOCOLS: dict[str, Callable[[EnasEvaluator, Genotype, int], float]] = {
    "search: the next batch in turn, batch statistics": search_protocol,
    "one batch, the same for every candidate": shared_batches(1),
    "2 batches, the same for every candidate": shared_batches(2),
    "4 batches, the same for every candidate": shared_batches(4),
    "whole split (derivation)": whole_split,
    "BN recalibrated on 2 train batches, then 1 shared batch": recalibrated(2, 1),
    "BN recalibrated on 4 train batches, then 1 shared batch": recalibrated(4, 1),
    "loss: the next batch in turn (the search's batch)": loss_in_turn,
    "loss: 4 batches, the same for every candidate": shared_loss(4),
    "loss: whole split": shared_loss(None),
}


def references(done: Sequence[dict], repeated: Sequence[dict]) -> dict[str, list[float]]:
    """The standalone accuracies each scoring is ranked against: seed 0's, and the mean of
    seeds 0 and 1 once every candidate was trained with both (a less noisy reference)."""
    first = [row["accuracy"] for row in done]
    second = {row["genotype"]: row["accuracy"] for row in repeated}
    found = {"seed 0": first}
    if done and all(row["genotype"] in second for row in done):
        found["mean of seeds 0 and 1"] = [
            (row["accuracy"] + second[row["genotype"]]) / 2 for row in done]
    return found


def score(enas: EnasEvaluator, genotypes: Sequence[Genotype],
          standalone: dict[str, list[float]], standalone_seconds: float) -> list[dict]:
    """Each protocol's scores, tau against each reference of standalone accuracies, and
    seconds per candidate."""
    rows = []
    for name, protocol in PROTOCOLS.items():
        enas.valid_cursor = 0
        protocol(enas, genotypes[0], 0)  # warm-up (one-off allocations)
        enas.valid_cursor = 0
        scores, seconds = [], []
        for index, genotype in enumerate(genotypes):
            started = time.perf_counter()
            scores.append(protocol(enas, genotype, index))
            seconds.append(time.perf_counter() - started)
        per_candidate = statistics.median(seconds)
        rows.append({"protocol": name, "scores": scores, "seconds": per_candidate,
                     "cost_ratio": standalone_seconds / per_candidate,
                     "agreements": agreements(scores, standalone)})
    params = [float(enas.path_parameters(genotype)) for genotype in genotypes]
    rows.append({"protocol": "parameter count (no training: a reference)", "scores": params,
                 "seconds": None, "cost_ratio": None,
                 "agreements": agreements(params, standalone)})
    return rows


def agreements(scores: Sequence[float], standalone: dict[str, list[float]]) -> dict[str, dict]:
    return {name: agreement(scores, accuracies, seed=0).model_dump()
            for name, accuracies in standalone.items()}


# each loss scoring against the accuracy scoring of the same forward passes
LOSS_PAIRS = {
    "loss: the next batch in turn (the search's batch)":
        "search: the next batch in turn, batch statistics",
    "loss: 4 batches, the same for every candidate": "4 batches, the same for every candidate",
    "loss: whole split": "whole split (derivation)",
}


def interval_percentiles() -> list[float]:
    """The percentiles that bound a `CONFIDENCE` interval (2.5 and 97.5 for 95%)."""
    tail = (1 - CONFIDENCE) / 2 * 100
    return [tail, 100 - tail]


def paired_gain(first: Sequence[float], second: Sequence[float], reference: Sequence[float]
                ) -> dict:
    """How much higher `second`'s tau against `reference` is than `first`'s, with its
    `CONFIDENCE` interval and the share of positive gains over the same bootstrap resamples of the
    candidates (paired: both scorings rank the same resampled cells)."""
    a, b, ref = (np.asarray(values, dtype=float) for values in (first, second, reference))
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picked = rng.integers(0, len(ref), len(ref))
        tau_a, tau_b = kendall(a[picked], ref[picked]), kendall(b[picked], ref[picked])
        if tau_a is not None and tau_b is not None:
            gains.append(tau_b - tau_a)
    low, high = np.percentile(gains, interval_percentiles())
    return {"gain": kendall(b, ref) - kendall(a, ref), "low": float(low), "high": float(high),
            "positive": float(np.mean(np.asarray(gains) > 0))}


CURVE_DRAWS = 200
"""Random draws of the scored batches per point of the batch curve."""
GAIN_RESAMPLES, GAIN_DRAWS = 400, 50
"""The one-batch loss-over-accuracy gain: bootstrap resamples of the candidates, and batch
draws per resample."""


def split_outcomes(enas: EnasEvaluator, genotypes: Sequence[Genotype]) -> list:
    """(correct, seen, summed cross-entropy) of every candidate on every validation batch."""
    return enas.batch_outcomes(genotypes, [enas.valid_batches] * len(genotypes))


def batch_curve(outcomes: Sequence, reference: Sequence[float], seconds_per_batch: float,
                standalone_seconds: float) -> list[dict]:
    """How tau against `reference` grows with the validation batches each candidate is scored
    on: for k = 1, 2, 4, ... batches, the mean tau (and the 2.5th and 97.5th percentiles) over
    `CURVE_DRAWS` draws of k distinct batches, each candidate its own (as a search scores the
    next batches in turn) or the same for every candidate; by accuracy and by minus the mean
    cross-entropy. `outcomes` (`split_outcomes`) come from one pass over the split, so each
    draw only re-adds them."""
    outcomes = np.asarray(outcomes, dtype=float)  # (candidates, batches, [correct, seen, loss])
    candidates, batches = outcomes.shape[:2]
    rng = np.random.default_rng(0)
    ks = sorted({k for k in (1, 2, 4, 8) if k < batches} | {batches})
    rows = []
    for k in ks:
        row = {"batches": k, "seconds": k * seconds_per_batch,
               "cost_ratio": standalone_seconds / (k * seconds_per_batch)}
        for draw_kind in ("own", "shared"):
            taus: dict[str, list[float]] = {"accuracy": [], "loss": []}
            for _ in range(CURVE_DRAWS if k < batches else 1):
                if draw_kind == "shared":
                    picked = np.tile(rng.choice(batches, k, replace=False), (candidates, 1))
                else:
                    picked = np.stack([rng.choice(batches, k, replace=False)
                                       for _ in range(candidates)])
                summed = np.take_along_axis(outcomes, picked[:, :, None], axis=1).sum(axis=1)
                for kind, scores in (("accuracy", summed[:, 0] / summed[:, 1]),
                                     ("loss", -summed[:, 2] / summed[:, 1])):
                    tau = kendall(scores, reference)
                    if tau is not None:
                        taus[kind].append(tau)
            for kind, values in taus.items():
                low, high = np.percentile(values, interval_percentiles())
                row[f"{draw_kind}_{kind}"] = {"mean": float(np.mean(values)),
                                              "low": float(low), "high": float(high)}
        rows.append(row)
    return rows


def one_batch_gain(outcomes: Sequence, reference: Sequence[float]) -> dict:
    """The loss's expected one-batch tau minus the accuracy's, each candidate scored on a batch
    of its own drawn at random (as a search scores it): over the candidates as measured, and
    its 95% interval and share of positive gains over `GAIN_RESAMPLES` bootstrap resamples of
    the candidates (both scorings averaged over the same `GAIN_DRAWS` batch draws)."""
    outcomes = np.asarray(outcomes, dtype=float)
    ref = np.asarray(reference, dtype=float)
    candidates, batches = outcomes.shape[:2]
    rng = np.random.default_rng(0)

    def gain(rows: np.ndarray) -> float | None:
        gains = []
        for _ in range(GAIN_DRAWS):
            picked = outcomes[rows, rng.integers(0, batches, len(rows))]
            tau_accuracy = kendall(picked[:, 0] / picked[:, 1], ref[rows])
            tau_loss = kendall(-picked[:, 2] / picked[:, 1], ref[rows])
            if tau_accuracy is not None and tau_loss is not None:
                gains.append(tau_loss - tau_accuracy)
        return float(np.mean(gains)) if gains else None

    measured = gain(np.arange(candidates))
    resampled = [g for g in (gain(rng.integers(0, candidates, candidates))
                             for _ in range(GAIN_RESAMPLES)) if g is not None]
    low, high = np.percentile(resampled, interval_percentiles())
    return {"gain": measured, "low": float(low), "high": float(high),
            "positive": float(np.mean(np.asarray(resampled) > 0))}


def standalone_rank(scores: Sequence[float], reference: Sequence[float]) -> int:
    """The standalone rank (1: the most accurate) of the candidate that `scores` puts first."""
    first = max(range(len(scores)), key=scores.__getitem__)
    return 1 + sum(value > reference[first] for value in reference)


def shard_of(text: str) -> tuple[int, int]:
    """`i/n` with 0 <= i < n, for --shard."""
    try:
        shard, shards = (int(value) for value in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n, e.g. 0/2, got {text!r}") from None
    if not 0 <= shard < shards:
        raise argparse.ArgumentTypeError(f"expected 0 <= i < n, got {text!r}")
    return shard, shards


def seed_agreement(done: Sequence[dict], repeated: Sequence[dict]) -> dict:
    """Kendall's tau between the seed-0 and seed-1 standalone accuracies of the candidates
    trained twice: the most any scoring can agree with a single seed's ranking."""
    first = {row["genotype"]: row["accuracy"] for row in done}
    return agreement([first[row["genotype"]] for row in repeated],
                     [row["accuracy"] for row in repeated], seed=0).model_dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(DATASETS), default="cifar",
                        help="the peers' CIFAR subset, or the bundled digits")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--standalone-epochs", type=int, default=None,
                        help="the standalone proxy recipe's epochs (default: 2 on the CIFAR "
                        "subset, the standalone evaluator's 3 on digits)")
    parser.add_argument("--fixed-topology-epochs", type=int, default=0,
                        help="the supernet's topology warm-up (evaluator.fixed_topology_epochs)")
    parser.add_argument("--path-sampling", choices=["uniform", "fair"], default="uniform",
                        help="the supernet's evaluator.path_sampling")
    parser.add_argument("--supernet-seed", type=int, default=0,
                        help="the supernet's seed (initial weights, paths, data order); the "
                        "data split and the standalone results stay seed 0's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--shard", type=shard_of, default=(0, 1),
                        help="i/n: train candidates i, i+n, ...")
    parser.add_argument("--standalone-seconds", type=float, default=None,
                        help="stop starting standalone candidates after this many seconds")
    parser.add_argument("--repeat", type=int, default=0,
                        help="train the first N candidates again with seed 1: how far the "
                        "standalone accuracies agree with themselves")
    parser.add_argument("--cache", type=Path, default=None,
                        help="kept between runs; the standalone results are committed, the "
                        "supernet's weights (*.pt) are not (default: bench/results/ranking, "
                        "and its digits/ for digits)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the docs section from the run's kept scores file")
    args = parser.parse_args()
    if args.supernet_seed < 0:
        parser.error("--supernet-seed: a seed >= 0")
    digits = args.dataset == "digits"
    if args.standalone_epochs is None:
        args.standalone_epochs = DEFAULT_STANDALONE_EPOCHS[args.dataset]
    if args.cache is None:
        args.cache = ROOT / "bench" / "results" / "ranking" / ("digits" if digits else "")
    config = bench_config(args.supernet_epochs, args.standalone_epochs,
                          args.fixed_topology_epochs, args.path_sampling, args.dataset)
    section = SECTIONS[args.dataset] + variant_title(args)
    other_reference = (args.standalone_epochs
                       if args.standalone_epochs != DEFAULT_STANDALONE_EPOCHS[args.dataset]
                       else None)
    if args.render:
        kept = scores_file(args.cache, args.supernet_epochs, config.evaluator, other_reference,
                           args.supernet_seed)
        if not kept.exists():
            sys.exit(f"--render: no {kept}; run --parts score with these options first")
        write_section(section, render(json.loads(kept.read_text()), args))
        return
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        sys.exit(f"--parts: a subset of {','.join(PARTS)}")
    shard, shards = args.shard
    if not digits and not CIFAR.exists():
        sys.exit(f"bench/ranking.py needs {CIFAR} (the peers' data)")
    set_threads(args.threads)
    before = load_average()
    data = open_dataset(config)
    genotypes = candidates(config, args.candidates)
    if "supernet" in parts or "score" in parts:
        enas = trained_supernet(supernet_config(config, args.supernet_seed), data, args.cache,
                                args.supernet_epochs)
    else:
        enas = EnasEvaluator(config, data)  # only for the exported layout and its counts
    started = time.perf_counter()
    if "standalone" in parts:  # every candidate with seed 0, then the first --repeat with 1
        jobs = [(index, genotype, 0) for index, genotype in enumerate(genotypes)]
        jobs += [(index, genotype, 1) for index, genotype in enumerate(genotypes[:args.repeat])]
        for index, genotype, seed in jobs:
            if index % shards != shard or standalone_file(
                    args.cache, genotype, args.standalone_epochs, seed).exists():
                continue
            if (args.standalone_seconds is not None
                    and time.perf_counter() - started > args.standalone_seconds):
                break
            row = train_standalone(enas, config, data, genotype, args.cache, seed)
            print(json.dumps(row), file=sys.stderr, flush=True)
    files = [standalone_file(args.cache, g, args.standalone_epochs) for g in genotypes]
    repeats = [standalone_file(args.cache, g, args.standalone_epochs, seed=1)
               for g in genotypes[:args.repeat]]
    repeated = [json.loads(path.read_text()) for path in repeats if path.exists()]
    done = [json.loads(path.read_text()) for path in files if path.exists()]
    result = {"machine": machine_info(), "command": command_line(), "date": today(),
              "load_average_before": before, "candidates": len(genotypes),
              "train_size": data.info.train_size, "valid_size": data.info.valid_size,
              "standalone_done": len(done), "standalone": done, "repeated": repeated}
    if "score" in parts and len(done) == len(genotypes):
        # the cost ratio's baseline, timed here at the scoring's threads: the candidate of
        # median size trained again with the recipe (the cached times came from other runs)
        by_size = sorted(genotypes, key=enas.path_parameters)
        timed = time.perf_counter()
        train_standalone(enas, config, data, by_size[len(by_size) // 2], Path(tempfile.mkdtemp()))
        standalone_seconds = time.perf_counter() - timed
        reference = references(done, repeated)
        protocols = score(enas, genotypes, reference, standalone_seconds)
        result |= {
            "supernet": supernet_facts(args.cache, args.supernet_epochs, config.evaluator,
                                       args.supernet_seed),
            "standalone_seconds": standalone_seconds,
            "protocols": protocols,
            "split_outcomes": split_outcomes(enas, genotypes),
            "seed_agreement": seed_agreement(done, repeated),
            "seconds_per_batch": protocols[0]["seconds"],
            "load_average_after": load_average(),
        }
        kept = scores_file(args.cache, args.supernet_epochs, config.evaluator, other_reference,
                           args.supernet_seed)
        kept.write_text(json.dumps(result, indent=1) + "\n")
        if not args.no_docs:
            write_section(section, render(result, args))
    print(json.dumps(result, indent=2))


def scores_file(cache: Path, epochs: int, evaluator: EvaluatorConfig,
                standalone_epochs: int | None = None, seed: int = 0) -> Path:
    """Where a scoring run keeps its result (committed, unlike the supernet it scored with);
    `standalone_epochs`: a reference trained otherwise than the dataset's default recipe;
    `seed`: the supernet's."""
    path = supernet_path(cache, epochs, evaluator, seed)
    reference = f"-standalone-{standalone_epochs}" if standalone_epochs else ""
    return path.with_name(path.stem.replace("supernet", "scores", 1) + reference + ".json")


def variant_title(args: argparse.Namespace) -> str:
    """What a section's title adds for a supernet trained otherwise than the default, or a
    standalone reference of other than the dataset's default epochs."""
    title = ""
    if args.standalone_epochs != DEFAULT_STANDALONE_EPOCHS[args.dataset]:
        title += f", standalone reference of {args.standalone_epochs} epochs"
    if args.supernet_epochs != 10:
        title += f", a supernet of {args.supernet_epochs} epochs"
    if args.fixed_topology_epochs:
        title += f", topology warm-up of {args.fixed_topology_epochs} epochs"
    if args.path_sampling == "fair":
        title += ", fair paths"
    if args.supernet_seed:
        title += f", supernet seed {args.supernet_seed}"
    return title


def render(result: dict, args: argparse.Namespace) -> str:
    supernet, done = result["supernet"], result["standalone"]
    accuracies = [row["accuracy"] for row in done]
    names = list(result["protocols"][0]["agreements"])
    lines = [
        f"Run on {result['date']} with `{result['command']}` on {cpu_text(result['machine'])}, "
        f"{result['machine']['threads']} "
        f"torch thread(s), load average before {result['load_average_before']}, after "
        f"{result['load_average_after']}. Supernet: "
        + ("the network of a default ENAS search on digits (ENAS's five ops, width 16, 5 cells, "
           if args.dataset == "digits" else
           "the peers' CIFAR configuration (ENAS's five ops, width 16, 8 cells, ")
        + f"batch 64), {supernet['epochs']} epochs on "
        + ("fair paths (each minibatch trains one path per op, together using every op of "
           "every block once, and steps on their mean loss; " if args.path_sampling == "fair"
           else "uniformly sampled paths (")
        + f"topology warm-up: {args.fixed_topology_epochs} epochs; seed "
        f"{supernet.get('seed', 0)}; "
        f"{supernet['seconds']:.0f} s; mean training loss of the last epoch "
        f"{supernet['losses'][-1]:.2f}). Standalone: {len(done)} uniformly sampled cells, each "
        f"trained from scratch in the layout a search exports, seed 0"
        + (" (and again with seed 1)" if len(names) > 1 else "") + ", "
        f"{args.standalone_epochs} epochs of SGD (batch 64, lr 0.05, cosine, "
        + ("random translation" if args.dataset == "digits" else "crop and flip") + ") "
        f"on the same {result.get('train_size', 4085):,} training images, accuracy on the same "
        f"{result.get('valid_size', 1000):,} held-out images: "
        f"{min(accuracies):.3f} to {max(accuracies):.3f} (median "
        f"{statistics.median(accuracies):.3f}). The cost ratio's standalone time: the candidate of "
        f"median size trained again with that recipe in this process, "
        f"{result['standalone_seconds']:.0f} s.",
        "",
        "Kendall's tau of each shared-weight scoring against the standalone accuracies (95% "
        "bootstrap interval over the candidates), "
        + ("of seed 0 and of the mean of seeds 0 and 1" if len(names) > 1 else "of seed 0")
        + "; seconds: median per candidate; cost ratio: standalone training seconds / scoring "
        "seconds.",
        "",
        markdown_table(["scoring", *(f"tau, {name} (95% interval)" for name in names),
                        "s / candidate", "cost ratio"], [
            [row["protocol"], *(tau_text(row["agreements"][name]) for name in names),
             "-" if row["seconds"] is None else f"{row['seconds']:.3f}",
             "-" if row["cost_ratio"] is None else f"{row['cost_ratio']:.0f}x"]
            for row in result["protocols"]
        ], align="l" + "r" * (len(names) + 2)),
    ]
    scores = {row["protocol"]: row["scores"] for row in result["protocols"]}
    if all(name in scores for pair in LOSS_PAIRS.items() for name in pair):
        reference = references(done, result["repeated"])[names[-1]]
        gains = []
        for loss, accuracy in LOSS_PAIRS.items():
            gain = paired_gain(scores[accuracy], scores[loss], reference)
            gains.append(f"{loss.removeprefix('loss: ')} {gain['gain']:+.2f} ({gain['low']:+.2f} "
                         f"to {gain['high']:+.2f}, positive in {gain['positive']:.0%})")
        firsts = [f"by the {kind}, {standalone_rank(scores[name], reference)}"
                  for kind, name in (("accuracy", "whole split (derivation)"),
                                     ("loss", "loss: whole split"))]
        lines += ["", f"The loss against the accuracy of the same passes, tau against {names[-1]}, "
                  "paired over the same bootstrap resamples of the cells (gain, 95% interval, "
                  "share of resamples with a gain): " + "; ".join(gains) + ". The cell the "
                  "whole split puts first, as derivation picks it, ranks among the "
                  f"{len(reference)} by standalone accuracy ({names[-1]}): "
                  + "; ".join(firsts) + "."]
    if "split_outcomes" in result:
        reference = references(done, result["repeated"])[names[-1]]
        lines += ["", render_curve(result, reference, names[-1])]
    if result["repeated"]:
        which = "all" if len(result["repeated"]) == len(done) else "the first"
        lines += ["", f"The standalone accuracies themselves: {which} {len(result['repeated'])} "
                  "candidates trained again with seed 1 (initial weights and data order) rank as "
                  f"with seed 0 at Kendall's tau {tau_text(result['seed_agreement'])}: how far "
                  "one seed's ranking can be trusted."]
    return "\n".join(lines)


def render_curve(result: dict, reference: Sequence[float], name: str) -> str:
    """The batch curve as a paragraph and a table, and the one-batch gain of the loss."""
    def cell(value: dict) -> str:
        return f"{value['mean']:.2f} ({value['low']:.2f} to {value['high']:.2f})"

    curve = batch_curve(result["split_outcomes"], reference, result["seconds_per_batch"],
                        result["standalone_seconds"])
    gain = one_batch_gain(result["split_outcomes"], reference)
    return "\n".join([
        f"Tau against {name} by the number of validation batches (of 64) each candidate "
        f"is scored on: the mean over {CURVE_DRAWS} random draws of the batches (2.5th to "
        "97.5th percentile over the draws: what the choice of batches alone moves), each "
        "candidate its own batches (as the search scores the next batch in turn) or the same "
        "batches for all; by the accuracy and by the loss. Seconds and cost ratio: k times the "
        "search's one-batch scoring.",
        "",
        markdown_table(["batches", "own: accuracy", "own: loss", "shared: accuracy",
                        "shared: loss", "s / candidate", "cost ratio"], [
            [str(row["batches"]), cell(row["own_accuracy"]), cell(row["own_loss"]),
             cell(row["shared_accuracy"]), cell(row["shared_loss"]), f"{row['seconds']:.3f}",
             f"{row['cost_ratio']:.0f}x"]
            for row in curve
        ], align="rrrrrrr"),
        "",
        f"The loss against the accuracy on one batch of each candidate's own (the search's "
        f"scoring), in expectation over the batch drawn: {gain['gain']:+.2f} (95% interval over "
        f"{GAIN_RESAMPLES} bootstrap resamples of the cells {gain['low']:+.2f} to "
        f"{gain['high']:+.2f}, positive in {gain['positive']:.0%}).",
    ])


if __name__ == "__main__":
    main()
