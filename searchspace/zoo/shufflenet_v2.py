"""ShuffleNet v2 1.0x (Ma, Zhang, Zheng and Sun, 2018): channel split, shuffle, and units whose
input and output widths match (the paper's guidelines for fast networks).

As in the paper's Table 5: a 3x3 stride-2 stem to 24 channels and 3x3 stride-2 max pooling,
three stages of 4, 8 and 4 units (116, 232 and 464 channels), a 1x1 convolution to 1024,
global pooling, linear: 2.3M parameters and 146M multiply-adds at 224 px with 1000 classes. A
unit splits its channels in two, passes one half through, transforms the other (1x1, 3x3
depthwise, 1x1), concatenates and shuffles the channels; a downsampling unit transforms both
copies of its input (one by 3x3 depthwise stride 2 and 1x1) and doubles the channels.

CIFAR-sized adaptation (below 128 px), as in the usual CIFAR versions: the stem has stride 1
and no max pooling, so 32 px runs the three stages at 16, 8 and 4 pixels; a halving is skipped
once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    conv_bn_act,
    halving_strides,
    imagenet_sized,
    init_weights,
    pooled_linear_head,
)
from searchspace.zoo.registry import register_network

STAGE_CHANNELS = (116, 232, 464)
STAGE_UNITS = (4, 8, 4)
STEM_CHANNELS = 24
LAST_CHANNELS = 1024


def channel_shuffle(features: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave the channels of `groups` groups (so information crosses the split)."""
    batch, channels, height, width = features.shape
    shuffled = features.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return shuffled.reshape(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """The basic unit (stride 1: split, transform half) or the downsampling unit (stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.downsample = stride == 2 or in_channels != out_channels
        branch_channels = out_channels // 2
        transformed_in = in_channels if self.downsample else in_channels // 2
        self.transform = nn.Sequential(
            conv_bn_act(transformed_in, branch_channels, 1),
            conv_bn_act(branch_channels, branch_channels, 3, stride, groups=branch_channels,
                        activation=None),
            conv_bn_act(branch_channels, branch_channels, 1),
        )
        self.shortcut = nn.Sequential(
            conv_bn_act(in_channels, in_channels, 3, stride, groups=in_channels, activation=None),
            conv_bn_act(in_channels, branch_channels, 1),
        ) if self.downsample else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            kept, transformed = features.chunk(2, dim=1)
            output = torch.cat([kept, self.transform(transformed)], dim=1)
        else:
            output = torch.cat([self.shortcut(features), self.transform(features)], dim=1)
        return channel_shuffle(output)


class ShuffleNetV2(nn.Module):
    """Stem, three stages of shuffle units, 1x1 convolution to 1024, pooling, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        imagenet = imagenet_sized(input_size)
        if imagenet:
            layers: list[nn.Module] = [conv_bn_act(in_channels, STEM_CHANNELS, 3, 2),
                                       nn.MaxPool2d(3, 2, padding=1)]
            stage_size = -(-input_size // 4)
        else:
            layers = [conv_bn_act(in_channels, STEM_CHANNELS, 3)]
            stage_size = input_size
        channels = STEM_CHANNELS
        strides = halving_strides(stage_size, len(STAGE_CHANNELS))
        for width, units, stride in zip(STAGE_CHANNELS, STAGE_UNITS, strides, strict=True):
            for index in range(units):
                layers.append(ShuffleUnit(channels, width, stride if index == 0 else 1))
                channels = width
        layers.append(conv_bn_act(channels, LAST_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(LAST_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("shufflenet_v2")
def shufflenet_v2(num_classes: int, input_size: int, in_channels: int) -> ShuffleNetV2:
    """ShuffleNet v2 1.0x: 2.3M parameters, 146M multiply-adds at 224 px."""
    return ShuffleNetV2(num_classes, input_size, in_channels)
