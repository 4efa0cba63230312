"""Shared pieces of the dataset layer: errors, metadata, splits and seeded index helpers."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from nas.seeding import stream_seed

Batch = tuple[Tensor, Tensor]


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message names the path and the layout expected."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset; ``input_size`` is the side of yielded tensors."""

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    class_names: tuple[str, ...]
    train_size: int
    valid_size: int


class SplitSource(Protocol):
    """One split of a dataset that can build batch loaders over itself."""

    def loader(
        self, batch_size: int, *, shuffle: bool, seed: int, augment: bool, drop_last: bool
    ) -> Iterable[Batch]:
        """Return a re-iterable loader; every ``iter()`` is one epoch."""
        ...


@dataclass
class DataSplits:
    """The train and validation splits of one dataset, with loaders over each."""

    info: DatasetInfo
    train: SplitSource
    valid: SplitSource

    def train_loader(
        self, batch_size: int, *, seed: int = 0, augment: bool = True, drop_last: bool = True
    ) -> Iterable[Batch]:
        """Shuffled (and optionally augmented) batches, reproducible epoch after epoch for ``seed``.

        ``drop_last`` drops the final partial batch only when at least one full batch exists.
        """
        check_batch_size(batch_size)
        return self.train.loader(
            batch_size, shuffle=True, seed=seed, augment=augment, drop_last=drop_last
        )

    def valid_loader(self, batch_size: int) -> Iterable[Batch]:
        """Validation batches in a fixed order, never augmented, last partial batch kept."""
        check_batch_size(batch_size)
        return self.valid.loader(batch_size, shuffle=False, seed=0, augment=False, drop_last=False)


def check_batch_size(batch_size: int) -> None:
    """Raise ValueError unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def batches_per_epoch(size: int, batch_size: int, drop_last: bool) -> int:
    """Batches in one epoch; with ``drop_last`` a dataset smaller than a batch still gives one."""
    if drop_last and size >= batch_size:
        return size // batch_size
    return math.ceil(size / batch_size)


def check_options(valid_fraction: float, limit: int | None, input_size: int | None) -> None:
    """Validate the options shared by every dataset; raise ValueError on a bad one."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be at least 2 (one train and one valid example), got {limit}")
    if input_size is not None and input_size < 1:
        raise ValueError(f"input_size must be a positive integer, got {input_size}")


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded once from every bit of ``seed`` (see `nas.seeding`)."""
    generator = torch.Generator()
    generator.manual_seed(stream_seed(seed, "data"))
    return generator


def limit_indices(size: int, limit: int | None, seed: int) -> Tensor:
    """Indices of at most ``limit`` examples out of ``size``, chosen after a seeded shuffle."""
    if limit is None or limit >= size:
        return torch.arange(size)
    order = torch.randperm(size, generator=seeded_generator(seed))
    return order[:limit].sort().values


def stratified_split(labels: Tensor, valid_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded stratified split of positions ``0..len(labels)-1`` into (train, valid).

    The valid split holds ``round(n * valid_fraction)`` examples (at least one, and at least
    one is left for training), shared between classes by largest remainder.
    """
    size = len(labels)
    if size < 2:
        raise ValueError(f"need at least 2 examples to split, got {size}")
    n_valid = min(max(round(size * valid_fraction), 1), size - 1)
    generator = seeded_generator(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = counts.double() * n_valid / size
    per_class = quotas.floor().long()
    shortfall = n_valid - int(per_class.sum())
    if shortfall > 0:
        remainders = quotas - per_class.double()
        order = torch.argsort(-remainders, stable=True)
        per_class[order[:shortfall]] += 1
    train_parts: list[Tensor] = []
    valid_parts: list[Tensor] = []
    for cls, take in zip(classes.tolist(), per_class.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        valid_parts.append(members[:take])
        train_parts.append(members[take:])
    return torch.cat(train_parts).sort().values, torch.cat(valid_parts).sort().values


def default_data_dir(name: str) -> Path:
    """``$NAS_DATA_DIR/<name>`` when the variable is set, else ``./data/<name>``."""
    root = os.environ.get("NAS_DATA_DIR")
    return Path(root) / name if root else Path("data") / name

