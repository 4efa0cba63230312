"""In-memory datasets: tensors kept whole, batched, augmented and normalized on the fly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nas.data.core import Batch, batches_per_epoch, seeded_generator


@dataclass(frozen=True)
class Augmentation:
    """Batch augmentation: zero-pad by ``pad`` then random-crop back, optional horizontal flip."""

    pad: int = 0
    flip: bool = False

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a float NCHW batch, drawing all randomness from ``generator``."""
        if self.pad > 0:
            images = random_translate(images, self.pad, generator)
        if self.flip:
            images = random_hflip(images, generator)
        return images


def random_translate(images: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Zero-pad each image by ``pad`` pixels and crop it back at a random offset (per image)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    offset_y = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator)
    offset_x = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator)
    rows = (offset_y + torch.arange(height)).unsqueeze(2)  # (B, H, 1)
    cols = (offset_x + torch.arange(width)).unsqueeze(1)  # (B, 1, W)
    index = torch.arange(batch).view(batch, 1, 1)
    cropped = padded.permute(0, 2, 3, 1)[index, rows, cols]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_hflip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def resize_images(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of an NCHW batch to ``size`` x ``size``, keeping the dtype."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrinking = size < images.shape[-1]
    resized = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False,
        antialias=shrinking,
    )
    if images.dtype == torch.uint8:
        return resized.round().clamp(0, 255).to(torch.uint8)
    return resized.to(images.dtype)


def channel_stats(images: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of ``images * scale`` (computed in float64)."""
    values = images.double().mul(scale).transpose(0, 1).flatten(1)
    return values.mean(1).float(), values.std(1).clamp_min(1e-6).float()


@dataclass
class TensorSplit:
    """One split held in memory: raw images (uint8 or float), int64 labels, how to normalize."""

    images: Tensor
    labels: Tensor
    scale: float
    mean: Tensor
    std: Tensor
    augmentation: Augmentation

    def __len__(self) -> int:
        return len(self.labels)

    def loader(
        self, batch_size: int, *, shuffle: bool, seed: int, augment: bool, drop_last: bool
    ) -> TensorLoader:
        """A re-iterable loader over this split."""
        return TensorLoader(
            self, batch_size, shuffle=shuffle, seed=seed, augment=augment, drop_last=drop_last
        )


class TensorLoader:
    """Batches of a :class:`TensorSplit`; its generator is seeded once, so epochs reproduce."""

    def __init__(
        self, split: TensorSplit, batch_size: int, *, shuffle: bool, seed: int, augment: bool,
        drop_last: bool,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.generator = seeded_generator(seed)
        self._mean = split.mean.view(1, -1, 1, 1)
        self._std = split.std.view(1, -1, 1, 1)

    def __len__(self) -> int:
        return batches_per_epoch(len(self.split), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        size = len(self.split)
        if self.shuffle:
            order = torch.randperm(size, generator=self.generator)
        else:
            order = torch.arange(size)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.split.images[index].float().mul_(self.split.scale)
            if self.augment:
                images = self.split.augmentation(images, self.generator)
            images = images.sub_(self._mean).div_(self._std)
            yield images, self.split.labels[index]


def tensor_splits(
    images: Tensor,
    labels: Tensor,
    train_index: Tensor,
    valid_index: Tensor,
    *,
    scale: float,
    augmentation: Augmentation,
    mean: Tensor | None = None,
    std: Tensor | None = None,
) -> tuple[TensorSplit, TensorSplit]:
    """Build train and valid splits; mean/std default to the train split's channel statistics."""
    if mean is None or std is None:
        mean, std = channel_stats(images[train_index], scale)

    def make(index: Tensor) -> TensorSplit:
        return TensorSplit(
            images[index].contiguous(), labels[index].long(), scale, mean, std, augmentation
        )

    return make(train_index), make(valid_index)
