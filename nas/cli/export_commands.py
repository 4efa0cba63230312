"""`nas export best` and `nas transfer`: a searched architecture out of the store."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from nas.architectures import read_genotype_file
from nas.cli.app import app, configure_threads, console, fail, user_errors
from nas.config import SearchConfig
from nas.data import DATASETS, load_dataset
from nas.data.imagefolder import DEFAULT_INPUT_SIZE, list_classes
from nas.export import FORMATS, ExportSpec, export
from nas.search import best_architectures
from nas.store import ArchitectureRecord, SearchRecord, SearchStatus, Store
from nas.train import TrainConfig
from nas.transfer import (
    PRESETS,
    TRANSFER_ROLE,
    measure,
    preset,
    record_transfer,
    transfer,
)

export_app = typer.Typer(help="Write a searched architecture out as code or a model file.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")

# (classes, input channels, input size) of the built-in datasets
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (10, 1, 8), "synthetic": (4, 3, 16), "cifar10": (10, 3, 32),
}


@dataclass(frozen=True)
class Ranked:
    """The architecture picked from a search, with its rank and the search's settings."""

    search: SearchRecord
    architecture: ArchitectureRecord
    rank: int


def pick_architecture(store: Store, search_id: str | None, rank: int, *,
                      transferred: bool = False) -> Ranked:
    """The `rank`-th best architecture of a search (by default the most recent finished one),
    ranked as `nas show` ranks them, apart from transferred ones (scored on another dataset):
    those are ranked with `transferred`, or in a search that holds nothing else."""
    if search_id is None:
        search = store.latest_search(status=SearchStatus.FINISHED)
        if search is None:
            fail("no finished search in the store; run `nas search` first or pass --search ID")
    else:
        search = store.get_search(search_id)  # UnknownSearch: one line, exit 2
    transfers = store.architectures(search.id, order="reward", role=TRANSFER_ROLE)
    candidates = [] if transferred else best_architectures(store, search.id)
    ranked = [a for a in candidates or transfers if a.reward is not None]
    if not ranked:
        kind = "transferred architecture" if transferred else "scored architecture"
        fail(f"search {search.id} ({search.status}) has no {kind} to pick")
    if not 1 <= rank <= len(ranked):
        fail(f"rank {rank} is out of range: search {search.id} has {len(ranked)} ranked "
             f"architecture(s), ranked from 1")
    return Ranked(search, ranked[rank - 1], rank)


def _search_config(search: SearchRecord) -> SearchConfig | None:
    try:
        return SearchConfig.model_validate(search.config)
    except ValidationError:
        return None


def _dataset_shape(name: str, path: str | None, input_size: int | None
                   ) -> tuple[int | None, int, int]:
    """(classes or None when unknown, input channels, input size) of a configured dataset."""
    key = name.lower()
    if key in DATASET_SHAPES:
        classes, channels, size = DATASET_SHAPES[key]
        return classes, channels, input_size or size
    classes = None
    if path is not None:
        root = Path(path)
        root = root / "train" if (root / "train").is_dir() else root
        if root.is_dir():
            classes = len(list_classes(root))
    return classes, 3, input_size or DEFAULT_INPUT_SIZE


def export_spec(picked: Ranked, *, cells: int | None, channels: int | None,
                num_classes: int | None, input_size: int | None) -> ExportSpec:
    """Network settings: the flags, else what the architecture was trained with (transferred
    ones record it), else the search's proxy network and dataset."""
    recorded: dict[str, Any] = (picked.architecture.metrics or {}).get("network") or {}
    config = _search_config(picked.search)
    if recorded:
        defaults = (recorded.get("num_classes"), recorded.get("in_channels", 3),
                    recorded.get("input_size", 32))
        default_cells, default_channels = recorded.get("cells", 2), recorded.get("channels", 16)
    elif config is not None:
        dataset = config.dataset
        defaults = _dataset_shape(dataset.name, dataset.resolved_path(), dataset.input_size)
        default_cells, default_channels = config.network.cells, config.network.channels
    else:
        defaults, default_cells, default_channels = (None, 3, 32), 2, 16
    classes = num_classes if num_classes is not None else defaults[0]
    if classes is None:
        fail(f"cannot tell the number of classes of search {picked.search.id}'s dataset; "
             f"pass --num-classes")
    return ExportSpec(
        picked.architecture.genotype, num_classes=classes,
        cells=cells if cells is not None else default_cells,
        channels=channels if channels is not None else default_channels,
        in_channels=defaults[1], input_size=input_size if input_size is not None else defaults[2],
        title=f"architecture {picked.architecture.id} (rank {picked.rank} of search "
              f"{picked.search.id}, {picked.search.name})",
    )


