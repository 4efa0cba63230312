"""ResNeXt-29 (Xie et al., 2017) for CIFAR, a small 8x4d variant.

As published: a 3x3 stem with 64 channels and three stages of three bottleneck blocks
(1x1, grouped 3x3, 1x1) with projection shortcuts, the last two stages halving the map.
Adaptation for size: cardinality 8 and bottleneck width 4 (group widths 32, 64, 128) and stage
outputs of 128, 256 and 512 channels, half the paper's 256, 512, 1024: 0.73M parameters
instead of 34M for the paper's 8x64d. A halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.zoo.layers import conv_bn_relu, halving_strides, init_weights, pooled_linear_head
from searchspace.zoo.registry import register_network

CARDINALITY = 8
BOTTLENECK_WIDTH = 4
STAGE_OUTPUTS = (128, 256, 512)
STEM_CHANNELS = 64


class GroupedBottleneck(nn.Module):
    """1x1 reduce, grouped 3x3 (one group per path), 1x1 expand, added to the shortcut."""

    def __init__(
        self, in_channels: int, group_width: int, out_channels: int, stride: int, cardinality: int
    ) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn_relu(in_channels, group_width, 1),
            conv_bn_relu(group_width, group_width, 3, stride, groups=cardinality),
            nn.Conv2d(group_width, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(features) + self.shortcut(features))


class ResNeXt29(nn.Module):
    """Stem, three stages of three grouped bottlenecks, global pooling, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(in_channels, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        group_width = CARDINALITY * BOTTLENECK_WIDTH
        stage_strides = [1, *halving_strides(input_size, 2)]
        for out_channels, stride in zip(STAGE_OUTPUTS, stage_strides, strict=True):
            for index in range(3):
                block = GroupedBottleneck(
                    channels, group_width, out_channels, stride if index == 0 else 1, CARDINALITY
                )
                layers.append(block)
                channels = out_channels
            group_width *= 2
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("resnext29")
def resnext29(num_classes: int, input_size: int, in_channels: int) -> ResNeXt29:
    """ResNeXt-29 8x4d with 128/256/512-channel stages: 0.73M parameters."""
    return ResNeXt29(num_classes, input_size, in_channels)
