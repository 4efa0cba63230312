"""NASNet transfer as a service: a searched cell (or a genotype), stacked bigger with the
ImageNet stem, trained on a dataset (here or on a Ray worker) and recorded in the store as a
"transferred" architecture linked to its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.architectures import read_genotype_file
from nas.data import DatasetInfo, DataSplits, check_data_dir, load_dataset
from nas.store import ArchitectureRecord, Store
from nas.train import TrainConfig
from nas.transfer import Preset, measure, preset, record_transfer, transfer
from nas.transfer import TransferOutcome as TransferResult
from searchspace.genotype import Genotype

from . import exports
from .errors import InvalidInput


@dataclass(frozen=True)
class TransferRequest:
    """What to transfer where: the cell is exactly one of `search_id` (its `rank`-th best
    architecture; default the best) or `genotype_file` (a genotype JSON file)."""

    dataset: str = "imagefolder"
    data_dir: Path | None = None
    search_id: str | None = None
    rank: int | None = None
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
    """Transfer the request's cell: check, load the data, train (here or on Ray), record."""
    check_request(request)
    size = preset(request.preset)
    source, genotype = source_cell(store, request)
    cells = request.cells if request.cells is not None else size.cells
    channels = request.channels if request.channels is not None else size.channels
    data = load_dataset(request.dataset, request.data_dir, seed=request.train.seed,
                        input_size=request.input_size, limit=request.limit)
    outcome = _train(request, genotype, data, cells, channels, progress)
    record_transfer(store, outcome, source=source, dataset=_dataset_settings(request),
                    epochs=request.train.epochs)
    summary = outcome.summary() | published_comparison(size, genotype, cells, channels)
    return TransferOutcome(summary, data.info, cells, channels)


def check_request(request: TransferRequest) -> None:
    """The request's options fit together (`InvalidInput` says which do not)."""
    if (request.search_id is None) == (request.genotype_file is None):
        raise InvalidInput("give the cell with exactly one of --search ID or --genotype FILE")
    if request.genotype_file is not None and request.rank is not None:
        raise InvalidInput("--rank picks one of a search's architectures: give it with "
                           "--search, not with --genotype")
    check_data_dir(request.dataset, request.data_dir)
    if not request.on_ray and (request.cpus != 1.0 or request.gpus != 0.0):
        raise InvalidInput("--cpus and --gpus say what a Ray worker gets: add --ray")


def source_cell(store: Store, request: TransferRequest
                ) -> tuple[ArchitectureRecord | None, Genotype]:
    """The architecture the cell comes from (None for a genotype file) and the cell."""
    if request.search_id is None:
        return None, read_genotype_file(request.genotype_file)
    rank = 1 if request.rank is None else request.rank
    source = exports.pick(store, request.search_id, rank).architecture
    exports.check_op_set(source)
    return source, source.genotype


def _train(request: TransferRequest, genotype: Genotype, data: DataSplits, cells: int,
           channels: int, progress: bool) -> TransferResult:
    if request.on_ray:
        from workers.transfer import transfer_on_ray

        return transfer_on_ray(genotype, data, cells=cells, channels=channels,
                               config=request.train, cpus=request.cpus, gpus=request.gpus)
    return transfer(genotype, data, cells=cells, channels=channels, config=request.train,
                    progress=progress)


def _dataset_settings(request: TransferRequest) -> dict[str, Any]:
    return {"name": request.dataset,
            "path": str(request.data_dir) if request.data_dir else None,
            "input_size": request.input_size, "limit": request.limit}


def published_comparison(size: Preset, genotype: Genotype, cells: int, channels: int
                         ) -> dict[str, Any]:
    """The preset's published network beside this one measured at the published size
    (1,000 classes at the published input size)."""
    params, flops = measure(genotype, num_classes=1000, input_size=size.published_input_size,
                            cells=cells, channels=channels)
    return {
        "preset": size.name, "published": size.published,
        "published_params": size.published_params, "published_flops": size.published_flops,
        "published_input_size": size.published_input_size,
        "params_at_published_size": params, "flops_at_published_size": flops,
    }
