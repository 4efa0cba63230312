"""`nas export best` and `nas transfer`: a searched architecture out of the store."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from nas.cli.app import app, configure_threads, console, fail, user_errors
from nas.cli.remote import server
from nas.cli.remote_commands import remote, write_export
from nas.data import DATASETS
from nas.export import FORMATS, export
from nas.service import exports
from nas.service.architectures import TOP_LIMIT
from nas.service.transfers import TransferOutcome, TransferRequest, run_transfer
from nas.store import Store
from nas.train import TrainConfig
from nas.transfer import (
    PRESETS,
)

export_app = typer.Typer(help="Write a searched architecture out as code or a model file.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")

@export_app.command("best")
def export_best(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    search: Annotated[str | None, typer.Option(
        help="search id (default: the most recent finished search)")] = None,
    rank: Annotated[int, typer.Option(help="1 = the best, 2 = the runner-up, ...")] = 1,
    transferred: Annotated[bool, typer.Option(
        "--transferred", help="rank the search's transferred architectures instead")] = False,
    fmt: Annotated[str, typer.Option("--format", help=" | ".join(FORMATS) + " (torchscript: "
                                     "traced at the input size, which it then expects)")] = "py",
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
    if server() is not None:
        if transferred or weights or any(value is not None for value in (
                cells, channels, num_classes, input_size)):
            fail("with --server the export is the architecture as the search trained it: drop "
                 "--transferred, --weights, --cells, --channels, --num-classes, --input-size")
        _export_remote(output, search, rank, fmt, as_json)
        return
    with user_errors(), Store() as store:
        exports.check_format(fmt)
        picked = exports.pick(store, search, rank, transferred=transferred)
    with user_errors():
        spec = exports.spec_for(picked, cells=cells, channels=channels, num_classes=num_classes,
                                input_size=input_size)
        weights = weights or exports.recorded_weights(picked)
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


def _export_remote(output: Path, search: str | None, rank: int, fmt: str, as_json: bool
                   ) -> None:
    """`nas export best` from a deployed service: its `rank`-th best, as the server writes it."""
    with user_errors(), remote() as client:
        exports.check_format(fmt)
        search_id = search or client.latest_finished()
        if not 1 <= rank <= TOP_LIMIT:  # the server answered "limit: ...", a name not given
            fail(f"rank {rank} is out of range: a server ranks a search's architectures from "
                 f"1 to {TOP_LIMIT}")
        ranked = client.top(search_id, rank)
        if len(ranked) < rank:
            fail(f"rank {rank} is out of range: search {search_id} has {len(ranked)} ranked "
                 f"architecture(s), ranked from 1")
        chosen = ranked[rank - 1]
        stem = output.stem if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", output.stem) else None
        filename, content = client.export(chosen.id, fmt, stem)
        written = write_export(filename, content, output)
    if as_json:
        print(json.dumps({"search_id": search_id, "architecture_id": chosen.id, "rank": rank,
                          "reward": chosen.reward, "format": fmt, "server": client.url,
                          "files": [str(path) for path in written]}))
        return
    console.print(f"wrote {', '.join(str(path) for path in written)}: architecture {chosen.id} "
                  f"(rank {rank} of search {search_id} on {client.url})", highlight=False,
                  markup=False)


@app.command("transfer")
def transfer_command(
    search: Annotated[str | None, typer.Option(help="take the cell from this search")] = None,
    rank: Annotated[int | None, typer.Option(
        help="with --search: 1 = its best architecture (the default)")] = None,
    genotype_file: Annotated[Path | None, typer.Option(
        "--genotype", help="or take it from a genotype .json file")] = None,
    dataset: Annotated[str, typer.Option(help=f"one of {', '.join(DATASETS)}")] = "imagefolder",
    data_dir: Annotated[Path | None, typer.Option(help="folder of the dataset")] = None,
    input_size: Annotated[int, typer.Option(min=8, max=2048, help="image side in pixels")] = 224,
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
    with user_errors(), Store() as store:
        request = TransferRequest(
            dataset=dataset, data_dir=data_dir, search_id=search, rank=rank,
            genotype_file=genotype_file,
            input_size=input_size, preset=preset_name, cells=cells, channels=channels,
            limit=limit, on_ray=on_ray, cpus=cpus, gpus=gpus,
            train=TrainConfig(epochs=epochs, batch_size=batch_size,
                              learning_rate=learning_rate, drop_path=drop_path, seed=seed))
        outcome = run_transfer(store, request, progress=not as_json and sys.stderr.isatty())
    if as_json:
        print(json.dumps(outcome.summary))
    else:
        _print_transfer(outcome)


def _print_transfer(outcome: TransferOutcome) -> None:
    """The outcome in two lines: how the network did, and its size beside the published one."""
    summary, info = outcome.summary, outcome.data
    console.print(
        f"transferred architecture {summary['architecture_id']} (search "
        f"{summary['search_id']}, from architecture {summary['parent_id'] or 'a genotype file'}):"
        f" val accuracy {summary['val_accuracy']:.4f} (best {summary['best_val_accuracy']:.4f}) "
        f"on {info.name} ({info.num_classes} classes, {info.train_size} train / "
        f"{info.valid_size} valid, {info.input_size} px), {summary['params']:,} parameters, "
        f"{_multiply_adds(summary['flops'])} multiply-adds, {summary['seconds']:.1f} s",
        highlight=False, markup=False,
    )
    console.print(
        f"at NASNet's setting ({summary['published_input_size']} px, 1000 classes) this "
        f"{outcome.cells}-cell, {outcome.channels}-channel network has "
        f"{_millions(summary['params_at_published_size'])} parameters and "
        f"{_multiply_adds(summary['flops_at_published_size'])} multiply-adds; published "
        f"{summary['published']}: {_millions(summary['published_params'])}, "
        f"{_multiply_adds(summary['published_flops'])}",
        highlight=False, markup=False,
    )


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def _multiply_adds(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"