@export_app.command("best")
def export_best(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    search: Annotated[str | None, typer.Option(
        help="search id (default: the most recent finished search)")] = None,
    rank: Annotated[int, typer.Option(help="1 = the best, 2 = the runner-up, ...")] = 1,
    transferred: Annotated[bool, typer.Option(
        "--transferred", help="rank the search's transferred architectures instead")] = False,
    fmt: Annotated[str, typer.Option("--format", help=" | ".join(FORMATS))] = "py",
    cells: Annotated[int | None, typer.Option(help="normal cells per stage")] = None,
    channels: Annotated[int | None, typer.Option(help="initial channels")] = None,
    num_classes: Annotated[int | None, typer.Option(help="classes of the classifier")] = None,
    input_size: Annotated[int | None, typer.Option(
        help="input side in pixels (ImageNet stem from 128 up)")] = None,
    weights: Annotated[Path | None, typer.Option(help=".pt state dict to include")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Write the best (or --rank K) architecture of a search as a standalone .py module,
    TorchScript, ONNX or a state dict with its genotype."""
    configure_threads()
    with user_errors(), Store() as store:
        if fmt not in FORMATS:
            fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        picked = pick_architecture(store, search, rank, transferred=transferred)
    with user_errors():
        spec = export_spec(picked, cells=cells, channels=channels, num_classes=num_classes,
                           input_size=input_size)
        recorded_weights = (picked.architecture.metrics or {}).get("weights")
        if weights is None and recorded_weights and Path(recorded_weights).is_file():
            weights = Path(recorded_weights)
        written = export(spec, output, fmt, weights)
    summary = {
        "search_id": picked.search.id, "architecture_id": picked.architecture.id,
        "rank": picked.rank, "reward": picked.architecture.reward, "format": fmt,
        "files": [str(path) for path in written],
        "weights": str(weights) if weights else None, "network": spec.network_settings(),
    }
    if as_json:
        print(json.dumps(summary))
        return
    settings = spec.network_settings()
    console.print(
        f"wrote {', '.join(str(path) for path in written)}: architecture "
        f"{picked.architecture.id} (rank {picked.rank} of search {picked.search.id}), "
        f"{settings['cells']} cells per stage, {settings['channels']} channels, "
        f"{settings['num_classes']} classes, {settings['in_channels']}x{settings['input_size']}"
        f"x{settings['input_size']} input, {settings['stem']} stem, "
        + (f"weights from {weights}" if weights else "untrained weights"),
        highlight=False, markup=False,
    )


@app.command("transfer")
def transfer_command(
    search: Annotated[str | None, typer.Option(help="take the cell from this search")] = None,
    rank: Annotated[int, typer.Option(help="with --search: 1 = its best architecture")] = 1,
    genotype_file: Annotated[Path | None, typer.Option(
        "--genotype", help="or take it from a genotype .json file")] = None,
    dataset: Annotated[str, typer.Option(help=f"one of {', '.join(DATASETS)}")] = "imagefolder",
    data_dir: Annotated[Path | None, typer.Option(help="folder of the dataset")] = None,
    input_size: Annotated[int, typer.Option(min=8, help="image side in pixels")] = 224,
    preset_name: Annotated[str, typer.Option(
        "--preset", help=f"network size like NASNet-A: {', '.join(PRESETS)}")] = "mobile",
    cells: Annotated[int | None, typer.Option(min=1, help="cells per stage (default: preset)")
                     ] = None,
    channels: Annotated[int | None, typer.Option(min=2, help="channels (default: preset)")
                        ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 0.05,
    drop_path: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.0,
    limit: Annotated[int | None, typer.Option(min=2, help="use at most this many images")
                     ] = None,
    seed: int = 0,
    on_ray: Annotated[bool, typer.Option(
        "--ray", help="train on a Ray worker (NAS_RAY_ADDRESS joins a cluster; else local)")
    ] = False,
    cpus: Annotated[float, typer.Option(min=0.01, help="with --ray: CPUs for the worker")] = 1.0,
    gpus: Annotated[float, typer.Option(min=0.0, help="with --ray: GPUs (CUDA + AMP)")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """NASNet transfer: a searched cell, stacked bigger with the ImageNet stem, trained anew.

    The network is recorded in the store as a "transferred" architecture linked to its source
    (in the source's search, or with --genotype in a new search named "transfer"), its weights
    kept under $NAS_HOME/weights, so `nas export best` can write it out.
    """
    configure_threads()
    if (search is None) == (genotype_file is None):
        fail("give the cell with exactly one of --search ID or --genotype FILE")
    if not on_ray and (cpus != 1.0 or gpus != 0.0):
        fail("--cpus and --gpus say what a Ray worker gets: add --ray")
    with user_errors(), Store() as store:
        size = preset(preset_name)
        source = pick_architecture(store, search, rank).architecture if search else None
        genotype = source.genotype if source else read_genotype_file(genotype_file)
        cells = cells if cells is not None else size.cells
        channels = channels if channels is not None else size.channels
        data = load_dataset(dataset, data_dir, seed=seed, input_size=input_size, limit=limit)
        config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             drop_path=drop_path, seed=seed)
        if on_ray:
            from workers.transfer import transfer_on_ray

            outcome = transfer_on_ray(genotype, data, cells=cells, channels=channels,
                                      config=config, cpus=cpus, gpus=gpus)
        else:
            outcome = transfer(genotype, data, cells=cells, channels=channels, config=config,
                               progress=not as_json and sys.stderr.isatty())
        dataset_settings = {"name": dataset, "path": str(data_dir) if data_dir else None,
                            "input_size": input_size, "limit": limit}
        record_transfer(store, outcome, source=source, dataset=dataset_settings, epochs=epochs)
        published_params, published_flops = measure(
            genotype, num_classes=1000, input_size=size.published_input_size, cells=cells,
            channels=channels,
        )
    summary = outcome.summary() | {
        "preset": size.name, "published": size.published,
        "published_params": size.published_params, "published_flops": size.published_flops,
        "published_input_size": size.published_input_size,
        "params_at_published_size": published_params, "flops_at_published_size": published_flops,
    }
    if as_json:
        print(json.dumps(summary))
        return
    info = data.info
    console.print(
        f"transferred architecture {summary['architecture_id']} (search "
        f"{summary['search_id']}, from architecture {summary['parent_id'] or 'a genotype file'}):"
        f" val accuracy {summary['val_accuracy']:.4f} (best {summary['best_val_accuracy']:.4f}) "
        f"on {info.name} ({info.num_classes} classes, {info.train_size} train / "
        f"{info.valid_size} valid, {info.input_size} px), {outcome.params:,} parameters, "
        f"{_multiply_adds(outcome.flops)} multiply-adds, {outcome.result.seconds:.1f} s",
        highlight=False, markup=False,
    )
    console.print(
        f"at NASNet's setting ({size.published_input_size} px, 1000 classes) this "
        f"{cells}-cell, {channels}-channel network has {_millions(published_params)} parameters "
        f"and {_multiply_adds(published_flops)} multiply-adds; published {size.published}: "
        f"{_millions(size.published_params)}, {_multiply_adds(size.published_flops)}",
        highlight=False, markup=False,
    )


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def _multiply_adds(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"
