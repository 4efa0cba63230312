"""Stack the cells of a genotype into a classification network.

Layout (NASNet): a stem, then three stages of `cells` normal cells with a reduction cell
between stages that doubles the channels. The CIFAR stem is one 3x3 convolution; the ImageNet
stem is a stride-2 3x3 convolution followed by two reduction cells (8x smaller before stage 1).
An optional auxiliary head reads the end of the second stage, as in NASNet and DARTS.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from searchspace.cells import Cell
from searchspace.genotype import Genotype

Stem = Literal["cifar", "imagenet"]
IMAGENET_STEM_MIN_SIZE = 128  # inputs from this many pixels up get the ImageNet stem


def stem_for(input_size: int) -> Stem:
    """The stem a cell network uses for `input_size`-pixel inputs (ImageNet from 128 px up)."""
    return "imagenet" if input_size >= IMAGENET_STEM_MIN_SIZE else "cifar"


def cifar_stem(in_channels: int, stem_channels: int) -> nn.Sequential:
    """The CIFAR stem: one 3x3 convolution at full resolution, then batch norm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_channels),
    )


def imagenet_stem(in_channels: int, stem_channels: int) -> nn.Sequential:
    """The ImageNet stem's convolution: 3x3 at stride 2, then batch norm (two reduction cells
    follow it: see `build_stem`)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(stem_channels),
    )


def build_stem(
    stem: str, in_channels: int, channels: int, stem_multiplier: int = 3
) -> tuple[nn.Sequential, list[tuple[int, bool]]]:
    """The stem of a cell network whose first stage has `channels`, and the (channels,
    is_reduction) of the cells it adds before stage 1: none for CIFAR (`stem_multiplier` x
    `channels` wide), two reduction cells for ImageNet (8x smaller before stage 1)."""
    if stem == "cifar":
        return cifar_stem(in_channels, stem_multiplier * channels), []
    return imagenet_stem(in_channels, max(channels // 2, 8)), [
        (max(channels // 4, 2), True), (max(channels // 2, 2), True),
    ]


def stage_plan(cells: int, channels: int) -> list[tuple[int, bool]]:
    """(channels, is_reduction) of each cell of the three stages after the stem."""
    plan: list[tuple[int, bool]] = []
    for stage in range(3):
        stage_channels = channels * 2**stage
        if stage > 0:
            plan.append((stage_channels, True))
        plan += [(stage_channels, False)] * cells
    return plan


class AuxiliaryHead(nn.Module):
    """A small classifier on an intermediate feature map, for the auxiliary loss."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class CellNetwork(nn.Module):
    """A network of cells from `genotype`.

    `reduce_inputs` builds reduction cells the ENAS way (see `Cell`): the layout the supernet
    shares weights in. In training mode with `auxiliary=True`, `forward` returns
    `(logits, auxiliary_logits)`; otherwise it returns the logits. `drop_path_prob` (set by
    the training loop) is the probability of dropping each op's output during training.
    """

    def __init__(
        self,
        genotype: Genotype,
        *,
        num_classes: int = 10,
        cells: int = 2,
        channels: int = 16,
        in_channels: int = 3,
        stem: Stem = "cifar",
        auxiliary: bool = False,
        stem_multiplier: int = 3,
        reduce_inputs: bool = False,
    ) -> None:
        super().__init__()
        if cells < 1 or channels < 2 or num_classes < 2 or in_channels < 1:
            raise ValueError(
                f"need cells >= 1, channels >= 2, num_classes >= 2 and in_channels >= 1; "
                f"got cells={cells}, channels={channels}, num_classes={num_classes}, "
                f"in_channels={in_channels}"
            )
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.cells = nn.ModuleList()
        # (channels, reduction) for each cell after the stem
        self.stem, plan = build_stem(stem, in_channels, channels, stem_multiplier)
        stem_channels = self.stem[0].out_channels
        plan += stage_plan(cells, channels)
        auxiliary_after = len(plan) - cells - 1  # last normal cell of the second stage

        c_prev_prev, c_prev, reduction_prev = stem_channels, stem_channels, False
        self.auxiliary_head: AuxiliaryHead | None = None
        for index, (cell_channels, reduction) in enumerate(plan):
            blocks = genotype.reduction if reduction else genotype.normal
            cell = Cell(
                blocks, c_prev_prev, c_prev, cell_channels,
                reduction=reduction, reduction_prev=reduction_prev, reduce_inputs=reduce_inputs,
            )
            self.cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, reduction
            if auxiliary and index == auxiliary_after:
                self.auxiliary_head = AuxiliaryHead(c_prev, num_classes)
        self.auxiliary_after = auxiliary_after
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        prev_prev = prev = self.stem(x)
        auxiliary_logits = None
        for index, cell in enumerate(self.cells):
            prev_prev, prev = prev, cell(prev_prev, prev, self.drop_path_prob)
            if self.auxiliary_head is not None and self.training and index == self.auxiliary_after:
                auxiliary_logits = self.auxiliary_head(prev)
        logits = self.classifier(self.global_pool(prev).flatten(1))
        if auxiliary_logits is not None:
            return logits, auxiliary_logits
        return logits
