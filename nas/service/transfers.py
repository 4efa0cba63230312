"""NASNet transfer as a service: a searched cell (or a genotype), stacked bigger with the
ImageNet stem, trained on a dataset (here or on a Ray worker) and recorded in the store as a
"transferred" architecture linked to its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.architectures import read_genotype_file
from nas.data import DatasetInfo, load_dataset
from nas.store import Store
from nas.train import TrainConfig
from nas.transfer import measure, preset, record_transfer, transfer

from . import exports
from .errors import InvalidInput


@dataclass(frozen=True)
class TransferRequest:
    """What to transfer where: the cell is exactly one of `search_id` (its `rank`-th best
    architecture) or `genotype_file` (a genotype JSON file)."""

    dataset: str = "imagefolder"
    data_dir: Path | None = None
    search_id: str | None = None
    rank: int = 1
    genotype_file: Path | None = None
    input_size: int = 224
    preset: str = "mobile"
    cells: int | None = None
    channels: int | None = None
    limit: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    on_ray: bool = False
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class TransferOutcome:
    summary: dict[str, Any]
    """What `nas transfer --json` prints: the outcome, the preset and the published sizes."""
    data: DatasetInfo
    cells: int
    channels: int


def run_transfer(store: Store, request: TransferRequest, progress: bool = False
                 ) -> TransferOutcome:
    if (request.search_id is None) == (request.genotype_file is None):
        raise InvalidInput("give the cell with exactly one of --search ID or --genotype FILE")
    if not request.on_ray and (request.cpus != 1.0 or request.gpus != 0.0):
        raise InvalidInput("--cpus and --gpus say what a Ray worker gets: add --ray")
    size = preset(request.preset)
    source = (exports.pick(store, request.search_id, request.rank).architecture
              if request.search_id else None)
    genotype = source.genotype if source else read_genotype_file(request.genotype_file)
    cells = request.cells if request.cells is not None else size.cells
    channels = request.channels if request.channels is not None else size.channels
    data = load_dataset(request.dataset, request.data_dir, seed=request.train.seed,
                        input_size=request.input_size, limit=request.limit)
    if request.on_ray:
        from workers.transfer import transfer_on_ray

        outcome = transfer_on_ray(genotype, data, cells=cells, channels=channels,
                                  config=request.train, cpus=request.cpus, gpus=request.gpus)
    else:
        outcome = transfer(genotype, data, cells=cells, channels=channels,
                           config=request.train, progress=progress)
    dataset_settings = {"name": request.dataset,
                        "path": str(request.data_dir) if request.data_dir else None,
                        "input_size": request.input_size, "limit": request.limit}
    record_transfer(store, outcome, source=source, dataset=dataset_settings,
                    epochs=request.train.epochs)
    published_params, published_flops = measure(
        genotype, num_classes=1000, input_size=size.published_input_size, cells=cells,
        channels=channels)
    summary = outcome.summary() | {
        "preset": size.name, "published": size.published,
        "published_params": size.published_params, "published_flops": size.published_flops,
        "published_input_size": size.published_input_size,
        "params_at_published_size": published_params, "flops_at_published_size": published_flops,
    }
    return TransferOutcome(summary, data.info, cells, channels)
