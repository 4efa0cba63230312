"""Datasets that need no files: scikit-learn's digits and a seeded synthetic set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.data.core import (
    DatasetInfo,
    DataSplits,
    limit_indices,
    stratified_split,
)
from nas.data.tensors import Augmentation, resize_images, tensor_splits

DIGITS_SIZE = 8
SYNTHETIC_CLASSES = 4
SYNTHETIC_CHANNELS = 3
SYNTHETIC_SIZE = 16
SYNTHETIC_EXAMPLES = 512
SYNTHETIC_NOISE = 1.0
SYNTHETIC_DATA_SEED = 1234  # the data itself is fixed; ``seed`` only picks the split


def translation_pad(native_pad: int, native_size: int, size: int) -> int:
    """The translation pad scaled from the native resolution to ``size`` (at least 1)."""
    return max(1, round(native_pad * size / native_size))


def digits_augmentation(size: int) -> Augmentation:
    """Digits augmentation: translation only (pad 1 at 8 px + random crop); never flipped."""
    return Augmentation(pad=translation_pad(1, DIGITS_SIZE, size), flip=False)


def load_digits(
    *, valid_fraction: float, seed: int, input_size: int | None, limit: int | None
) -> DataSplits:
    """scikit-learn's bundled 8x8 grayscale digits (1,797 images, 10 classes, values 0..16)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    keep = limit_indices(len(labels), limit, seed)
    images, labels = images[keep], labels[keep]
    size = input_size or DIGITS_SIZE
    images = resize_images(images, size)
    train_index, valid_index = stratified_split(labels, valid_fraction, seed)
    train, valid = tensor_splits(
        images, labels, train_index, valid_index,
        scale=1.0 / 16.0, augmentation=digits_augmentation(size),
    )
    info = DatasetInfo(
        name="digits", num_classes=10, in_channels=1, input_size=size,
        class_names=tuple(str(digit) for digit in range(10)),
        train_size=len(train), valid_size=len(valid),
    )
    return DataSplits(info, train, valid)


def make_synthetic(examples: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded images: one smooth random template per class plus Gaussian noise; balanced labels."""
    generator = torch.Generator().manual_seed(SYNTHETIC_DATA_SEED)  # fixed data, not a user seed
    coarse = torch.randn(SYNTHETIC_CLASSES, SYNTHETIC_CHANNELS, 4, 4, generator=generator)
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    templates = templates / templates.flatten(1).std(1).view(-1, 1, 1, 1)
    labels = torch.arange(examples) % SYNTHETIC_CLASSES
    labels = labels[torch.randperm(examples, generator=generator)]
    noise = torch.randn(examples, SYNTHETIC_CHANNELS, size, size, generator=generator)
    return templates[labels] + SYNTHETIC_NOISE * noise, labels


def load_synthetic(
    *, valid_fraction: float, seed: int, input_size: int | None, limit: int | None
) -> DataSplits:
    """Generated, learnable data: 4 classes, 3 channels, 16 px, 512 examples (``limit`` sets n)."""
    size = input_size or SYNTHETIC_SIZE
    images, labels = make_synthetic(limit or SYNTHETIC_EXAMPLES, size)
    train_index, valid_index = stratified_split(labels, valid_fraction, seed)
    train, valid = tensor_splits(
        images, labels, train_index, valid_index,
        scale=1.0, augmentation=Augmentation(pad=translation_pad(2, SYNTHETIC_SIZE, size)),
    )
    info = DatasetInfo(
        name="synthetic", num_classes=SYNTHETIC_CLASSES, in_channels=SYNTHETIC_CHANNELS,
        input_size=size,
        class_names=tuple(f"class_{index}" for index in range(SYNTHETIC_CLASSES)),
        train_size=len(train), valid_size=len(valid),
    )
    return DataSplits(info, train, valid)
