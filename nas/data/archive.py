"""Import an uploaded ImageFolder archive (zip or tar) into the datasets folder, safely.

The archive is untrusted. Nothing is written outside a fresh folder inside `datasets_dir`:
members with absolute paths or `..`, links, devices and other special files are refused, and
so are archives past the limits on file count, total size, one file's size or compression
ratio (a zip bomb); sizes are counted while extracting, not taken from the headers. The tree
must then be an ImageFolder (class folders of images, optionally under `train/`) with at least
two classes, and every image must decode. Any failure removes the partial folder and raises
`DatasetError` naming the member; on success the folder is renamed into place atomically.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image

from nas.data.core import DatasetError
from nas.data.imagefolder import scan_folder

CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 20_000
    max_total_bytes: int = 2 << 30
    max_file_bytes: int = 64 << 20
    max_ratio: float = 200.0
    """Largest uncompressed / compressed size of the whole archive (zip bombs far exceed it)."""


@dataclass(frozen=True)
class ImportedDataset:
    id: str
    path: Path
    classes: tuple[str, ...]
    images: int


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    open: object  # () -> BinaryIO


def import_archive(archive: Path, datasets_dir: Path, limits: ArchiveLimits = ArchiveLimits()
                   ) -> ImportedDataset:
    """Check and unpack `archive` into `datasets_dir/<new id>`; `DatasetError` when unusable."""
    datasets_dir.mkdir(parents=True, exist_ok=True)
    dataset_id = uuid.uuid4().hex[:16]
    staging = datasets_dir / f".incoming-{dataset_id}"
    staging.mkdir()
    try:
        _extract(archive, staging, limits)
        root, classes, images = _check_image_folder(staging)
        target = datasets_dir / dataset_id
        root.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportedDataset(dataset_id, target, classes, images)


def _extract(archive: Path, target: Path, limits: ArchiveLimits) -> None:
    compressed = archive.stat().st_size
    files, total = 0, 0
    for member in _members(archive):
        relative = _safe_relative(member.name)
        if relative is None:
            continue
        destination = target.joinpath(*relative.parts)
        if member.is_dir:
            _make_folder(destination, member.name)
            continue
        files += 1
        if files > limits.max_files:
            raise DatasetError(f"the archive has more than {limits.max_files} files")
        _make_folder(destination.parent, member.name)
        try:
            sink = open(destination, "xb")  # noqa: SIM115  (closed below)
        except FileExistsError:
            raise DatasetError(f"archive member {member.name!r} is in it twice") from None
        except OSError:  # a folder of that name, or a file where its folder should be
            raise DatasetError(f"archive member {member.name!r} clashes with another member "
                               f"of the same path") from None
        written = 0
        with member.open() as source, sink:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                total += len(chunk)
                if written > limits.max_file_bytes:
                    raise DatasetError(f"{member.name} is larger than "
                                       f"{limits.max_file_bytes >> 20} MiB")
                too_big = total > limits.max_total_bytes
                too_compressed = total > CHUNK and total > limits.max_ratio * compressed
                if too_big or too_compressed:
                    raise DatasetError(
                        f"the archive unpacks to more than {_size(min(total, 1 << 62))} "
                        f"(limits: {_size(limits.max_total_bytes)}, "
                        f"{limits.max_ratio:g}x its {_size(compressed)}): refused as a zip bomb")
                sink.write(chunk)


def _make_folder(folder: Path, member: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a file of that name, or under one
        raise DatasetError(f"archive member {member!r} clashes with another member of the "
                           f"same path") from None


def _members(archive: Path) -> Iterator[_Member]:
    """The archive's members; special files and links are refused."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            for info in opened.infolist():
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise DatasetError(f"archive member {info.filename!r} is a link or a special "
                                       f"file; only folders and regular files are accepted")
                yield _Member(info.filename, info.is_dir(),
                              lambda info=info, opened=opened: opened.open(info))
        return
    try:
        opened_tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115  (closed below)
    except (tarfile.TarError, OSError):
        raise DatasetError("the upload is not a zip or tar archive") from None
    with opened_tar:
        for info in opened_tar:
            if not (info.isfile() or info.isdir()):
                raise DatasetError(f"archive member {info.name!r} is a link or a special file; "
                                   f"only folders and regular files are accepted")
            yield _Member(info.name, info.isdir(),
                          lambda info=info, opened=opened_tar: _tar_reader(opened, info))


def _tar_reader(opened: tarfile.TarFile, info: tarfile.TarInfo) -> BinaryIO:
    reader = opened.extractfile(info)
    if reader is None:
        raise DatasetError(f"archive member {info.name!r} cannot be read")
    return reader


def _safe_relative(name: str) -> PurePosixPath | None:
    """The member's path inside the target folder; `DatasetError` for one that would escape.
    None for the archive's root entry itself."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps bytes that are not UTF-8 as lone surrogates
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
        raise DatasetError(f"archive member {shown!r} has a name that is not UTF-8 text; "
                           f"rename it") from None
    if "\\" in name or "\x00" in name:
        raise DatasetError(f"archive member {name!r} has a backslash or NUL in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DatasetError(f"archive member {name!r} points outside the archive's folder")
    parts = [part for part in path.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _check_image_folder(unpacked: Path) -> tuple[Path, tuple[str, ...], int]:
    """The dataset's folder (class folders, or train/ and val/), class names and image count;
    every image must decode."""
    entries = [entry for entry in unpacked.iterdir()
               if not entry.name.startswith((".", "__MACOSX"))]
    dataset = unpacked
    if len(entries) == 1 and entries[0].is_dir() and not _has_images(entries[0]):
        dataset = entries[0]  # the archive wrapped the tree in one top folder
    root = dataset / "train" if (dataset / "train").is_dir() else dataset
    classes, samples = _scan(root, dataset)
    if root != dataset and (dataset / "val").is_dir():  # what a search validates on
        _scan(dataset / "val", dataset, classes)
    return dataset, tuple(classes), len(samples)


def _scan(folder: Path, dataset: Path, classes: list[str] | None = None
          ) -> tuple[list[str], list[tuple[str, int]]]:
    """`scan_folder`, every image decoded; errors name the archive's folders, not the
    server's."""
    try:
        found, samples = scan_folder(folder, classes)
    except DatasetError as error:
        message = str(error).replace(f"{dataset}/", "").replace(str(dataset), "the archive")
        raise DatasetError(message) from None
    for path, _ in samples:
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as error:
            relative = Path(path).relative_to(dataset)
            raise DatasetError(f"{relative} is not an image that decodes: "
                               f"{type(error).__name__}") from None
    return found, samples


def _has_images(folder: Path) -> bool:
    return any(entry.is_file() for entry in folder.iterdir())


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count} bytes"
