"""VGG (Simonyan and Zisserman, 2015) configurations A (VGG-11), D (VGG-16) and E (VGG-19).

Published conv widths and 3x3 kernels, five stages each ending in 2x2 max pooling, batch norm
after every convolution (the paper has none; it trained the deeper nets from shallower ones).
ImageNet layout (128 px and up): the paper's classifier, the map pooled to 7x7 and two
4096-unit layers with dropout (VGG-19: 143.7M parameters and 19.6G multiply-adds at 224 px with
1000 classes; the paper's Table 2 gives 144M). CIFAR-sized adaptation (below 128 px): pools are
dropped once the map is 1 pixel (and round up on odd sizes); adaptive average pooling to 1x1 and
a 512-512 classifier with dropout instead of 4096-4096, as in the usual CIFAR-10 versions.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    conv_bn_relu,
    dropout_mlp_head,
    halving_strides,
    imagenet_sized,
    init_weights,
    max_pool,
)
from searchspace.zoo.registry import register_network

Stages = tuple[tuple[int, ...], ...]

VGG11_STAGES: Stages = ((64,), (128,), (256, 256), (512, 512), (512, 512))
VGG16_STAGES: Stages = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19_STAGES: Stages = (
    (64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)
)
HIDDEN_UNITS = 512
IMAGENET_HIDDEN_UNITS = 4096
IMAGENET_POOLED_SIZE = 7


class VGG(nn.Module):
    """Stages of 3x3 conv-BN-ReLU layers, each followed by max pooling, then a small classifier."""

    def __init__(self, stages: Stages, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for widths, stride in zip(stages, halving_strides(input_size, len(stages)), strict=True):
            for width in widths:
                layers.append(conv_bn_relu(channels, width, 3))
                channels = width
            layers.append(max_pool(stride, kernel_size=2))
        self.features = nn.Sequential(*layers)
        if imagenet_sized(input_size):
            self.classifier = dropout_mlp_head(channels, IMAGENET_POOLED_SIZE,
                                               IMAGENET_HIDDEN_UNITS, num_classes)
        else:
            self.classifier = dropout_mlp_head(channels, 1, HIDDEN_UNITS, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@register_network("vgg11")
def vgg11(num_classes: int, input_size: int, in_channels: int) -> VGG:
    """VGG-11 with batch norm: 8 convolutions, about 9.8M parameters."""
    return VGG(VGG11_STAGES, num_classes, input_size, in_channels)


@register_network("vgg16")
def vgg16(num_classes: int, input_size: int, in_channels: int) -> VGG:
    """VGG-16 with batch norm: 13 convolutions, about 15.2M parameters."""
    return VGG(VGG16_STAGES, num_classes, input_size, in_channels)


@register_network("vgg19")
def vgg19(num_classes: int, input_size: int, in_channels: int) -> VGG:
    """VGG-19 with batch norm: 16 convolutions, about 20.6M parameters (143.7M at ImageNet size)."""
    return VGG(VGG19_STAGES, num_classes, input_size, in_channels)
