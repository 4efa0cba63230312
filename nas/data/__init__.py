"""Datasets by name for search and training.

``load_dataset(name, ...)`` returns :class:`DataSplits`: a seeded train/valid split of the
*training* data plus re-iterable loaders that yield ``(images, labels)`` batches, images as
float32 NCHW normalized per channel and labels as int64. Each ``iter()`` of a loader is one
epoch; a train loader owns a generator seeded once, so the sequence of epochs (order and
augmentation) is the same in every process for the same seed.

Datasets: ``digits`` (scikit-learn's bundled 8x8 digits, the default that needs no files),
``cifar10`` (the standard python batches), ``imagefolder`` (ImageNet layout, decoded lazily)
and ``synthetic`` (generated, learnable, for tests).
"""

from __future__ import annotations

import logging
from pathlib import Path

from nas.data.builtin import load_digits, load_synthetic
from nas.data.cifar import load_cifar10, read_class_names, resolve_cifar_dir
from nas.data.core import DatasetError, DatasetInfo, DataSplits, check_options
from nas.data.imagefolder import load_imagefolder, scan_imagefolder

__all__ = ["DATASETS", "DataSplits", "DatasetError", "DatasetInfo", "check_dataset",
           "load_dataset"]

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("digits", "cifar10", "imagefolder", "synthetic")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    valid_fraction: float = 0.2,
    seed: int = 0,
    input_size: int | None = None,
    limit: int | None = None,
    download: bool = False,
) -> DataSplits:
    """Load dataset ``name`` and split its training data into train/valid.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: where the files are (cifar10, imagefolder); ignored by digits and synthetic.
        valid_fraction: share of the training data held out for validation, in (0, 1).
        seed: seeds the split and the ``limit`` subset.
        input_size: side of the yielded images; in-memory datasets are resized once at load.
        limit: use at most this many examples (synthetic: generate exactly this many).
        download: cifar10 only: fetch it through torchvision when no data is found.

    Raises:
        DatasetError: unknown name, or missing/malformed data (the message names the path).
        ValueError: an option out of range.
    """
    key = _known(name)
    check_options(valid_fraction, limit, input_size)
    options = {
        "valid_fraction": valid_fraction, "seed": seed, "input_size": input_size, "limit": limit,
    }
    if key in ("digits", "synthetic") and data_dir is not None:
        logger.debug("dataset %s needs no files; ignoring data_dir=%s", key, data_dir)
    if key == "digits":
        return load_digits(**options)
    if key == "synthetic":
        return load_synthetic(**options)
    if key == "cifar10":
        return load_cifar10(data_dir, download=download, **options)
    return load_imagefolder(data_dir, **options)


BUNDLED: tuple[str, ...] = ("digits", "synthetic")  # they read no files


def check_data_dir(name: str, data_dir: str | Path | None) -> None:
    """`DatasetError` when a folder is given for a dataset that reads no files: the user meant
    another dataset (`--data-dir ~/cifar` without `--dataset cifar10` trained on digits)."""
    key = _known(name)
    if key in BUNDLED and data_dir is not None:
        raise DatasetError(f"dataset {key} reads no files, so the folder {str(data_dir)[:200]} "
                           f"would go unused: drop it, or name the dataset its files hold "
                           f"(cifar10 or imagefolder)")


def _known(name: str) -> str:
    key = name.strip().lower()
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


def check_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    valid_fraction: float = 0.2,
    input_size: int | None = None,
    limit: int | None = None,
) -> None:
    """Raise what `load_dataset` raises for an unknown name, an option out of range or files
    that are missing, without reading the data: CIFAR-10's batch folder and class names,
    an ImageFolder's tree and the first images of each class. A search checks this when it is
    queued and loads its dataset once, when it runs."""
    key = _known(name)
    check_options(valid_fraction, limit, input_size)
    check_data_dir(key, data_dir)
    if key == "cifar10":
        read_class_names(resolve_cifar_dir(data_dir, download=False))
    elif key == "imagefolder":
        scan_imagefolder(data_dir)
