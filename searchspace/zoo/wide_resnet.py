"""Wide ResNet (Zagoruyko and Komodakis, 2016) WRN-16-4 for CIFAR.

As published: a 3x3 stem with 16 channels, three groups of two pre-activation basic blocks with
64, 128 and 256 channels (widening factor 4), 1x1 projection shortcuts where the shape changes,
and a final BN-ReLU before global pooling: 2.7M parameters. Dropout between the convolutions
(optional in the paper) is left out; a halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import halving_strides, init_weights, pooled_linear_head
from searchspace.zoo.registry import register_network


class PreActivationBlock(nn.Module):
    """BN-ReLU-conv3x3 twice; the shortcut is the identity or a 1x1 conv of the activated input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.pre_activation = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        activated = self.pre_activation(features)
        shortcut = features if self.projection is None else self.projection(activated)
        return self.residual(activated) + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k: stem, three groups of (depth - 4) / 6 blocks, BN-ReLU, pooling, linear."""

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, input_size: int, in_channels: int
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"a Wide ResNet has depth 6n + 4, got {depth}")
        blocks_per_group = (depth - 4) // 6
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        channels = 16
        group_strides = [1, *halving_strides(input_size, 2)]
        for base_width, stride in zip((16, 32, 64), group_strides, strict=True):
            for index in range(blocks_per_group):
                width = base_width * widen_factor
                layers.append(PreActivationBlock(channels, width, stride if index == 0 else 1))
                channels = width
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("wrn16_4")
def wrn16_4(num_classes: int, input_size: int, in_channels: int) -> WideResNet:
    """WRN-16-4: two blocks per group, widening factor 4, 2.7M parameters."""
    return WideResNet(16, 4, num_classes, input_size, in_channels)
