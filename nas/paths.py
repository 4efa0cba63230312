"""Where the service keeps its files: `$NAS_HOME` (default `./.nas`)."""

from __future__ import annotations

import os
from pathlib import Path


def nas_home() -> Path:
    """`$NAS_HOME`, default `./.nas`: the SQLite store and trained weights live here."""
    return Path(os.environ.get("NAS_HOME") or ".nas")


def weights_dir() -> Path:
    """Trained weights: `$NAS_HOME/weights`."""
    return nas_home() / "weights"


def datasets_dir() -> Path:
    """Uploaded datasets, one folder per id: `$NAS_HOME/datasets`."""
    return nas_home() / "datasets"
