"""The `nas` command. Errors a user can make exit with status 2 and one line, no traceback."""

from __future__ import annotations

import logging
import os

from nas.cli import (  # noqa: F401  (they register commands)
    export_commands,
    search_commands,
    train_commands,
    worker_commands,
)
from nas.cli.app import app


def main() -> None:
    logging.basicConfig(level=os.environ.get("NAS_LOG_LEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    app()
