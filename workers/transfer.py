"""NASNet transfer trained as one Ray task, on a GPU where the cluster has one.

`nas transfer --ray` sends the cell, the dataset (through the object store when it is held in
memory, else its path) and the training settings to a worker with the CPUs and GPUs asked for;
the worker trains on CUDA with mixed precision when Ray gave it a GPU, else on its CPUs, and
returns the trained network and its metrics, which the caller records as usual.
"""

from __future__ import annotations

import ray
import torch

from nas.data import DataSplits
from nas.train import TrainConfig
from nas.transfer import TransferOutcome, transfer
from nas.without_triton import hide_triton_without_gpu
from searchspace.genotype import Genotype
from workers.cluster import connect
from workers.trial import trial_device


def transfer_on_ray(
    genotype: Genotype, data: DataSplits, *, cells: int, channels: int, config: TrainConfig,
    cpus: float = 1.0, gpus: float = 0.0, address: str | None = None,
) -> TransferOutcome:
    """Train the transfer network of `genotype` on a Ray worker; the outcome comes back here."""
    connect(address)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=1)(_train)
    return ray.get(task.remote(genotype.to_json(), data, cells=cells, channels=channels,
                               config=config, threads=max(1, int(cpus))))


def _train(genotype_json: str, data: DataSplits, *, cells: int, channels: int,
           config: TrainConfig, threads: int) -> TransferOutcome:
    hide_triton_without_gpu()
    torch.set_num_threads(threads)
    return transfer(Genotype.from_json(genotype_json), data, cells=cells, channels=channels,
                    config=config, device=trial_device())
