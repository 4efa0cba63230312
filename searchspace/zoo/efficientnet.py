"""EfficientNet-B0 and its compound-scaled B1-B3 (Tan and Le, 2019).

B0 as in the paper's Table 1: a 3x3 stride-2 stem to 32 channels, seven stages of MBConv blocks
(1x1 expansion by 1 or 6, k x k depthwise, squeeze-excitation with a bottleneck of a quarter of
the block's input channels, linear 1x1 projection, residual with stochastic depth when the
shape is unchanged) with SiLU (swish) activations, a 1x1 convolution to 1280, pooling, dropout,
linear: 5.3M parameters and 0.39B multiply-adds at 224 px with 1000 classes.

Compound scaling (Section 3.3): depth d = alpha^phi, width w = beta^phi and resolution
r = gamma^phi with alpha = 1.2, beta = 1.1, gamma = 1.15 (`compound_coefficients`); widths are
rounded to multiples of 8 and block counts up (`scale_stages`). The released B1-B3 use the
rounded (width, depth, resolution, dropout) of the authors' code, kept in `VARIANTS`:
B1 (1.0, 1.1, 240, 0.2), B2 (1.1, 1.2, 260, 0.3), B3 (1.2, 1.4, 300, 0.3); Table 2 gives
7.8M / 0.70B, 9.2M / 1.0B and 12M / 1.8B for them at those resolutions.

`drop_path_prob` (set by the training loop, `nas train --drop-path 0.2` as in the paper) is the
stochastic-depth rate of the last block, growing linearly from 0 at the first.

CIFAR-sized adaptation (below 128 px), as for MobileNet v2 here: the stem and the first block of
the 24-channel stage have stride 1, so a 32-pixel input is halved three times (4x4 at the end);
a halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from searchspace.cells import drop_path
from searchspace.ops import SqueezeExcitation
from searchspace.zoo.layers import (
    conv_bn_act,
    halving_strides,
    imagenet_sized,
    init_weights,
    make_divisible,
)
from searchspace.zoo.registry import register_network

# (expansion, kernel, stride, output channels, blocks) per stage of B0
Stage = tuple[int, int, int, int, int]
B0_STAGES: tuple[Stage, ...] = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class Variant:
    """One EfficientNet: width and depth multipliers, native resolution, dropout."""

    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: dict[str, Variant] = {
    "efficientnet_b0": Variant(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant(1.2, 1.4, 300, 0.3),
}


def compound_coefficients(phi: float) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers alpha^phi, beta^phi, gamma^phi of the paper's
    compound scaling (alpha * beta^2 * gamma^2 ~ 2: each unit of phi about doubles the FLOPs)."""
    return ALPHA**phi, BETA**phi, GAMMA**phi


def scale_stages(stages: tuple[Stage, ...], width: float, depth: float) -> list[Stage]:
    """Stages with output channels times `width` (rounded to multiples of 8) and block counts
    times `depth` (rounded up)."""
    return [(expansion, kernel, stride, make_divisible(channels * width),
             math.ceil(blocks * depth))
            for expansion, kernel, stride, channels, blocks in stages]


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation; residual with stochastic depth."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, kernel: int,
                 stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(in_channels, hidden, 1, activation=nn.SiLU))
        layers += [
            conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, activation=nn.SiLU),
            SqueezeExcitation(hidden, hidden=max(1, in_channels // 4), activation=nn.SiLU),
            conv_bn_act(hidden, out_channels, 1, activation=None),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, features: torch.Tensor, drop_probability: float = 0.0) -> torch.Tensor:
        output = self.block(features)
        if not self.use_residual:
            return output
        return features + drop_path(output, drop_probability if self.training else 0.0)


class EfficientNet(nn.Module):
    """Stem, MBConv stages scaled by `variant`, 1x1 convolution, pooling, dropout, linear."""

    def __init__(self, variant: Variant, num_classes: int, input_size: int,
                 in_channels: int) -> None:
        super().__init__()
        self.drop_path_prob = 0.0
        imagenet = imagenet_sized(input_size)
        stages = scale_stages(B0_STAGES, variant.width, variant.depth)
        halvings = [stage[2] == 2 for stage in stages]
        if not imagenet:
            halvings[halvings.index(True)] = False
        planned = iter(halving_strides(-(-input_size // 2) if imagenet else input_size,
                                       sum(halvings)))
        stem_channels = make_divisible(STEM_CHANNELS * variant.width)
        self.stem = conv_bn_act(in_channels, stem_channels, 3, 2 if imagenet else 1,
                                activation=nn.SiLU)
        self.blocks = nn.ModuleList()
        channels = stem_channels
        for (expansion, kernel, _, out_channels, blocks), halving in zip(stages, halvings,
                                                                         strict=True):
            stride = next(planned) if halving else 1
            for index in range(blocks):
                self.blocks.append(MBConv(channels, out_channels, expansion, kernel,
                                          stride if index == 0 else 1))
                channels = out_channels
        last_channels = make_divisible(LAST_CHANNELS * variant.width)
        self.last = conv_bn_act(channels, last_channels, 1, activation=nn.SiLU)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(variant.dropout),
                                  nn.Linear(last_channels, num_classes))
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.stem(images)
        last = max(len(self.blocks) - 1, 1)
        for index, block in enumerate(self.blocks):
            features = block(features, self.drop_path_prob * index / last)
        return self.head(self.last(features))


def _register(name: str) -> None:
    variant = VARIANTS[name]

    @register_network(name)
    def build(num_classes: int, input_size: int, in_channels: int) -> EfficientNet:
        return EfficientNet(variant, num_classes, input_size, in_channels)

    build.__doc__ = (f"EfficientNet-{name[-2:].upper()} (width {variant.width}, depth "
                     f"{variant.depth}; native resolution {variant.resolution} px).")


for _name in VARIANTS:
    _register(_name)
