"""LeNet-5 (LeCun et al., 1998) as it is usually trained on CIFAR-10.

Published widths: 6 and 16 feature maps, 120 and 84 hidden units. Adaptations: ReLU and max
pooling instead of tanh and trainable subsampling; a 5x5 convolution is unpadded as published when
the map has at least 10 pixels and same-padded below that; adaptive average pooling to the
published 5x5 map before the classifier (the identity at 32x32), so any input size works.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import init_weights, max_pool
from searchspace.zoo.registry import register_network

KERNEL_SIZE = 5
SMALLEST_UNPADDED_INPUT = 2 * KERNEL_SIZE


class LeNet5(nn.Module):
    """Two 5x5 conv + pool stages and a 400-120-84 classifier."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, input_size
        for out_channels in (6, 16):
            padding = 0 if size >= SMALLEST_UNPADDED_INPUT else KERNEL_SIZE // 2
            size += 2 * padding - (KERNEL_SIZE - 1)
            stride = 2 if size >= 2 else 1
            layers += [
                nn.Conv2d(channels, out_channels, KERNEL_SIZE, padding=padding),
                nn.ReLU(inplace=True),
                max_pool(stride, kernel_size=2),
            ]
            channels, size = out_channels, -(-size // stride)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(KERNEL_SIZE),
            nn.Flatten(),
            nn.Linear(channels * KERNEL_SIZE * KERNEL_SIZE, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@register_network("lenet5")
def lenet5(num_classes: int, input_size: int, in_channels: int) -> LeNet5:
    """LeNet-5: about 62K parameters at 32x32 with 10 classes."""
    return LeNet5(num_classes, input_size, in_channels)
