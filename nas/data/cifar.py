"""CIFAR-10 from the standard python batches (``cifar-10-batches-py``), kept in memory as uint8."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.core import (
    DatasetError,
    DatasetInfo,
    DataSplits,
    default_data_dir,
    limit_indices,
    stratified_split,
)
from nas.data.tensors import Augmentation, resize_images, tensor_splits

logger = logging.getLogger(__name__)

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_SIZE = 32
CIFAR_PIXELS = 3 * CIFAR_SIZE * CIFAR_SIZE
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
LAYOUT = (
    f"<dir>/{CIFAR_FOLDER}/data_batch_1..5 in CIFAR-10 python format (pickled dicts with "
    f"'data': uint8 array (N, {CIFAR_PIXELS}) and 'labels': N ints; optional batches.meta "
    "with 'label_names')"
)
_BATCH_NAME = re.compile(r"data_batch_(\d+)")
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a batch file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def batch_files(folder: Path) -> list[Path]:
    """The ``data_batch_<k>`` files of ``folder``, in numeric order."""
    found = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if path.is_file() and (match := _BATCH_NAME.fullmatch(path.name))
    ]
    return [path for _, path in sorted(found)]


def find_batches_dir(path: Path) -> Path | None:
    """``path/cifar-10-batches-py`` or ``path`` itself, whichever holds data batches."""
    for candidate in (path / CIFAR_FOLDER, path):
        if candidate.is_dir() and batch_files(candidate):
            return candidate
    return None


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            return _ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # any decoding failure means a malformed file
        raise DatasetError(
            f"cannot read {path} as a CIFAR-10 python batch ({error}); expected {LAYOUT}"
        ) from error


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one data batch; return uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(f"{path} has no 'data' and 'labels' (found {keys}); expected {LAYOUT}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != CIFAR_PIXELS or data.dtype != np.uint8:
        raise DatasetError(
            f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {CIFAR_PIXELS}); "
            f"expected {LAYOUT}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{path}: 'labels' must be {len(data)} integers, got {labels.dtype} {labels.shape}; "
            f"expected {LAYOUT}"
        )
    return data.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE), labels.astype(np.int64)


def read_class_names(folder: Path) -> tuple[str, ...]:
    """Class names from ``batches.meta``, or the standard CIFAR-10 names when it is absent."""
    meta_path = folder / "batches.meta"
    if not meta_path.is_file():
        return CIFAR_CLASSES
    meta = _unpickle(meta_path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list | tuple) or not names:
        raise DatasetError(f"{meta_path} has no 'label_names' list; expected {LAYOUT}")
    return tuple(str(name) for name in names)


def download_cifar10(root: Path) -> None:
    """Download CIFAR-10 into ``root/cifar-10-batches-py`` through torchvision (needs a network)."""
    from torchvision.datasets import CIFAR10

    logger.info("downloading CIFAR-10 into %s", root)
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as error:  # network or disk failure: report it with the path
        raise DatasetError(f"could not download CIFAR-10 into {root}: {error}") from error


def resolve_cifar_dir(data_dir: str | Path | None, download: bool) -> Path:
    """Find the batch folder for ``data_dir`` (downloading when asked); raise DatasetError."""
    root = Path(data_dir) if data_dir is not None else default_data_dir("cifar10")
    folder = find_batches_dir(root)
    if folder is None and download:
        download_cifar10(root)
        folder = find_batches_dir(root)
    if folder is not None:
        return folder
    if data_dir is None:
        raise DatasetError(
            f"no CIFAR-10 data in {root} (the default: $NAS_DATA_DIR/cifar10 or ./data/cifar10); "
            f"pass --data-dir pointing at it, or --download where a network exists; "
            f"expected {LAYOUT}"
        )
    problem = "does not exist" if not root.exists() else "holds no data_batch_* files"
    raise DatasetError(f"CIFAR-10 folder {root} {problem}; expected {LAYOUT}")


def load_cifar10(
    data_dir: str | Path | None,
    *,
    valid_fraction: float,
    seed: int,
    input_size: int | None,
    limit: int | None,
    download: bool,
) -> DataSplits:
    """CIFAR-10 training batches split into train/valid; ``test_batch`` is not used."""
    folder = resolve_cifar_dir(data_dir, download)
    class_names = read_class_names(folder)
    parts = [read_batch(path) for path in batch_files(folder)]
    images = torch.from_numpy(np.concatenate([images for images, _ in parts]))
    labels = torch.from_numpy(np.concatenate([labels for _, labels in parts]))
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DatasetError(
            f"{folder}: labels span {int(labels.min())}..{int(labels.max())} but there are "
            f"{len(class_names)} class names; expected {LAYOUT}"
        )
    keep = limit_indices(len(labels), limit, seed)
    images, labels = images[keep], labels[keep]
    size = input_size or CIFAR_SIZE
    images = resize_images(images, size)
    train_index, valid_index = stratified_split(labels, valid_fraction, seed)
    pad = max(1, round(4 * size / CIFAR_SIZE))
    train, valid = tensor_splits(
        images, labels, train_index, valid_index,
        scale=1.0 / 255.0, augmentation=Augmentation(pad=pad, flip=True),
        mean=torch.tensor(CIFAR_MEAN), std=torch.tensor(CIFAR_STD),
    )
    logger.debug("CIFAR-10 from %s: %d train, %d valid", folder, len(train), len(valid))
    info = DatasetInfo(
        name="cifar10", num_classes=len(class_names), in_channels=3, input_size=size,
        class_names=class_names, train_size=len(train), valid_size=len(valid),
    )
    return DataSplits(info, train, valid)
