"""What one Ray Tune trial runs: train one candidate, reporting every epoch's metrics.

Epochs before the last are reported as they end, so a scheduler (ASHA) can stop a weak
candidate early; the last report carries the whole `Evaluation` (JSON under `evaluation`). A
candidate that fails while building or training reports FAIL with its error and is not retried:
retries are for workers that die.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.evaluators import Evaluation, StandaloneEvaluator
from nas.train import EpochMetrics
from nas.without_triton import hide_triton_without_gpu
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype

EVALUATION_KEY = "evaluation"


def trial_device() -> torch.device:
    """CUDA when Ray gave this worker a GPU (and torch sees it), else the CPU."""
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train_candidate(trial_config: dict[str, Any], *, search_config: dict[str, Any],
                    data: DataSplits | None, weights_dir: str | None) -> None:
    """Train the candidate in `trial_config["genotype"]`; `data` None loads the dataset by path."""
    from nas.search import open_dataset

    hide_triton_without_gpu()
    config = SearchConfig.model_validate(search_config)
    torch.set_num_threads(max(1, int(config.workers.cpus_per_trial)))
    device = trial_device()
    evaluator = StandaloneEvaluator(
        config, data if data is not None else open_dataset(config),
        Path(weights_dir) if weights_dir else None, device=device,
    )
    genotype = Genotype.from_json(trial_config["genotype"])
    shared = _complexity(evaluator, genotype)
    last_epoch = config.evaluator.epochs

    def report_epoch(metrics: EpochMetrics) -> None:
        if metrics.epoch < last_epoch:  # the last epoch is reported with the evaluation
            tune.report(asdict(metrics) | shared)

    try:
        evaluation = evaluator.evaluate_one(genotype, on_epoch=report_epoch)
    finally:
        evaluator.close()
    where = {"node": ray.util.get_node_ip_address(),
             "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
             "device": str(device), "threads": torch.get_num_threads()}
    evaluation = replace(evaluation, metrics=evaluation.metrics.with_values(worker=where))
    tune.report(final_report(evaluation) | shared)


def final_report(evaluation: Evaluation) -> dict[str, Any]:
    """The last epoch's metrics (0 accuracy for a failure) with the whole evaluation as JSON."""
    history = evaluation.metrics.history or [{}]
    last = {key: value for key, value in history[-1].items() if isinstance(value, int | float)}
    last.setdefault("val_accuracy", 0.0)
    return last | {EVALUATION_KEY: json.dumps(evaluation.to_json())}


def evaluation_from(result: dict[str, Any]) -> Evaluation | None:
    """The evaluation a finished trial reported, or None when it was stopped before its end."""
    if EVALUATION_KEY not in result:
        return None
    return Evaluation(**json.loads(result[EVALUATION_KEY]))


def _complexity(evaluator: StandaloneEvaluator, genotype: Genotype) -> dict[str, int | None]:
    """Parameters and multiply-adds every report carries (a pruned trial's reward needs them)."""
    try:
        model = evaluator.build(genotype)
        info = evaluator.data.info
        return {"params": count_parameters(model), "multiply_adds": count_flops(
            model, (info.in_channels, info.input_size, info.input_size))}
    except Exception:  # evaluate_one reports the same error as the candidate's FAIL
        return {"params": None, "multiply_adds": None}
