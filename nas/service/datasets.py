"""Uploaded datasets: ImageFolder archives unpacked under `$NAS_HOME/datasets/<id>`."""

from __future__ import annotations

from pathlib import Path

from nas.data.archive import ArchiveLimits, ImportedDataset, import_archive
from nas.data.core import DatasetError
from nas.data.imagefolder import scan_folder

from .errors import InvalidInput


def add(archive: Path, datasets_dir: Path, limits: ArchiveLimits = ArchiveLimits()
        ) -> ImportedDataset:
    """Check and unpack an uploaded archive; `InvalidInput` with the reason when refused."""
    try:
        return import_archive(archive, datasets_dir, limits)
    except DatasetError as error:
        raise InvalidInput(f"dataset refused: {error}") from None


def listing(datasets_dir: Path) -> list[ImportedDataset]:
    """The uploaded datasets, oldest first."""
    if not datasets_dir.is_dir():
        return []
    found = []
    folders = sorted((path for path in datasets_dir.iterdir()
                      if path.is_dir() and not path.name.startswith(".")),
                     key=lambda path: path.stat().st_mtime)
    for folder in folders:
        root = folder / "train" if (folder / "train").is_dir() else folder
        try:
            classes, samples = scan_folder(root)
        except DatasetError:
            continue
        found.append(ImportedDataset(folder.name, folder, tuple(map(_text, classes)),
                                     len(samples)))
    return found


def _text(name: str) -> str:
    """A folder name as JSON can carry it: bytes that are not UTF-8 (a dataset unpacked before
    uploads refused such names) shown as escapes."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")

