"""FractalNet (Larsson, Maire and Shakhnarovich, 2017): ultra-deep networks without residuals.

A fractal block of C columns is defined by the expansion f_1(z) = conv(z) and
f_C(z) = join(f_{C-1}(f_{C-1}(z)), conv(z)); the joins at the same depth are merged into one,
which averages its inputs, so column c has 2^(c-1) convolutions. As in the paper's 20-layer
CIFAR model: C = 3 columns, B = 5 blocks of 64, 128, 256, 512 and 512 channels, each followed by
2x2 max pooling, 3x3 conv-BN-ReLU layers, dropout growing by block (0, 0.1, 0.2, 0.3, 0.4), a
linear classifier: 33.7M parameters. The paper's Table 1 says 38.6M, which this layout (as the
paper's Section 4 states it) does not give; `tests/test_zoo_papers.py` checks against 33.7M, the
count osmr/imgclsmob's FractalNet-20 asserts for the same layout (33,724,618 with 10 classes),
whose weights reproduce the paper's CIFAR errors.

Drop-path, the paper's regulariser, while training: each mini-batch is "global" with
probability 0.5 (one column, chosen uniformly, is the whole network) or else "local" (every
join drops each input with probability `drop_path_prob`, keeping at least one). The training
loop sets `drop_path_prob` (`nas train --drop-path 0.15`, the paper's local rate); at 0 there is
no drop-path at all. Evaluation uses every column.

Adaptations: the ImageNet layout (128 px and up) starts with ResNet's ImageNet stem (7x7 stride-2
conv, 3x3 stride-2 max pool to 64 channels); pools round up on odd sizes and are dropped once
the map is 1 pixel; the map is average-pooled before the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    conv_bn_act,
    halving_strides,
    imagenet_sized,
    imagenet_stem,
    init_weights,
    max_pool,
    pooled_linear_head,
)
from searchspace.zoo.registry import register_network

BLOCK_WIDTHS = (64, 128, 256, 512, 512)
BLOCK_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)
COLUMNS = 3
GLOBAL_SHARE = 0.5


class DropPathPlan:
    """How the current mini-batch drops paths: None (keep all), a global column, or local."""

    def __init__(self, local_probability: float = 0.0, column: int | None = None) -> None:
        self.local_probability, self.column = local_probability, column


def join(inputs: list[torch.Tensor], plan: DropPathPlan) -> torch.Tensor:
    """The mean of `inputs`; under local drop-path, of a random non-empty subset of them."""
    if plan.local_probability > 0 and len(inputs) > 1:
        keep = [torch.rand(()).item() >= plan.local_probability for _ in inputs]
        if not any(keep):
            keep[int(torch.randint(len(inputs), ()).item())] = True
        inputs = [tensor for tensor, kept in zip(inputs, keep, strict=True) if kept]
    return torch.stack(inputs).mean(dim=0)


class FractalBlock(nn.Module):
    """f_C: the shallow column (one conv) beside two stacked f_{C-1}, joined at the end."""

    def __init__(self, in_channels: int, out_channels: int, columns: int) -> None:
        super().__init__()
        self.columns = columns
        self.shallow = conv_bn_act(in_channels, out_channels, 3)
        if columns > 1:
            self.first = FractalBlock(in_channels, out_channels, columns - 1)
            self.second = FractalBlock(out_channels, out_channels, columns - 1)

    def column_outputs(self, features: torch.Tensor, plan: DropPathPlan, offset: int = 0
                       ) -> list[torch.Tensor]:
        """The outputs of columns offset+1 .. offset+C before their join (under global
        drop-path, only the chosen column's)."""
        if plan.column is not None and plan.column == offset:
            return [self.shallow(features)]
        outputs = [] if plan.column is not None else [self.shallow(features)]
        if self.columns > 1:
            middle = join(self.first.column_outputs(features, plan, offset + 1), plan)
            outputs += self.second.column_outputs(middle, plan, offset + 1)
        return outputs

    def forward(self, features: torch.Tensor, plan: DropPathPlan | None = None) -> torch.Tensor:
        return join(self.column_outputs(features, plan or DropPathPlan()), plan or DropPathPlan())


class FractalNet(nn.Module):
    """Fractal blocks, each followed by max pooling and dropout, then the classifier."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int,
                 columns: int = COLUMNS) -> None:
        super().__init__()
        self.columns = columns
        self.drop_path_prob = 0.0
        imagenet = imagenet_sized(input_size)
        self.stem = imagenet_stem(in_channels, BLOCK_WIDTHS[0]) if imagenet else nn.Identity()
        channels = BLOCK_WIDTHS[0] if imagenet else in_channels
        block_size = -(-input_size // 4) if imagenet else input_size
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        strides = halving_strides(block_size, len(BLOCK_WIDTHS))
        for width, dropout, stride in zip(BLOCK_WIDTHS, BLOCK_DROPOUT, strides, strict=True):
            self.blocks.append(FractalBlock(channels, width, columns))
            self.transitions.append(nn.Sequential(
                max_pool(stride, kernel_size=2),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity()))
            channels = width
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def plan(self) -> DropPathPlan:
        """This mini-batch's drop-path (see the module docstring); none in eval mode."""
        if not self.training or self.drop_path_prob <= 0:
            return DropPathPlan()
        if torch.rand(()).item() < GLOBAL_SHARE:
            return DropPathPlan(column=int(torch.randint(self.columns, ()).item()))
        return DropPathPlan(local_probability=self.drop_path_prob)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        plan = self.plan()
        features = self.stem(images)
        for block, transition in zip(self.blocks, self.transitions, strict=True):
            features = transition(block(features, plan))
        return self.head(features)


@register_network("fractalnet")
def fractalnet(num_classes: int, input_size: int, in_channels: int) -> FractalNet:
    """FractalNet-20 (C = 3, B = 5) with drop-path: 33.7M parameters."""
    return FractalNet(num_classes, input_size, in_channels)
