"""The `nas` command. Errors a user can make exit with status 2 and one line, no traceback.

Importing this package sets what must precede torch (OpenMP's wait policy, the allocator)
and loads nothing heavy: `main()` loads torch and the commands itself, so a Ctrl-C in those
first seconds ends the command quietly (status 130), not in a traceback.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from nas.allocator import keep_freed_memory
from nas.threads import prefer_passive_openmp
from nas.without_triton import hide_triton_without_gpu

prefer_passive_openmp()  # before torch loads: OpenMP reads its wait policy then
keep_freed_memory()

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
INTERRUPTED = 130  # a shell's status for a command ended by SIGINT


def load_app() -> Any:
    """The Typer app with every command registered (torch loaded, triton hidden without a GPU)."""
    hide_triton_without_gpu()
    from nas.cli import (  # noqa: F401  (they register commands)
        baseline_commands,
        export_commands,
        search_commands,
        serve_commands,
        train_commands,
        worker_commands,
    )
    from nas.cli.app import app

    return app


def main() -> None:
    try:
        app = load_app()
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None
    import typer

    from nas.cli.app import fail

    level = os.environ.get("NAS_LOG_LEVEL", "").strip().upper() or "WARNING"
    if level not in LOG_LEVELS:
        try:
            fail(f"NAS_LOG_LEVEL={os.environ['NAS_LOG_LEVEL']!r} must be one of "
                 f"{', '.join(LOG_LEVELS)} (in any case)")
        except typer.Exit as refused:
            raise SystemExit(refused.exit_code) from None
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    app()
