"""The zoo and the published reference cells, with their sizes and CPU latency at CIFAR size.

Each row is measured once and kept in `$NAS_HOME/cache/zoo-listing.json`, keyed by the
architecture, the cell knobs and the input shape, under a fingerprint of the `searchspace`
sources, of how latency is measured (`nas.latency`) and of the torch version: a listing after
the first is a file read, and any change to the networks, to the measurement (or to torch)
measures them again. Latency is measured on `nas.latency.FORWARD_THREADS` threads, whatever the
process's thread count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import searchspace
from nas import latency
from nas.architectures import Architecture, all_architectures
from nas.latency import FORWARD_THREADS, forward_ms
from nas.paths import nas_home
from searchspace.complexity import count_flops, count_parameters

logger = logging.getLogger(__name__)
INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
LATENCY_REPEATS = 5


def cache_path() -> Path:
    return nas_home() / "cache" / "zoo-listing.json"


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """What the measurements depend on: the `searchspace` sources, `nas.latency`'s and the
    torch version."""
    digest = hashlib.sha256(torch.__version__.encode())
    root = Path(searchspace.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(Path(latency.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint():
        return {}
    rows = data.get("rows")
    return rows if isinstance(rows, dict) else {}


def _write_cache(rows: dict[str, Any]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         suffix=".tmp") as handle:
            json.dump({"fingerprint": fingerprint(), "rows": rows}, handle)
        os.replace(handle.name, path)
    except OSError as error:  # a read-only home still lists, it measures again next time
        logger.warning("cannot keep the zoo measurements in %s: %s", path, error)


def measure(architecture: Architecture, cells: int, channels: int) -> dict[str, Any]:
    """Parameters, multiply-adds and median CPU latency (ms, batch 1) at `INPUT_SHAPE`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = architecture.build(num_classes=NUM_CLASSES, in_channels=INPUT_SHAPE[0],
                                   input_size=INPUT_SHAPE[1], cells=cells, channels=channels)
    return {"name": architecture.name, "kind": architecture.kind,
            "params": count_parameters(model), "flops": count_flops(model, INPUT_SHAPE),
            "latency_ms": round(forward_ms(model, INPUT_SHAPE, repeats=LATENCY_REPEATS), 3),
            "latency_threads": FORWARD_THREADS}


MAX_CELLS, MAX_CHANNELS = 8, 64  # the reference cells' largest sizes a listing builds


@lru_cache(maxsize=8)
def listing(cells: int = 2, channels: int = 16) -> tuple[dict, ...]:
    """One row per architecture: name, kind, parameters, multiply-adds and CPU latency for 10
    classes at 3x32x32 (`cells` and `channels` size the reference cells' networks)."""
    kept = _read_cache()
    rows, measured = [], False
    for architecture in all_architectures():
        key = f"{architecture.name}|cells={cells}|channels={channels}|3x32x32"
        row = kept.get(key)
        if not isinstance(row, dict) or row.get("name") != architecture.name:
            row = measure(architecture, cells, channels)
            kept[key], measured = row, True
        rows.append(row)
    if measured:
        _write_cache(kept)
    return tuple(rows)
