"""The Typer app and what every command shares: one-line user errors with exit status 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from nas.cli import remote
from nas.search import NoCandidateScored
from nas.service.errors import UserError, describe
from nas.store import OwnershipLost, ResumeLimitReached, SearchOwned
from nas.threads import thread_count
from nas.train import TrainingDiverged

app = typer.Typer(help="Neural architecture search: NASNet-style cells, ENAS and Zoph search.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="The classic architectures and the published reference cells.",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


@app.callback()
def _options(server: Annotated[str | None, typer.Option(
        "--server", envvar="NAS_SERVER", help="talk to a deployed service (with NAS_API_TOKEN): "
        "searches, show, search, resume, cancel, delete, export best")] = None) -> None:
    remote.configure(server)


console = Console()
USER_ERRORS = (UserError, ValueError, LookupError, OSError, TrainingDiverged, SearchOwned,
               OwnershipLost, ResumeLimitReached, NoCandidateScored)


def fail(message: str) -> NoReturn:
    """Print one line to stderr (as typed: no markup read in it) and exit with status 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                               soft_wrap=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into `fail`."""
    try:
        yield
    except USER_ERRORS as error:
        fail(describe(error))


def configure_threads() -> None:
    """Compute with `nas.threads.thread_count()` threads (NAS_THREADS, else OMP_NUM_THREADS,
    else the CPUs this process may use); a bad NAS_THREADS is a user error."""
    import torch

    with user_errors():
        torch.set_num_threads(thread_count())


