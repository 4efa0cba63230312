"""Ranking fidelity against a longer standalone reference, from the scores already kept.

`bench/ranking.py` keeps, for each supernet it scored (`scores-*.json` of the CIFAR cache),
every candidate's outcome on every validation batch under the shared weights. This script ranks
those same outcomes against the same candidates trained from scratch for `--epochs` epochs
instead of the default recipe's 2 (trained by `bench/ranking.py --parts standalone
--standalone-epochs N`, kept beside the 2-epoch results): no supernet is trained or scored
again. It answers whether the short reference is what holds tau down.

    .venv/bin/python bench/ranking_references.py [--epochs 5] [--no-docs]

Writes `bench/results/ranking/references-N-epochs.json` and the docs section "Ranking fidelity
against a standalone reference of N epochs".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import ROOT, command_line, markdown_table, tau_text, today, write_section
from ranking import (
    DEFAULT_STANDALONE_EPOCHS,
    batch_curve,
    bench_config,
    candidates,
    references,
    standalone_file,
)

from nas.ranking import agreement

CACHE = ROOT / "bench" / "results" / "ranking"
SHORT = DEFAULT_STANDALONE_EPOCHS["cifar"]


def kept_scores(cache: Path) -> list[Path]:
    """The kept scores files of the default (2-epoch) reference, one per supernet (a recipe's
    other seeds after it)."""
    return sorted((path for path in cache.glob("scores-*.json")
                   if "-standalone-" not in path.stem),
                  key=lambda path: (path.stem.split("-seed")[0], path.stem))


def supernet_label(path: Path, scores: dict) -> str:
    """The supernet a scores file ranks with, as the summary tables name it: its epochs and
    seed as kept, its path sampling and topology warm-up as `bench/ranking.py` names the
    file."""
    epochs, seed = scores["supernet"]["epochs"], scores["supernet"].get("seed", 0)
    seeded = f", seed {seed}" if seed else ""
    if "-fair" in path.stem:
        return f"fair paths, {epochs} epochs{seeded}"
    if "-topology-" in path.stem:
        warm_up = path.stem.split("-topology-")[1].split("-")[0]
        return f"topology warm-up {warm_up} of {epochs} epochs{seeded}"
    return f"uniform paths, {epochs} epochs{seeded}"


def trained(cache: Path, genotypes: Sequence, epochs: int, seed: int) -> list[dict] | None:
    """Every candidate's standalone result of `epochs` epochs and `seed`, or None if one is
    missing."""
    paths = [standalone_file(cache, genotype, epochs, seed) for genotype in genotypes]
    if not all(path.exists() for path in paths):
        return None
    return [json.loads(path.read_text()) for path in paths]


def whole_split(outcomes: np.ndarray) -> dict[str, np.ndarray]:
    """Each candidate's whole-split accuracy and minus its mean loss."""
    summed = outcomes.sum(axis=1)
    return {"accuracy": summed[:, 0] / summed[:, 1], "loss": -summed[:, 2] / summed[:, 1]}


