"""`nas baselines`: classic zoo networks trained beside a search, on its data and recipe."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from nas.cli.app import app, configure_threads, console, fail, user_errors
from nas.cli.remote import server
from nas.cli.remote_commands import remote
from nas.service import baselines
from nas.store import ArchitectureRecord, Store


@app.command("baselines")
def baselines_command(
    search: Annotated[str, typer.Option(help="the search to train the classics beside")],
    arch: Annotated[list[str] | None, typer.Option(
        help=f"zoo network, repeatable (default: {', '.join(baselines.DEFAULT_ARCHS)})")] = None,
    queued: Annotated[list[int] | None, typer.Option(
        hidden=True, help="train these queued zoo rows (what a detached run does)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train zoo networks on the search's dataset with its from-scratch recipe (the standalone
    evaluator's and ENAS retraining's epochs, batch size, learning rate and seed) and record them
    in the search with role "zoo": `nas show` and the dashboard list them beside its best.
    With --server the server trains them in the background; `nas show` follows them."""
    names = list(arch or [])
    if server() is not None:
        with user_errors(), remote() as client:
            rows = client.baselines(search, names)
        _report(rows, search, as_json, queued_only=True)
        return
    configure_threads()
    with user_errors(), Store() as store:
        progress = None if as_json or not sys.stderr.isatty() else _say
        if queued:
            if names:
                fail("give --arch or --queued, not both")
            rows = baselines.train_queued(store, search, queued, progress)
        else:
            rows = baselines.run(store, search, names, progress)
        _report([baselines.as_dict(row) for row in rows], search, as_json, queued_only=False)


def _say(record: ArchitectureRecord) -> None:
    console.print(f"trained {escape(baselines.zoo_name(record) or '?')}: {record.state}, "
                  f"accuracy {_number(record.accuracy)}", highlight=False)


def _report(rows: list[dict[str, Any]], search_id: str, as_json: bool, queued_only: bool
            ) -> None:
    if as_json:
        print(json.dumps({"search_id": search_id, "baselines": rows}))
        return
    if queued_only:
        console.print(f"queued {len(rows)} zoo baseline(s) beside search {search_id} on the "
                      f"server: " + ", ".join(f"{row['name']} (architecture {row['id']})"
                                              for row in rows), highlight=False)
        return
    console.print(baselines_table(rows, f"zoo baselines beside search {search_id}"))


def baselines_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=escape(title))
    for column in ("id", "network", "state", "accuracy", "reward", "parameters",
                   "multiply-adds", "seconds"):
        table.add_column(column, justify="left" if column in ("network", "state") else "right")
    for row in rows:
        table.add_row(str(row["id"]), escape(row["name"] or "?"), row["state"],
                      _number(row["accuracy"]), _number(row["reward"]),
                      "-" if row["params"] is None else f"{row['params']:,}",
                      "-" if row["flops"] is None else f"{row['flops'] / 1e6:.1f}M",
                      "-" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}")
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
