"""Exports: a searched architecture as a `.py` module, TorchScript, ONNX or a state dict.

`pick` ranks a search's architectures as `nas show` does; `spec_for` fills the network
settings (flags, else what the architecture was trained with, else the search's proxy network
and dataset); `export_bytes` writes the export into a temporary folder and returns it as one
download: the file itself, or a zip when the format writes several (weights beside a `.py`, a
state dict with its genotype and settings), byte for byte what `nas export` writes.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nas.config import SearchConfig
from nas.data.imagefolder import DEFAULT_INPUT_SIZE, list_classes
from nas.export import FORMATS, ExportSpec, export
from nas.store import ArchitectureRecord, SearchRecord, SearchStatus, Store
from nas.transfer import TRANSFER_ROLE
from searchspace.op_set import OP_SET_VERSION

from .baselines import ZOO_ROLE
from .errors import Conflict, InvalidInput, NotFound

# (classes, input channels, input size) of the built-in datasets
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (10, 1, 8), "synthetic": (4, 3, 16), "cifar10": (10, 3, 32),
}
SUFFIXES = {"py": ".py", "torchscript": ".ts", "onnx": ".onnx", "state-dict": ".pt"}
MEDIA_TYPES = {"py": "text/x-python", "torchscript": "application/octet-stream",
               "onnx": "application/octet-stream", "state-dict": "application/octet-stream"}


@dataclass(frozen=True)
class Ranked:
    """The architecture picked from a search, with its rank and the search's settings."""

    search: SearchRecord
    architecture: ArchitectureRecord
    rank: int


@dataclass(frozen=True)
class Download:
    filename: str
    media_type: str
    content: bytes


def pick(store: Store, search_id: str | None, rank: int, *, transferred: bool = False
         ) -> Ranked:
    """The `rank`-th best architecture of a search (by default the most recent finished one),
    ranked as `nas show` ranks them, apart from transferred ones (scored on another dataset):
    those are ranked with `transferred`, or in a search that holds nothing else."""
    if search_id is None:
        search = store.latest_search(status=SearchStatus.FINISHED)
        if search is None:
            raise NotFound("no finished search in the store; run `nas search` first or pass "
                           "--search ID")
    else:
        search = store.get_search(search_id)
    ranked = (([] if transferred else store.ranked_architectures(search.id))
              or store.ranked_architectures(search.id, role=TRANSFER_ROLE))
    if not ranked:
        kind = "transferred architecture" if transferred else "scored architecture"
        raise NotFound(f"search {search.id} ({search.status}) has no {kind} to pick")
    if not 1 <= rank <= len(ranked):
        raise InvalidInput(f"rank {rank} is out of range: search {search.id} has {len(ranked)}"
                           f" ranked architecture(s), ranked from 1")
    return Ranked(search, ranked[rank - 1], rank)


def by_id(store: Store, architecture_id: int) -> Ranked:
    """One architecture (rank as among its search's best, 0 when it is not ranked)."""
    architecture = store.get_architecture(architecture_id)
    search = store.get_search(architecture.search_id)
    ranked = [row.id for row in store.ranked_architectures(search.id)]
    rank = ranked.index(architecture.id) + 1 if architecture.id in ranked else 0
    return Ranked(search, architecture, rank)


def _search_config(search: SearchRecord) -> SearchConfig | None:
    try:
        return SearchConfig.model_validate(search.config)
    except ValidationError:
        return None


def dataset_shape(name: str, path: Path | None, input_size: int | None
                  ) -> tuple[int | None, int, int]:
    """(classes or None when unknown, input channels, input size) of a configured dataset."""
    key = name.lower()
    if key in DATASET_SHAPES:
        classes, channels, size = DATASET_SHAPES[key]
        return classes, channels, input_size or size
    classes = None
    if path is not None:
        root = Path(path)
        root = root / "train" if (root / "train").is_dir() else root
        if root.is_dir():
            classes = len(list_classes(root))
    return classes, 3, input_size or DEFAULT_INPUT_SIZE


def check_op_set(architecture: ArchitectureRecord) -> None:
    """Refuse an architecture found with an op set other than the one this release builds
    (`searchspace.op_set`): its network would not be the one that was scored."""
    found = architecture.op_set_version
    if found != OP_SET_VERSION:
        raise Conflict(
            f"architecture {architecture.id} was found with op set {found}; this release "
            f"builds op set {OP_SET_VERSION}, whose ops differ, so its network would not be the "
            f"one that was scored: export it with a release of op set {found}, or search again")


def spec_for(picked: Ranked, *, cells: int | None = None, channels: int | None = None,
             num_classes: int | None = None, input_size: int | None = None) -> ExportSpec:
    """Network settings: the arguments, else what the architecture was trained with
    (transferred ones record it), else the search's proxy network and dataset. Refuses an
    architecture of another op set (`check_op_set`)."""
    check_op_set(picked.architecture)
    metrics = picked.architecture.metrics
    if picked.architecture.role == ZOO_ROLE:
        name = (metrics.zoo if metrics is not None else None) or "network"
        raise InvalidInput(f"architecture {picked.architecture.id} is the zoo baseline {name}: "
                           f"it has no cells to export; `nas train --arch {name}` trains it")
    recorded: dict[str, Any] = (metrics.network if metrics is not None else None) or {}
    config = _search_config(picked.search)
    if recorded:
        defaults = (recorded.get("num_classes"), recorded.get("in_channels", 3),
                    recorded.get("input_size", 32))
        default_cells, default_channels = recorded.get("cells", 2), recorded.get("channels", 16)
    elif config is not None:
        dataset = config.dataset
        defaults = dataset_shape(dataset.name, dataset.resolved_path(), dataset.input_size)
        default_cells, default_channels = config.network.cells, config.network.channels
    else:
        defaults, default_cells, default_channels = (None, 3, 32), 2, 16
    classes = num_classes if num_classes is not None else defaults[0]
    if classes is None:
        raise InvalidInput(f"cannot tell the number of classes of search {picked.search.id}'s "
                           f"dataset; pass --num-classes")
    rank = f"rank {picked.rank} of search" if picked.rank else "of search"
    return ExportSpec(
        picked.architecture.genotype, num_classes=classes,
        cells=cells if cells is not None else default_cells,
        channels=channels if channels is not None else default_channels,
        in_channels=defaults[1], input_size=input_size if input_size is not None else defaults[2],
        title=f"architecture {picked.architecture.id} ({rank} {picked.search.id}, "
              f"{picked.search.name})",
    )


def recorded_weights(picked: Ranked) -> Path | None:
    """The trained weights kept for the architecture, when they are still there."""
    path = picked.architecture.weights_path
    return Path(path) if path and Path(path).is_file() else None


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def export_bytes(picked: Ranked, fmt: str, stem: str | None = None,
                 **settings: int | None) -> Download:
    """The export as one download (see the module docstring); its files are named `stem`
    (default `architecture_<id>`), which a `.py` with weights names its weights file by."""
    check_format(fmt)
    spec = spec_for(picked, **settings)
    stem = stem or f"architecture_{picked.architecture.id}"
    with tempfile.TemporaryDirectory(prefix="nas-export-") as folder:
        written = export(spec, Path(folder) / f"{stem}{SUFFIXES[fmt]}", fmt,
                         recorded_weights(picked))
        if len(written) == 1:
            return Download(written[0].name, MEDIA_TYPES[fmt], written[0].read_bytes())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, path.name)
        return Download(f"{stem}-{fmt}.zip", "application/zip", buffer.getvalue())
