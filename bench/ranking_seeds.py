"""Ranking fidelity across supernet seeds: how much of one supernet's tau is its training run,
and do several supernets ranking together do better?

`bench/ranking.py --supernet-seed S` trains one supernet recipe again from seed S (initial
weights, paths, data order; the same data split) and keeps its scores: every candidate's outcome
on every validation batch. This script reads the kept scores of one recipe's seeds (by default
uniform paths for 10 epochs: `scores-10-epochs.json`, `scores-10-epochs-seed1.json`, ...) and
ranks against the standalone references (the 2-epoch mean of two seeds; the 5-epoch one where
it was trained):

- each seed alone: one batch of each candidate's own (ENAS's scoring), one and 4 batches shared
  by every candidate, the whole split, each by the accuracy and by the loss; their spread;
- ensembles of k of the seeds: each candidate's outcomes summed over the k supernets on the
  same batches (by the loss, the mean of their losses), the mean tau over every k-subset; it
  would cost k supernets' training and k times the scoring.

No supernet is trained or scored here:

    .venv/bin/python bench/ranking_seeds.py [--recipe 10-epochs] [--no-docs]

Writes `bench/results/ranking/seeds-<recipe>.json` and the docs section "Ranking fidelity
across supernet seeds" (another recipe's: "..., recipe <recipe>").
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from _common import ROOT, command_line, markdown_table, today, write_section
from ranking import DEFAULT_STANDALONE_EPOCHS, batch_curve, bench_config, candidates, references
from ranking_references import trained, whole_split

from nas.ranking import agreement

CACHE = ROOT / "bench" / "results" / "ranking"
DEFAULT_RECIPE = "10-epochs"
TITLE = "Ranking fidelity across supernet seeds (bench/ranking_seeds.py)"
SHORT = DEFAULT_STANDALONE_EPOCHS["cifar"]
LONGER = 5
# the scorings, each by the accuracy and by the loss: (name, batches drawn, own or shared)
SCORINGS = (("own batch", 1, "own"), ("shared batch", 1, "shared"),
            ("4 shared batches", 4, "shared"), ("whole split", None, "shared"))
KINDS = ("accuracy", "loss")


def seed_files(cache: Path, recipe: str) -> dict[int, Path]:
    """The kept scores of `recipe`'s supernet seeds, by seed (seed 0's file has no suffix)."""
    found = {0: cache / f"scores-{recipe}.json"}
    for path in cache.glob(f"scores-{recipe}-seed*.json"):
        suffix = path.stem.removeprefix(f"scores-{recipe}-seed")
        if suffix.isdigit():
            found[int(suffix)] = path
    return {seed: path for seed, path in sorted(found.items()) if path.exists()}


def taus(outcomes: np.ndarray, reference: list[float]) -> dict[str, float]:
    """Each scoring's tau against `reference` by the accuracy and by the loss, keyed as "whole
    split, loss": batch draws as their mean over `bench/ranking.py`'s draws, the whole split
    once."""
    curve = {row["batches"]: row for row in batch_curve(outcomes, reference, 1.0, 1.0)}
    whole = whole_split(outcomes)
    found = {}
    for name, batches, draw in SCORINGS:
        for kind in KINDS:
            found[f"{name}, {kind}"] = (
                agreement(whole[kind], reference, seed=0).kendall_tau if batches is None
                else curve[batches][f"{draw}_{kind}"]["mean"])
    return found


def ensemble_rows(outcomes: dict[int, np.ndarray], reference: list[float]) -> list[dict]:
    """For k = 1..n supernets: each scoring's tau, the mean over every k-subset of the seeds
    (with its lowest and highest), the candidates' outcomes summed over the subset."""
    rows = []
    for k in range(1, len(outcomes) + 1):
        subsets = list(itertools.combinations(sorted(outcomes), k))
        found = [taus(sum(outcomes[seed] for seed in subset), reference) for subset in subsets]
        rows.append({"supernets": k, "subsets": [list(subset) for subset in subsets],
                     "taus": {name: {"mean": statistics.fmean(row[name] for row in found),
                                     "low": min(row[name] for row in found),
                                     "high": max(row[name] for row in found)}
                              for name in found[0]}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help="the supernet recipe as bench/ranking.py names its scores file "
                        "(scores-<recipe>.json, scores-<recipe>-seedS.json)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    files = seed_files(args.cache, args.recipe)
    if len(files) < 2:
        sys.exit(f"fewer than two seeds of scores-{args.recipe} in {args.cache}: run "
                 "bench/ranking.py --parts supernet,score --supernet-seed 1 (with the recipe's "
                 "options) first")
    genotypes = candidates(bench_config(10, SHORT, 0), 32)
    short = [trained(args.cache, genotypes, SHORT, seed) for seed in (0, 1)]
    if short[0] is None or short[1] is None:
        sys.exit(f"not every candidate has its {SHORT}-epoch results of seeds 0 and 1 in "
                 f"{args.cache}: run bench/ranking.py --parts standalone --repeat 32")
    targets = {f"{SHORT} epochs, mean of seeds 0 and 1":
               references(short[0], short[1])["mean of seeds 0 and 1"]}
    longer = trained(args.cache, genotypes, LONGER, seed=0)
    if longer is not None:
        targets[f"{LONGER} epochs, seed 0"] = [row["accuracy"] for row in longer]
    outcomes, supernets = {}, {}
    for seed, path in files.items():
        scores = json.loads(path.read_text())
        if [row["genotype"] for row in scores["standalone"]] != [g.id for g in genotypes]:
            sys.exit(f"{path.name} scored other candidates than bench/ranking.py's 32")
        outcomes[seed] = np.asarray(scores["split_outcomes"], dtype=float)
        supernets[seed] = {"file": path.name, "seconds": scores["supernet"]["seconds"],
                           "last_loss": scores["supernet"]["losses"][-1]}
    result = {
        "date": today(), "command": command_line(), "recipe": args.recipe,
        "supernets": supernets,
        "references": {name: {"by_seed": {seed: taus(values, target)
                                          for seed, values in outcomes.items()},
                              "ensembles": ensemble_rows(outcomes, target)}
                       for name, target in targets.items()},
    }
    out = args.cache / f"seeds-{args.recipe}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_docs:
        title = TITLE if args.recipe == DEFAULT_RECIPE else f"{TITLE}, recipe {args.recipe}"
        write_section(title, render(result))
    print(json.dumps(result, indent=2))


def render(result: dict) -> str:
    supernets = result["supernets"]
    seeds = ", ".join(str(seed) for seed in supernets)
    lines = [
        f"Run on {result['date']} with `{result['command']}`: the kept scores of the supernet "
        f"recipe `{result['recipe']}` of `bench/ranking.py`, trained from seeds {seeds} "
        "(initial weights, paths and data order; the same data split): training "
        + ", ".join(f"{value['seconds']:.0f} s" for value in supernets.values())
        + ", last epoch's loss "
        + ", ".join(f"{value['last_loss']:.2f}" for value in supernets.values())
        + ". Kendall's tau of each scoring against the standalone reference, by the accuracy / "
        "by the loss (batch draws: the mean over 200 draws), each seed alone, their mean and "
        "range, then ensembles of k supernets: each candidate's outcomes summed over them on "
        "the same batches, the mean tau over every k-subset of the seeds, at k times the "
        "training and the scoring.",
    ]
    for name, found in result["references"].items():
        by_seed = found["by_seed"]
        table = [[f"seed {seed}", *(pair(values, scoring) for scoring, _, _ in SCORINGS)]
                 for seed, values in by_seed.items()]
        spread = found["ensembles"][0]["taus"]
        table.append(["mean of the seeds (lowest to highest)", *(
            " / ".join(f"{spread[f'{scoring}, {kind}']['mean']:.2f} "
                       f"({spread[f'{scoring}, {kind}']['low']:.2f} to "
                       f"{spread[f'{scoring}, {kind}']['high']:.2f})" for kind in KINDS)
            for scoring, _, _ in SCORINGS)])
        table += [[f"ensemble of {row['supernets']}", *(
            pair({key: value["mean"] for key, value in row["taus"].items()}, scoring)
            for scoring, _, _ in SCORINGS)]
            for row in found["ensembles"] if row["supernets"] > 1]
        lines += ["", f"Against the standalone accuracies of {name}:", "",
                  markdown_table(["supernets", *(scoring for scoring, _, _ in SCORINGS)], table,
                                 align="lrrrr")]
    return "\n".join(lines)


def pair(values: dict[str, float], scoring: str) -> str:
    """A scoring's tau by the accuracy and by the loss, as "a / b"."""
    return " / ".join(f"{values[f'{scoring}, {kind}']:.2f}" for kind in KINDS)


if __name__ == "__main__":
    main()
