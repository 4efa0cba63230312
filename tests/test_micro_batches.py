"""Micro-batches (`evaluator.micro_batch`): one step per batch at a fraction of the memory."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from nas.micro_batches import micro_batches

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
# a fresh process that runs one `nas` command as its child and reports the child's peak RSS
PEAK = ("import resource, subprocess, sys; result = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); "
        "sys.exit(result.returncode)")


def test_parts_cover_the_batch_and_weigh_by_their_size():
    images, labels = torch.arange(10.0).view(10, 1), torch.arange(10)
    parts = micro_batches(images, labels, 4)
    assert [part_labels.tolist() for _, part_labels, _ in parts] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [share for _, _, share in parts] == [0.4, 0.4, 0.2]
    assert micro_batches(images, labels, None)[0][2] == 1.0
    assert len(micro_batches(images, labels, 10)) == 1


def test_accumulated_gradients_are_the_whole_batchs():
    """Without batch norm, the parts' weighted gradients add up to the batch's gradient."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5))
    images, labels = torch.randn(10, 3, 8, 8), torch.randint(0, 5, (10,))
    nn.functional.cross_entropy(model(images), labels).backward()
    whole = [parameter.grad.clone() for parameter in model.parameters()]
    model.zero_grad()
    for part, part_labels, share in micro_batches(images, labels, 3):
        (nn.functional.cross_entropy(model(part), part_labels) * share).backward()
    for expected, parameter in zip(whole, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, expected)


def _search(env, tmp_path, micro_batch: int | None) -> tuple[dict, int]:
    config = tmp_path / f"search-{micro_batch}.yaml"
    config.write_text(
        "evaluator: {name: enas, batch_size: 64, warmup_epochs: 1, derive_samples: 2, "
        f"derive_top: 1, micro_batch: {json.dumps(micro_batch)}}}\n"
        "dataset: {name: synthetic, limit: 320, input_size: 32}\n"
        "network: {cells: 1, channels: 16}\nspace: {blocks: 3}\nbudget: {architectures: 4}\n"
    )
    result = subprocess.run([sys.executable, "-c", PEAK, *NAS, "search", "-c", str(config),
                             "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    *output, peak = result.stdout.strip().splitlines()
    return json.loads(output[-1]), int(peak)


def test_an_enas_search_in_micro_batches_peaks_lower_and_finishes(env, tmp_path):
    whole, whole_peak = _search(env, tmp_path, None)
    parted, parted_peak = _search(env, tmp_path, 8)
    assert parted["status"] == whole["status"] == "finished"
    assert parted["best_latency_ms"] > 0
    # batch 64 in parts of 8: the saved activations of a training step shrink about 8x
    assert parted_peak < whole_peak - 100, (whole_peak, parted_peak)


@pytest.mark.parametrize("value", [0, -4, "many"])
def test_a_bad_micro_batch_is_refused_in_one_line(env, tmp_path, value):
    config = tmp_path / "search.yaml"
    config.write_text(f"evaluator: {{name: enas, micro_batch: {value}}}\n")
    result = subprocess.run([*NAS, "search", "-c", str(config)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "micro_batch" in result.stderr and "Traceback" not in result.stderr


def test_nas_train_in_micro_batches_peaks_lower(env):
    def train(*extra: str) -> tuple[dict, int]:
        result = subprocess.run(
            [sys.executable, "-c", PEAK, *NAS, "train", "--arch", "resnet20", "--dataset",
             "synthetic", "--input-size", "32", "--epochs", "1", "--json", *extra],
            capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        *output, peak = result.stdout.strip().splitlines()
        return json.loads(output[-1]), int(peak)

    whole, whole_peak = train()
    parted, parted_peak = train("--micro-batch", "8")
    assert parted["params"] == whole["params"] and parted["epochs"] == 1
    assert parted_peak < whole_peak - 50, (whole_peak, parted_peak)
    refused = subprocess.run([*NAS, "train", "--arch", "resnet20", "--micro-batch", "0"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "micro-batch" in refused.stderr
