"""MobileNet v1 (Howard et al., 2017) and v2 (Sandler et al., 2018) adapted to 32x32 inputs.

Published widths, depthwise separable layers (v1) and inverted residual blocks with linear
bottlenecks and ReLU6 (v2). Adaptations, as in the usual CIFAR versions: the stem convolution has
stride 1 instead of 2, and in v2 the 24-channel stage too, so v1 halves the map four times
(2x2 at 32x32) and v2 three times (4x4); a halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.ops import InvertedResidual
from searchspace.zoo.layers import conv_bn_relu, halving_strides, init_weights, pooled_linear_head
from searchspace.zoo.registry import register_network

# v1: (output channels, layers, first layer halves the map) per stage.
V1_STAGES: tuple[tuple[int, int, bool], ...] = (
    (64, 1, False),
    (128, 2, True),
    (256, 2, True),
    (512, 6, True),
    (1024, 2, True),
)
# v2: (expansion, output channels, blocks, first block halves the map) per stage.
V2_STAGES: tuple[tuple[int, int, int, bool], ...] = (
    (1, 16, 1, False),
    (6, 24, 2, False),
    (6, 32, 3, True),
    (6, 64, 4, True),
    (6, 96, 3, False),
    (6, 160, 3, True),
    (6, 320, 1, False),
)
STEM_CHANNELS = 32
V2_LAST_CHANNELS = 1280


def conv_bn_relu6(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Same-padded convolution (no bias), batch norm and ReLU6, as in MobileNet v2."""
    layers = conv_bn_relu(in_channels, out_channels, kernel_size, stride, groups)
    layers[-1] = nn.ReLU6(inplace=True)
    return layers


def strides_for(halves: list[bool], input_size: int) -> list[int]:
    """Stride of each layer: the planned halvings get `halving_strides`, the others 1."""
    planned = iter(halving_strides(input_size, sum(halves)))
    return [next(planned) if halving else 1 for halving in halves]


class MobileNetV1(nn.Module):
    """Stem conv, 13 depthwise separable layers (3x3 depthwise, 1x1 pointwise), pooling, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(in_channels, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        strides = iter(strides_for([halving for *_, halving in V1_STAGES], input_size))
        for out_channels, depth, _ in V1_STAGES:
            stage_stride = next(strides)
            for index in range(depth):
                stride = stage_stride if index == 0 else 1
                layers += [
                    conv_bn_relu(channels, channels, 3, stride, groups=channels),
                    conv_bn_relu(channels, out_channels, 1),
                ]
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class MobileNetV2(nn.Module):
    """Stem conv, seven stages of inverted residuals, 1x1 conv to 1280, pooling, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        strides = iter(strides_for([halving for *_, halving in V2_STAGES], input_size))
        for expansion, out_channels, blocks, _ in V2_STAGES:
            stage_stride = next(strides)
            for index in range(blocks):
                stride = stage_stride if index == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, 3, stride, expansion))
                channels = out_channels
        layers.append(conv_bn_relu6(channels, V2_LAST_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(V2_LAST_CHANNELS, num_classes, dropout=0.2)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("mobilenet_v1")
def mobilenet_v1(num_classes: int, input_size: int, in_channels: int) -> MobileNetV1:
    """MobileNet v1 (width 1.0) with a stride-1 stem: about 3.2M parameters."""
    return MobileNetV1(num_classes, input_size, in_channels)


@register_network("mobilenet_v2")
def mobilenet_v2(num_classes: int, input_size: int, in_channels: int) -> MobileNetV2:
    """MobileNet v2 (width 1.0) with stride-1 stem and 24-channel stage: about 2.2M parameters."""
    return MobileNetV2(num_classes, input_size, in_channels)
