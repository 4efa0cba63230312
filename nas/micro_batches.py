"""Micro-batches: one optimizer step on a batch, computed a part at a time.

A training step's memory is mostly the activations its backward pass keeps, and they grow with
the batch (about 1 GiB for a sampled ENAS path at batch 64 on CIFAR: docs/benchmarks.md). Split
into micro-batches whose gradients add up, the step keeps one micro-batch's activations at a
time; the gradient is the batch's, up to batch norm, which computes its statistics over each
micro-batch ("ghost batch norm") rather than the whole batch.
"""

from __future__ import annotations

import torch


def micro_batches(images: torch.Tensor, labels: torch.Tensor, size: int | None
                  ) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """`images` and `labels` in parts of at most `size` examples (None: the whole batch), each
    with its share of the batch: the weight of its mean loss in the batch's."""
    total = labels.shape[0]
    if size is None or size >= total:
        return [(images, labels, 1.0)]
    return [(part, part_labels, part_labels.shape[0] / total)
            for part, part_labels in zip(images.split(size), labels.split(size), strict=True)]
