"""GoogLeNet (Szegedy et al., 2015): nine Inception v1 modules, adapted to 32x32 inputs.

Published module widths (3a to 5b) and the 1x1 / 3x3 / 5x5 / pool-projection branches.
Adaptations: the stem is one 3x3 convolution to 192 channels with no downsampling (instead of the
7x7 stride-2 stem and two max pools), so the map is 32x32 at module 3a and 8x8 at 5b; batch norm
after every convolution; no auxiliary classifiers; pools are dropped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    conv_bn_relu,
    halving_strides,
    init_weights,
    max_pool,
    pooled_linear_head,
)
from searchspace.zoo.registry import register_network

# Per module: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (Table 1 of the paper).
InceptionWidths = tuple[int, int, int, int, int, int]
STAGE_3: tuple[InceptionWidths, ...] = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64))
STAGE_4: tuple[InceptionWidths, ...] = (
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
)
STAGE_5: tuple[InceptionWidths, ...] = (
    (256, 160, 320, 32, 128, 128),
    (384, 192, 384, 48, 128, 128),
)
STEM_CHANNELS = 192


class InceptionModule(nn.Module):
    """Parallel 1x1, 1x1-3x3, 1x1-5x5 and maxpool-1x1 branches, concatenated on channels."""

    def __init__(self, in_channels: int, widths: InceptionWidths) -> None:
        super().__init__()
        n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_projection = widths
        self.branch_1x1 = conv_bn_relu(in_channels, n1x1, 1)
        self.branch_3x3 = nn.Sequential(
            conv_bn_relu(in_channels, n3x3_reduce, 1), conv_bn_relu(n3x3_reduce, n3x3, 3)
        )
        self.branch_5x5 = nn.Sequential(
            conv_bn_relu(in_channels, n5x5_reduce, 1), conv_bn_relu(n5x5_reduce, n5x5, 5)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(in_channels, pool_projection, 1)
        )
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_projection

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        branches = (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)
        return torch.cat([branch(features) for branch in branches], dim=1)


class GoogLeNet(nn.Module):
    """Stem, Inception stages 3, 4 and 5 separated by max pools, global pooling, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(in_channels, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        pool_strides = [*halving_strides(input_size, 2), None]
        for stage, stride in zip((STAGE_3, STAGE_4, STAGE_5), pool_strides, strict=True):
            for widths in stage:
                module = InceptionModule(channels, widths)
                layers.append(module)
                channels = module.out_channels
            if stride is not None:
                layers.append(max_pool(stride))
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes, dropout=0.4)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("googlenet")
def googlenet(num_classes: int, input_size: int, in_channels: int) -> GoogLeNet:
    """GoogLeNet (Inception v1) for small inputs: about 6M parameters."""
    return GoogLeNet(num_classes, input_size, in_channels)
