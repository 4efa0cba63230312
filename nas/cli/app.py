"""The Typer app and what every command shares: one-line user errors with exit status 2."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from nas.config import describe_validation_error
from nas.train import TrainingDiverged

app = typer.Typer(help="Neural architecture search: NASNet-style cells, ENAS and Zoph search.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="The classic architectures and the published reference cells.",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
console = Console()
USER_ERRORS = (ValueError, LookupError, OSError, TrainingDiverged)


def fail(message: str) -> NoReturn:
    """Print one line to stderr (as typed: no markup read in it) and exit with status 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                               soft_wrap=True)
    raise typer.Exit(2)


def describe(error: BaseException) -> str:
    """One line for a user error (pydantic's field errors joined, KeyError without quotes)."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return " ".join(str(error).split())


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into `fail`."""
    try:
        yield
    except USER_ERRORS as error:
        fail(describe(error))


def configure_threads() -> None:
    """Use every core for intra-op work (NAS_THREADS overrides), no oversubscription."""
    import torch

    torch.set_num_threads(int(os.environ.get("NAS_THREADS", os.cpu_count() or 1)))


