"""NASNet-style transfer: a searched cell, stacked deeper and wider with the ImageNet stem, trained
on a new (ImageNet-layout) dataset.

The recipe of Zoph et al. (2018): the cell found on a small proxy task is reused unchanged; only
the number of cells per stage and the channels grow. Presets are sized like the published
NASNet-A networks (with the NASNet-A cell; a searched cell gives somewhat different counts):

- `mobile`: 4 cells per stage, 48 channels: 5.6M parameters and 595M multiply-adds at 224x224
  with 1000 classes (published NASNet-A 4 @ 1056: 5.3M, 564M).
- `large`: 6 cells per stage, 176 channels: 88.3M parameters and 10.2B multiply-adds at
  224x224, 23.7B at its native 331x331 (published NASNet-A 6 @ 4032: 88.9M, 23.8B at 331).

Small inputs (below 128 px) use the CIFAR stem instead, by the rule every cell network follows.
The transferred model is recorded in the store as an architecture with role "transferred",
linked by `parent_id` to the architecture it came from, its weights saved under `$NAS_HOME`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.export import ExportSpec
from nas.paths import weights_dir
from nas.seeding import stream_seed
from nas.store import ArchitectureRecord, ArchitectureRole, ArchitectureState, SearchStatus, Store
from nas.train import TrainConfig, TrainResult, train_model
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork, stem_for

TRANSFER_ROLE = ArchitectureRole.TRANSFERRED
TRANSFER_SEARCH_NAME = "transfer"
TRANSFER_EVALUATOR = "transfer"


@dataclass(frozen=True)
class Preset:
    """A NASNet-sized network: cells per stage and channels, and the published figures."""

    name: str
    cells: int
    channels: int
    input_size: int
    published: str  # the published NASNet-A network it is sized like
    published_params: int
    published_flops: int
    published_input_size: int
    params_range: tuple[int, int]  # NASNet-A cell, 1000 classes
    flops_range_224: tuple[int, int]  # multiply-adds at 224x224, NASNet-A cell, 1000 classes
    notes: list[str] = field(default_factory=list)


PRESETS: dict[str, Preset] = {
    "mobile": Preset(
        "mobile", cells=4, channels=48, input_size=224, published="NASNet-A (4 @ 1056)",
        published_params=5_300_000, published_flops=564_000_000, published_input_size=224,
        params_range=(4_000_000, 7_000_000), flops_range_224=(450_000_000, 750_000_000),
    ),
    "large": Preset(
        "large", cells=6, channels=176, input_size=331, published="NASNet-A (6 @ 4032)",
        published_params=88_900_000, published_flops=23_800_000_000, published_input_size=331,
        params_range=(70_000_000, 110_000_000),
        flops_range_224=(8_000_000_000, 13_000_000_000),
    ),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def build_transfer_network(
    genotype: Genotype, *, num_classes: int, input_size: int, cells: int, channels: int,
    in_channels: int = 3, auxiliary: bool = False, device: torch.device | str | None = None,
) -> CellNetwork:
    """The cell stacked NASNet-style: ImageNet stem from 128 px up, else the CIFAR stem."""
    with torch.device(device or "cpu"):
        return CellNetwork(
            genotype, num_classes=num_classes, cells=cells, channels=channels,
            in_channels=in_channels, stem=stem_for(input_size), auxiliary=auxiliary,
        )


def measure(
    genotype: Genotype, *, num_classes: int, input_size: int, cells: int, channels: int,
    in_channels: int = 3,
) -> tuple[int, int]:
    """(parameters, multiply-adds) of the transfer network, counted on the meta device (no
    memory, no compute: fast even for the large preset)."""
    model = build_transfer_network(
        genotype, num_classes=num_classes, input_size=input_size, cells=cells,
        channels=channels, in_channels=in_channels, device="meta",
    )
    return count_parameters(model), count_flops(model, (in_channels, input_size, input_size))


@dataclass
class TransferOutcome:
    """What a transfer produced: the trained network, its metrics and its store entry."""

    model: CellNetwork
    result: TrainResult
    params: int
    flops: int
    spec: ExportSpec
    architecture: ArchitectureRecord | None = None
    weights_path: Path | None = None

    @property
    def accuracy(self) -> float:
        return self.result.final_val_accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "architecture_id": self.architecture.id if self.architecture else None,
            "search_id": self.architecture.search_id if self.architecture else None,
            "parent_id": self.architecture.parent_id if self.architecture else None,
            "val_accuracy": round(self.result.final_val_accuracy, 4),
            "best_val_accuracy": round(self.result.best_val_accuracy, 4),
            "params": self.params,
            "flops": self.flops,
            "seconds": round(self.result.seconds, 2),
            "network": self.spec.network_settings(),
            "weights": str(self.weights_path) if self.weights_path else None,
        }


def transfer(
    genotype: Genotype, data: DataSplits, *, cells: int, channels: int, config: TrainConfig,
    progress: bool = False, device: torch.device | None = None,
) -> TransferOutcome:
    """Build the transfer network for `data` and train it with the shared training loop
    (on `device`; None: CUDA when available, else the CPU)."""
    info = data.info
    spec = ExportSpec(
        genotype, num_classes=info.num_classes, cells=cells, channels=channels,
        in_channels=info.in_channels, input_size=info.input_size, title="transferred cell",
    )
    with torch.random.fork_rng(devices=[]):  # seeded initial weights: same seed, same run
        torch.manual_seed(stream_seed(config.seed, "transfer-weights"))
        model = build_transfer_network(
            genotype, num_classes=info.num_classes, input_size=info.input_size, cells=cells,
            channels=channels, in_channels=info.in_channels,
        )
    params = count_parameters(model)
    flops = count_flops(model, (info.in_channels, info.input_size, info.input_size))
    result = train_model(model, data, config, progress=progress, device=device)
    model.cpu()
    return TransferOutcome(model=model, result=result, params=params, flops=flops, spec=spec)


def record_transfer(
    store: Store, outcome: TransferOutcome, *, source: ArchitectureRecord | None,
    dataset: dict[str, Any], epochs: int,
) -> ArchitectureRecord:
    """Store `outcome` as a COMPLETE architecture with role "transferred": in the source's search,
    linked to it by `parent_id`, or (from a genotype file) in a new finished search "transfer"."""
    spec = outcome.spec
    if source is not None:
        search_id, step, parent_id = source.search_id, source.step, source.id
    else:
        config = SearchConfig.model_validate({
            "name": TRANSFER_SEARCH_NAME, "dataset": dataset,
            "network": {"cells": spec.cells, "channels": spec.channels},
            "evaluator": {"epochs": epochs},
        })
        search = store.create_search(TRANSFER_SEARCH_NAME, config.model_dump(mode="json"), 0)
        store.set_status(search.id, SearchStatus.RUNNING)
        search_id, step, parent_id = search.id, 0, None
    (architecture_id,) = store.add_architectures(
        search_id, step, [spec.genotype], TRANSFER_EVALUATOR, role=TRANSFER_ROLE,
        parent_id=parent_id,
    )
    store.start_architecture(architecture_id)
    folder = weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = (folder / f"architecture-{architecture_id}.pt").resolve()
    torch.save({key: value.detach().cpu().contiguous()
                for key, value in outcome.model.state_dict().items()}, weights_path)
    outcome.weights_path = weights_path
    accuracy = outcome.result.final_val_accuracy
    record = store.finish_architecture(
        architecture_id, state=ArchitectureState.COMPLETE, reward=accuracy, accuracy=accuracy,
        params=outcome.params, flops=outcome.flops, train_seconds=outcome.result.seconds,
        metrics={"network": spec.network_settings(), "dataset": dataset,
                 "training": outcome.result.to_dict()},
        weights_path=str(weights_path),
    )
    if source is None:
        store.set_status(search_id, SearchStatus.FINISHED)
    outcome.architecture = record
    return record