def supernet_row(path: Path, scores: dict, reference: Sequence[float], short: Sequence[float]
                 ) -> dict:
    """One supernet's scorings ranked against `reference`: the whole split with its bootstrap
    interval, and the expected tau over batch draws of one own batch (the search's scoring
    before 2026-12-06), one and 4 shared batches; and the whole split's loss against `short`
    (the default recipe's seed 0: a reference of one seed too)."""
    outcomes = np.asarray(scores["split_outcomes"], dtype=float)
    curve = {row["batches"]: row for row in batch_curve(outcomes, reference, 1.0, 1.0)}
    whole = whole_split(outcomes)
    return {
        "supernet": supernet_label(path, scores),
        "own_1_accuracy": curve[1]["own_accuracy"],
        "shared_1_loss": curve[1]["shared_loss"],
        "shared_4_loss": curve[4]["shared_loss"],
        "whole_accuracy": agreement(whole["accuracy"], reference, seed=0).model_dump(),
        "whole_loss": agreement(whole["loss"], reference, seed=0).model_dump(),
        "whole_loss_short": agreement(whole["loss"], short, seed=0).model_dump(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5,
                        help="the longer reference's epochs (trained by bench/ranking.py)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    files = kept_scores(args.cache)
    if not files:
        sys.exit(f"no kept scores in {args.cache}: run bench/ranking.py --parts score first")
    genotypes = candidates(bench_config(10, SHORT, 0), 32)
    longer = trained(args.cache, genotypes, args.epochs, seed=0)
    if longer is None:
        sys.exit(f"not every candidate has its {args.epochs}-epoch result in {args.cache}: run "
                 f"bench/ranking.py --parts standalone --standalone-epochs {args.epochs}")
    longer_seed1 = trained(args.cache, genotypes, args.epochs, seed=1)
    reference = references(longer, longer_seed1 or [])
    target_name = "mean of seeds 0 and 1" if len(reference) > 1 else "seed 0"
    target = reference[target_name]
    short_seed0 = trained(args.cache, genotypes, SHORT, seed=0)
    if short_seed0 is None:
        sys.exit(f"not every candidate has its {SHORT}-epoch result in {args.cache}")
    short = references(short_seed0, trained(args.cache, genotypes, SHORT, seed=1) or [])
    rows = []
    for path in files:
        scores = json.loads(path.read_text())
        if [row["genotype"] for row in scores["standalone"]] != [g.id for g in genotypes]:
            sys.exit(f"{path.name} scored other candidates than bench/ranking.py's 32")
        rows.append(supernet_row(path, scores, target, short["seed 0"]) | {"file": path.name})
    params = [float(row["params"]) for row in longer]
    result = {
        "date": today(), "command": command_line(), "epochs": args.epochs,
        "reference": target_name,
        "accuracy_range": [min(target), max(target)],
        "short_accuracy_range": [min(short["seed 0"]), max(short["seed 0"])],
        "references_agree": {name: agreement(values, target, seed=0).model_dump()
                             for name, values in short.items()},
        "params": agreement(params, target, seed=0).model_dump(),
        "supernets": rows,
    }
    out = args.cache / f"references-{args.epochs}-epochs.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_docs:
        write_section(f"Ranking fidelity against a standalone reference of {args.epochs} epochs "
                      "(bench/ranking_references.py)", render(result))
    print(json.dumps(result, indent=2))


def render(result: dict) -> str:
    epochs, low, high = result["epochs"], *result["accuracy_range"]
    short_low, short_high = result["short_accuracy_range"]
    agree = result["references_agree"]
    lines = [
        f"Run on {result['date']} with `{result['command']}`. The 32 cells of `bench/ranking.py`"
        f" trained from scratch again with its recipe for {epochs} epochs instead of {SHORT} "
        f"(`bench/ranking.py --parts standalone --standalone-epochs {epochs}`; "
        f"{result['reference']}): "
        f"accuracy {low:.3f} to {high:.3f} on the held-out split ({SHORT} epochs: "
        f"{short_low:.3f} to {short_high:.3f}). The {SHORT}-epoch "
        f"reference ranks them as the {epochs}-epoch one ({result['reference']}) at tau "
        + ", ".join(f"{tau_text(value)} (its {name})" for name, value in agree.items())
        + f"; the parameter count at {tau_text(result['params'])}.",
        "",
        f"Each supernet's kept scores (`bench/ranking.py`'s, no new scoring; a recipe's other "
        "seeds follow it: sections \"Ranking fidelity across supernet seeds\") "
        f"against the {epochs}-epoch reference: Kendall's tau, for the batch draws their mean "
        "over 200 draws, for the whole split with its 95% bootstrap interval.",
        "",
    ]
    table = [[row["supernet"], f"{row['own_1_accuracy']['mean']:.2f}",
              f"{row['shared_1_loss']['mean']:.2f}", f"{row['shared_4_loss']['mean']:.2f}",
              tau_text(row["whole_accuracy"]), tau_text(row["whole_loss"]),
              tau_text(row["whole_loss_short"])]
             for row in result["supernets"]]
    lines.append(markdown_table(
        ["supernet", "own batch, accuracy", "shared batch, loss", "4 shared, loss",
         "whole split, accuracy", "whole split, loss",
         f"whole split, loss, against {SHORT} epochs (seed 0)"], table, align="lrrrrrr"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
