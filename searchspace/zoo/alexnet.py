"""AlexNet (Krizhevsky et al., 2012) adapted to 32x32 inputs.

Published conv widths (96, 256, 384, 384, 256) and kernel sizes after the first layer, overlapping
3x3 max pooling after conv 1, 2 and 5, dropout in the classifier. Adaptations: the first
convolution is 5x5 with stride 1 (not 11x11 with stride 4); pooling is padded so a map of `s`
pixels becomes `ceil(s / 2)`, and pools are dropped once the map is 1 pixel; no local response
normalisation; adaptive average pooling to 2x2 and 1024-unit hidden layers instead of 6x6 and 4096.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import dropout_mlp_head, halving_strides, init_weights, max_pool
from searchspace.zoo.registry import register_network

HIDDEN_UNITS = 1024
POOLED_SIZE = 2


def conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Same-padded convolution with bias, then ReLU (AlexNet has no batch norm)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.ReLU(inplace=True),
    )


class AlexNet(nn.Module):
    """Five convolutions, three max pools and a three-layer classifier."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        first_pool, second_pool, third_pool = halving_strides(input_size, 3)
        self.features = nn.Sequential(
            conv_relu(in_channels, 96, 5),
            max_pool(first_pool),
            conv_relu(96, 256, 5),
            max_pool(second_pool),
            conv_relu(256, 384, 3),
            conv_relu(384, 384, 3),
            conv_relu(384, 256, 3),
            max_pool(third_pool),
        )
        self.classifier = dropout_mlp_head(256, POOLED_SIZE, HIDDEN_UNITS, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@register_network("alexnet")
def alexnet(num_classes: int, input_size: int, in_channels: int) -> AlexNet:
    """AlexNet for small inputs: about 5.8M parameters."""
    return AlexNet(num_classes, input_size, in_channels)
