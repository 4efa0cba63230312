"""The CUDA paths: AMP training, a Ray trial given a GPU, one candidate out of GPU memory.
They run where torch sees a GPU and are skipped elsewhere (CI has none)."""

import pytest
import torch

from nas.config import parse_config
from nas.data import load_dataset
from nas.evaluators import StandaloneEvaluator
from nas.train import TrainConfig, train_model
from searchspace.references import ENAS_MICRO
from searchspace.zoo import create_network

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_amp_training_on_cuda_learns_digits():
    data = load_dataset("digits", seed=0)
    model = create_network("resnet20", num_classes=10, input_size=8, in_channels=1)
    result = train_model(model, data, TrainConfig(epochs=3, amp=True),
                         device=torch.device("cuda"))
    assert next(model.parameters()).is_cuda
    assert result.final_val_accuracy > 0.8


def test_a_candidate_out_of_gpu_memory_fails_and_the_next_one_trains():
    data = load_dataset("digits", seed=0, limit=512)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, 300 * 2**20 / total))
    try:
        big = StandaloneEvaluator(parse_config({
            "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 512},
            "network": {"cells": 3, "channels": 512}, "dataset": {"name": "digits"}}),
            data, device=torch.device("cuda"))
        small = StandaloneEvaluator(parse_config({
            "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 32},
            "network": {"cells": 1, "channels": 4}, "dataset": {"name": "digits"}}),
            data, device=torch.device("cuda"))
        failed = big.evaluate_one(ENAS_MICRO)
        assert failed.state == "FAIL" and failed.error.startswith("out of memory: ")
        assert small.evaluate_one(ENAS_MICRO).state == "COMPLETE"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def test_a_ray_trial_given_a_gpu_trains_on_cuda(tmp_path):
    ray = pytest.importorskip("ray")
    import workers.ray_evaluator  # noqa: F401  (registers the Ray evaluator)
    from nas.search import create_search, run_search
    from nas.store import Store

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, configure_logging=False,
             _temp_dir=str(tmp_path / "ray"))
    try:
        config = parse_config({
            "seed": 1, "strategy": {"name": "random"}, "space": {"blocks": 2},
            "dataset": {"name": "digits", "limit": 300}, "budget": {"architectures": 2},
            "evaluator": {"epochs": 1, "batch_size": 32}, "network": {"cells": 1, "channels": 4},
            "workers": {"max_concurrent": 1, "cpus_per_trial": 1, "gpus_per_trial": 0.5}})
        with Store(f"sqlite:///{tmp_path / 'nas.db'}") as store:
            record = run_search(store, create_search(store, config).id)
            rows = store.architectures(record.id)
        assert {row.state.value for row in rows} == {"COMPLETE"}
        assert all(row.metrics.worker["device"].startswith("cuda") for row in rows)
    finally:
        ray.shutdown()
