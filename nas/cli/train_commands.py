"""`nas train` and `nas zoo list`: one architecture trained, the zoo listed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.table import Table

from nas.architectures import resolve_architecture
from nas.cli.app import app, configure_threads, console, user_errors, zoo_app
from nas.data import DATASETS, check_data_dir, load_dataset
from nas.service import zoo
from nas.train import TrainConfig, seed_everything, train_model
from searchspace.complexity import count_flops, count_parameters


@app.command()
def train(
    arch: Annotated[str, typer.Option(help="zoo name, reference cell name or genotype .json")],
    dataset: Annotated[str, typer.Option(help=f"one of {', '.join(DATASETS)}")] = "digits",
    data_dir: Annotated[Path | None, typer.Option(help="folder of the dataset")] = None,
    download: Annotated[bool, typer.Option(help="fetch CIFAR-10 where a network exists")] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    cells: Annotated[int, typer.Option(min=1, max=64, help="normal cells per stage")] = 2,
    channels: Annotated[int, typer.Option(min=2, max=4096, help="initial channels of cells")] = 16,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    micro_batch: Annotated[int | None, typer.Option(
        min=1, help="examples per forward/backward pass, their gradients added up into one "
        "step per batch: less memory, slower steps")] = None,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 0.05,
    input_size: Annotated[int | None, typer.Option(
        min=8, max=2048, help="resize inputs")] = None,
    auxiliary: Annotated[bool, typer.Option(help="auxiliary head (cell networks)")] = False,
    cutout: Annotated[int, typer.Option(min=0)] = 0,
    drop_path: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.0,
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train one architecture and report validation accuracy, parameters, FLOPs and seconds."""
    configure_threads()
    with user_errors():
        architecture = resolve_architecture(arch)
        config = TrainConfig(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, cutout=cutout,
            drop_path=drop_path, seed=seed, micro_batch=micro_batch,
        )
        check_data_dir(dataset, data_dir)
        data = load_dataset(dataset, data_dir, seed=seed, input_size=input_size,
                            download=download)
        info = data.info
        seed_everything(seed)  # the initial weights too: same seed, same run
        model = architecture.build(
            num_classes=info.num_classes, in_channels=info.in_channels,
            input_size=info.input_size, cells=cells, channels=channels, auxiliary=auxiliary,
        )
        params = count_parameters(model)
        flops = count_flops(model, (info.in_channels, info.input_size, info.input_size))
        result = train_model(model, data, config, progress=not as_json and sys.stderr.isatty())
    summary = {
        "arch": arch,
        "dataset": dataset,
        "epochs": len(result.history),
        "val_accuracy": round(result.final_val_accuracy, 4),
        "best_val_accuracy": round(result.best_val_accuracy, 4),
        "val_loss": result.history[-1].val_loss,
        "train_loss": result.history[-1].train_loss,
        "params": params,
        "flops": flops,
        "seconds": round(result.seconds, 2),
        "threads": torch.get_num_threads(),
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title=f"{escape(arch)} on {escape(dataset)} ({info.train_size} train / "
                        f"{info.valid_size} valid)")
    for column in ("epoch", "train loss", "train acc", "val loss", "val acc", "seconds"):
        table.add_column(column, justify="right")
    for epoch in result.history:
        table.add_row(
            str(epoch.epoch), f"{epoch.train_loss:.3f}", f"{epoch.train_accuracy:.3f}",
            f"{epoch.val_loss:.3f}", f"{epoch.val_accuracy:.3f}", f"{epoch.seconds:.1f}",
        )
    console.print(table)
    console.print(
        f"val accuracy {summary['val_accuracy']:.4f} (best {summary['best_val_accuracy']:.4f}), "
        f"{params:,} parameters, {flops / 1e6:.2f}M multiply-adds, {result.seconds:.1f} s"
    )


@zoo_app.command("list")
def zoo_list(
    cells: Annotated[int, typer.Option(min=1, max=zoo.MAX_CELLS,
                                       help="normal cells per stage (cells)")] = 2,
    channels: Annotated[int, typer.Option(min=2, max=zoo.MAX_CHANNELS,
                                          help="initial channels (cells)")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """The zoo and the reference cells, with parameters, multiply-adds and CPU latency at CIFAR
    size (3x32x32, 10 classes), measured once and kept under $NAS_HOME/cache."""
    configure_threads()
    rows = list(zoo.listing(cells, channels))
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"Architectures at 3x32x32, 10 classes (cells: {cells} per stage, "
                        f"{channels} channels)")
    for column, justify in (("name", "left"), ("kind", "left"), ("parameters", "right"),
                            ("multiply-adds", "right"), ("CPU latency", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row["name"], row["kind"], f"{row['params']:,}",
                      f"{row['flops'] / 1e6:.1f}M",
                      f"{row['latency_ms']:.1f} ms ({row['latency_threads']} thr.)")
    console.print(table)
