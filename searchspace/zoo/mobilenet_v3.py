"""MobileNetV3-Large and -Small 1.0 (Howard et al., 2019, "Searching for MobileNetV3").

The paper's Tables 1 and 2: inverted residual blocks (1x1 expansion, depthwise k x k, linear 1x1
projection; residual when the shape is unchanged) with squeeze-excitation on some (reduction 4,
rounded to multiples of 8, hard-sigmoid gate) and ReLU or hard-swish by depth; a hard-swish
3x3 stride-2 stem of 16 channels; a 1x1 hard-swish convolution (960 / 576), global pooling, a
1x1 "convolution" without batch norm to 1280 / 1024 with hard-swish, dropout 0.2, the classifier.
Large: 5.4M parameters and 219M multiply-adds at 224 px with 1000 classes; Small: 2.5M, 56M
(Table 3).

CIFAR-sized adaptation (below 128 px), as for MobileNet v2 here: the stem and the first
stride-2 block have stride 1, so a 32-pixel input is halved three times (4x4 at the end); a
halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.ops import SqueezeExcitation
from searchspace.zoo.layers import (
    conv_bn_act,
    halving_strides,
    imagenet_sized,
    init_weights,
    make_divisible,
)
from searchspace.zoo.registry import register_network

# (kernel, expanded channels, output channels, squeeze-excitation, hard-swish, stride)
BlockRow = tuple[int, int, int, bool, bool, int]
LARGE: tuple[BlockRow, ...] = (
    (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1),
)
SMALL: tuple[BlockRow, ...] = (
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1),
)
STEM_CHANNELS = 16


class MobileNetV3Block(nn.Module):
    """Expansion (skipped when it would not widen), depthwise conv, SE, linear projection."""

    def __init__(self, in_channels: int, row: BlockRow, stride: int) -> None:
        super().__init__()
        kernel, expanded, out_channels, squeeze, hard_swish, _ = row
        activation = nn.Hardswish if hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, 1, activation=activation))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded,
                                  activation=activation))
        if squeeze:
            layers.append(SqueezeExcitation(expanded, hidden=make_divisible(expanded / 4),
                                            gate=nn.Hardsigmoid))
        layers.append(conv_bn_act(expanded, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        output = self.block(features)
        return features + output if self.use_residual else output


class MobileNetV3(nn.Module):
    """Stem, the blocks of `rows`, the 1x1 last stage and the hard-swish head."""

    def __init__(self, rows: tuple[BlockRow, ...], last_channels: int, head_channels: int,
                 num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        imagenet = imagenet_sized(input_size)
        halvings = [row[5] == 2 for row in rows]
        if not imagenet:
            halvings[halvings.index(True)] = False
        planned = iter(halving_strides(input_size if not imagenet else -(-input_size // 2),
                                       sum(halvings)))
        layers: list[nn.Module] = [conv_bn_act(in_channels, STEM_CHANNELS, 3,
                                               2 if imagenet else 1, activation=nn.Hardswish)]
        channels = STEM_CHANNELS
        for row, halving in zip(rows, halvings, strict=True):
            layers.append(MobileNetV3Block(channels, row, next(planned) if halving else 1))
            channels = row[2]
        layers.append(conv_bn_act(channels, last_channels, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last_channels, head_channels),
            nn.Hardswish(inplace=True), nn.Dropout(0.2), nn.Linear(head_channels, num_classes),
        )
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("mobilenet_v3_large")
def mobilenet_v3_large(num_classes: int, input_size: int, in_channels: int) -> MobileNetV3:
    """MobileNetV3-Large 1.0: 5.4M parameters, 219M multiply-adds at 224 px."""
    return MobileNetV3(LARGE, 960, 1280, num_classes, input_size, in_channels)


@register_network("mobilenet_v3_small")
def mobilenet_v3_small(num_classes: int, input_size: int, in_channels: int) -> MobileNetV3:
    """MobileNetV3-Small 1.0: 2.5M parameters, 56M multiply-adds at 224 px."""
    return MobileNetV3(SMALL, 576, 1024, num_classes, input_size, in_channels)
