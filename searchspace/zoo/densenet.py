"""DenseNet-BC (Huang et al., 2017) with depth 100 and growth rate 12, as published for CIFAR.

A 3x3 stem with 2k = 24 channels, three dense blocks of 16 bottleneck layers (BN-ReLU-1x1 conv to
4k, BN-ReLU-3x3 conv to k, concatenated to the input) and transitions that halve the channels
(compression 0.5) and average-pool the map: 0.77M parameters. Adaptation: a transition's pooling
rounds up on odd sizes and is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import halving_strides, init_weights, pooled_linear_head
from searchspace.zoo.registry import register_network


def bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Pre-activation convolution: batch norm, ReLU, same-padded convolution without bias."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
    )


class DenseLayer(nn.Module):
    """Bottleneck layer whose `growth_rate` new channels are concatenated to its input."""

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        self.new_features = nn.Sequential(
            bn_relu_conv(in_channels, 4 * growth_rate, 1),
            bn_relu_conv(4 * growth_rate, growth_rate, 3),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, self.new_features(features)], dim=1)


def transition(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 pre-activation conv to `out_channels`, then 2x2 average pooling (if `stride` is 2)."""
    pool = nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()
    return nn.Sequential(bn_relu_conv(in_channels, out_channels, 1), pool)


class DenseNetBC(nn.Module):
    """Stem, three dense blocks joined by compressing transitions, BN-ReLU, pooling, linear."""

    def __init__(
        self,
        depth: int,
        growth_rate: int,
        num_classes: int,
        input_size: int,
        in_channels: int,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"a DenseNet-BC has depth 6n + 4, got {depth}")
        layers_per_block = (depth - 4) // 6
        channels = 2 * growth_rate
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        transition_strides = [*halving_strides(input_size, 2), None]
        for stride in transition_strides:
            for _ in range(layers_per_block):
                layers.append(DenseLayer(channels, growth_rate))
                channels += growth_rate
            if stride is not None:
                compressed = int(channels * compression)
                layers.append(transition(channels, compressed, stride))
                channels = compressed
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("densenet_bc")
def densenet_bc(num_classes: int, input_size: int, in_channels: int) -> DenseNetBC:
    """DenseNet-BC-100 with growth rate 12: 0.77M parameters."""
    return DenseNetBC(100, 12, num_classes, input_size, in_channels)
