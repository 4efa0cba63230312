"""ImageNet-layout folders (``<dir>/<class>/*.jpg``), decoded lazily with PIL per batch.

torchvision (its transforms and folder scanning) is imported when a folder is opened, not with
this module: importing it costs every process about 160 MiB of memory (a search on digits or
CIFAR-10, the API server), and only image folders use it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from nas.data.core import (
    DatasetError,
    DatasetInfo,
    DataSplits,
    batches_per_epoch,
    default_data_dir,
    limit_indices,
    seeded_generator,
    stratified_split,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 224


def layout() -> str:
    """The folder layout that is expected, for error messages."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return ("<dir>/<class>/<image> with at least 2 class folders, each holding images "
            f"({', '.join(IMG_EXTENSIONS)}); or the same under <dir>/train/, with <dir>/val/ "
            "optionally used for validation")


Sample = tuple[str, int]
CHECKED_PER_CLASS = 3  # images decoded per class when a folder is opened
Transform = Callable[[Image.Image], Tensor]


def train_transform(size: int) -> Transform:
    """RandomResizedCrop(size, scale=(0.35, 1)) + horizontal flip + ImageNet normalization."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.35, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(size: int) -> Transform:
    """Resize(size * 8/7) + CenterCrop(size) + ImageNet normalization."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(int(size * 8 / 7)),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def list_classes(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root``."""
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def check_folder_links(root: Path) -> None:
    """DatasetError naming the link when a symbolic link leads back to a folder the tree
    already holds (a loop, which would be walked for ever, or a second copy of a class whose
    images would then be labelled as the folder the link sits in)."""
    seen = {os.path.realpath(root)}
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        for name in subfolders:
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen:
                raise DatasetError(f"{path} links to {real}, a folder the image folder "
                                   f"already holds (a loop or a second copy); remove the link")
            seen.add(real)


def scan_folder(root: Path, class_names: list[str] | None = None) -> tuple[list[str], list[Sample]]:
    """Class names and (path, label) samples of an ImageFolder tree; raise DatasetError if unusable.

    With ``class_names`` given (a validation folder), its classes must be among them.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; expected {layout()}")
    check_folder_links(root)
    found = list_classes(root)
    if class_names is None:
        if len(found) < 2:
            raise DatasetError(
                f"{root} has {len(found)} class folder(s), need at least 2; expected {layout()}"
            )
        class_names = found
    elif unknown := sorted(set(found) - set(class_names)):
        raise DatasetError(f"{root} has class folders {unknown} not in the training classes")
    class_to_index = {name: index for index, name in enumerate(class_names)}
    present = {name: class_to_index[name] for name in found}
    samples = make_dataset(root, present, extensions=IMG_EXTENSIONS, allow_empty=True)
    counts = Counter(label for _, label in samples)
    if empty := [str(root / name) for name in found if counts[class_to_index[name]] == 0]:
        raise DatasetError(
            f"class folder(s) {', '.join(empty)} hold no images; expected {layout()}")
    return class_names, samples


def decode(path: str) -> Image.Image:
    """The image at `path` as RGB; DatasetError naming the file when it cannot be decoded."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot decode image {path}: {error}") from error


def check_images(samples: list[Sample], per_class: int = CHECKED_PER_CLASS) -> None:
    """Decode the first `per_class` images of every class, so a folder of files that are not
    images fails when it is opened (naming the file), not in every candidate of a search."""
    seen: Counter[int] = Counter()
    for path, label in samples:
        if seen[label] < per_class:
            decode(path)
            seen[label] += 1


class SeededImageDataset(Dataset):
    """Decodes ``samples[index]``; a random transform runs under the per-sample seed it is given."""

    def __init__(self, samples: list[Sample], transform: Transform, random: bool) -> None:
        self.samples = samples
        self.transform = transform
        self.random = random

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Tensor, int]:
        index, sample_seed = item
        path, label = self.samples[index]
        image = decode(path)
        if not self.random:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.transform(image), label


class SeededBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (index, transform seed), both drawn from one generator seeded once."""

    def __init__(
        self, size: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int
    ) -> None:
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = seeded_generator(seed)

    def __len__(self) -> int:
        return batches_per_epoch(self.size, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=self.generator)
        else:
            order = torch.arange(self.size)
        seeds = torch.randint(0, 2**62, (self.size,), generator=self.generator)
        for step in range(len(self)):
            window = slice(step * self.batch_size, (step + 1) * self.batch_size)
            yield list(zip(order[window].tolist(), seeds[window].tolist(), strict=True))


@dataclass
class ImageFolderSplit:
    """One split of an image folder; ``num_workers`` is passed to the DataLoader (0 = inline)."""

    samples: list[Sample]
    input_size: int
    num_workers: int = 0

    def __len__(self) -> int:
        return len(self.samples)

    def loader(
        self, batch_size: int, *, shuffle: bool, seed: int, augment: bool, drop_last: bool
    ) -> DataLoader:
        """A DataLoader; augmented batches use the train transform, others the eval transform."""
        transform = train_transform(self.input_size) if augment else eval_transform(self.input_size)
        dataset = SeededImageDataset(self.samples, transform, random=augment)
        sampler = SeededBatchSampler(
            len(self.samples), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
        )
        return DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.num_workers,
            generator=seeded_generator(seed),
        )


def _take(samples: list[Sample], count: int | None, seed: int) -> list[Sample]:
    return [samples[i] for i in limit_indices(len(samples), count, seed).tolist()]


def scan_imagefolder(data_dir: str | Path | None
                     ) -> tuple[list[str], list[Sample], list[Sample] | None]:
    """Class names, training samples and (with ``<dir>/train`` and ``<dir>/val``) validation
    samples of an ImageFolder tree, the first images of each class decoded; DatasetError when
    the tree is unusable. No image is loaded beyond those checked."""
    root = Path(data_dir) if data_dir is not None else default_data_dir("imagefolder")
    if data_dir is None and not root.is_dir():
        raise DatasetError(
            f"no image folder at {root} (the default: $NAS_DATA_DIR/imagefolder or "
            f"./data/imagefolder); pass --data-dir (data_dir=); expected {layout()}"
        )
    train_root = root / "train" if (root / "train").is_dir() else root
    class_names, pool = scan_folder(train_root)
    check_images(pool)
    if train_root == root or not (root / "val").is_dir():
        return class_names, pool, None
    _, valid_pool = scan_folder(root / "val", class_names)
    check_images(valid_pool)
    return class_names, pool, valid_pool


def load_imagefolder(
    data_dir: str | Path | None,
    *,
    valid_fraction: float,
    seed: int,
    input_size: int | None,
    limit: int | None,
) -> DataSplits:
    """An ImageFolder tree; ``<dir>/train`` is used when present, ``<dir>/val`` as validation."""
    class_names, pool, valid_pool = scan_imagefolder(data_dir)
    if valid_pool is not None:
        n_valid = None if limit is None else max(1, round(limit * valid_fraction))
        valid_samples = _take(valid_pool, n_valid, seed + 1)
        n_train = None if limit is None else max(1, limit - len(valid_samples))
        train_samples = _take(pool, n_train, seed)
    else:
        pool = _take(pool, limit, seed)
        labels = torch.tensor([label for _, label in pool])
        train_index, valid_index = stratified_split(labels, valid_fraction, seed)
        train_samples = [pool[i] for i in train_index.tolist()]
        valid_samples = [pool[i] for i in valid_index.tolist()]
    size = input_size or DEFAULT_INPUT_SIZE
    info = DatasetInfo(
        name="imagefolder", num_classes=len(class_names), in_channels=3, input_size=size,
        class_names=tuple(class_names), train_size=len(train_samples),
        valid_size=len(valid_samples),
    )
    train = ImageFolderSplit(train_samples, size)
    return DataSplits(info, train, ImageFolderSplit(valid_samples, size))
