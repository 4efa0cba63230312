"""Pre-activation ResNet (He, Zhang, Ren and Sun, 2016, "Identity Mappings in Deep Residual
Networks"): batch norm and ReLU before each convolution, nothing after the addition, so the
shortcuts form a clean identity path through the whole network.

ResNet-164 as in the paper's CIFAR experiments (Table 2: 1.7M parameters): a 3x3 stem with 16
channels, three stages of 18 bottleneck units (1x1, 3x3, 1x1; 64, 128 and 256 output channels,
the last two stages halving the map), a projection shortcut (1x1 convolution of the
pre-activated input) where the shape changes, a final batch norm and ReLU, pooling, linear.

Adaptations: the ImageNet layout (128 px and up) puts ResNet's ImageNet stem (7x7 stride-2
convolution and 3x3 stride-2 max pooling) before the three stages, so 224 px reaches them at
56x56; a halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    halving_strides,
    imagenet_sized,
    imagenet_stem,
    init_weights,
    pooled_linear_head,
)
from searchspace.zoo.registry import register_network

STEM_CHANNELS = 16
BOTTLENECK_WIDTHS = (16, 32, 64)
EXPANSION = 4


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (strided), BN-ReLU-conv1x1, added to the shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.preactivation = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1, bias=False),
        )
        self.projection = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                           if stride != 1 or in_channels != out_channels else None)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        activated = self.preactivation(features)
        shortcut = features if self.projection is None else self.projection(activated)
        return shortcut + self.residual(activated)


class PreActResNet(nn.Module):
    """Depth 9n + 2: stem, three stages of n pre-activation bottlenecks, BN-ReLU, head."""

    def __init__(self, depth: int, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"a bottleneck CIFAR ResNet has depth 9n + 2, got {depth}")
        units = (depth - 2) // 9
        imagenet = imagenet_sized(input_size)
        stem = (imagenet_stem(in_channels, STEM_CHANNELS) if imagenet
                else nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1, bias=False))
        layers: list[nn.Module] = [stem]
        channels = STEM_CHANNELS
        stage_size = -(-input_size // 4) if imagenet else input_size
        for width, stride in zip(BOTTLENECK_WIDTHS, [1, *halving_strides(stage_size, 2)],
                                 strict=True):
            for index in range(units):
                layers.append(PreActBottleneck(channels, width, stride if index == 0 else 1))
                channels = width * EXPANSION
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("preact_resnet164")
def preact_resnet164(num_classes: int, input_size: int, in_channels: int) -> PreActResNet:
    """Pre-activation ResNet-164 (bottleneck units): 1.7M parameters."""
    return PreActResNet(164, num_classes, input_size, in_channels)
