"""The `nas` command. Errors a user can make exit with status 2 and one line, no traceback."""

from __future__ import annotations

import logging
import os

import typer

from nas.allocator import keep_freed_memory
from nas.threads import prefer_passive_openmp
from nas.without_triton import hide_triton_without_gpu

prefer_passive_openmp()  # before torch loads: OpenMP reads its wait policy then
keep_freed_memory()
hide_triton_without_gpu()

from nas.cli import (  # noqa: E402, F401  (they register commands)
    baseline_commands,
    export_commands,
    search_commands,
    serve_commands,
    train_commands,
    worker_commands,
)
from nas.cli.app import app, fail  # noqa: E402

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def main() -> None:
    level = os.environ.get("NAS_LOG_LEVEL", "").strip().upper() or "WARNING"
    if level not in LOG_LEVELS:
        try:
            fail(f"NAS_LOG_LEVEL={os.environ['NAS_LOG_LEVEL']!r} must be one of "
                 f"{', '.join(LOG_LEVELS)} (in any case)")
        except typer.Exit as refused:
            raise SystemExit(refused.exit_code) from None
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    app()
