"""CIFAR ResNets of He et al. (2016, section 4.2) and the squeeze-excitation variant.

As published: a 3x3 stem with 16 channels, three stages of basic blocks with 16, 32 and 64
channels, the last two halving the map, and parameter-free shortcuts (option A: subsample and
zero-pad the new channels). ResNet-20 has 0.27M parameters, ResNet-56 0.85M. SE-ResNet-20 adds a
squeeze-excitation gate (Hu et al., 2018) to every block, reduction 16 with at least 4 hidden
units (the 16-channel stage would otherwise get 1). Adaptation: a halving is skipped once the
map is 1 pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.ops import SqueezeExcitation
from searchspace.zoo.layers import conv_bn_relu, halving_strides, init_weights, pooled_linear_head
from searchspace.zoo.registry import register_network

STAGE_WIDTHS = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample by `stride` and append `extra_channels` zero channels."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        subsampled = features[:, :, :: self.stride, :: self.stride]
        return F.pad(subsampled, (0, 0, 0, 0, 0, self.extra_channels))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers (optionally squeeze-excitation) added to the shortcut, then ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, squeeze_excitation: bool
    ) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn_relu(in_channels, out_channels, 3, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcitation(out_channels, reduction=16) if squeeze_excitation else nn.Identity(),
        )
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = ZeroPadShortcut(out_channels - in_channels, stride)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(features) + self.shortcut(features))


class CifarResNet(nn.Module):
    """ResNet of depth 6n + 2: stem, three stages of n basic blocks, global pooling, linear."""

    def __init__(
        self,
        depth: int,
        num_classes: int,
        input_size: int,
        in_channels: int,
        squeeze_excitation: bool = False,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        layers: list[nn.Module] = [conv_bn_relu(in_channels, STAGE_WIDTHS[0], 3)]
        channels = STAGE_WIDTHS[0]
        stage_strides = [1, *halving_strides(input_size, 2)]
        for width, stride in zip(STAGE_WIDTHS, stage_strides, strict=True):
            for index in range(blocks_per_stage):
                block_stride = stride if index == 0 else 1
                layers.append(BasicBlock(channels, width, block_stride, squeeze_excitation))
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = pooled_linear_head(channels, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("resnet20")
def resnet20(num_classes: int, input_size: int, in_channels: int) -> CifarResNet:
    """ResNet-20: three blocks per stage, 0.27M parameters."""
    return CifarResNet(20, num_classes, input_size, in_channels)


@register_network("resnet56")
def resnet56(num_classes: int, input_size: int, in_channels: int) -> CifarResNet:
    """ResNet-56: nine blocks per stage, 0.85M parameters."""
    return CifarResNet(56, num_classes, input_size, in_channels)


@register_network("se_resnet20")
def se_resnet20(num_classes: int, input_size: int, in_channels: int) -> CifarResNet:
    """ResNet-20 with a squeeze-excitation gate in every block."""
    return CifarResNet(20, num_classes, input_size, in_channels, squeeze_excitation=True)
