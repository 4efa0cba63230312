"""ZFNet (Zeiler and Fergus, 2014, "Visualizing and Understanding Convolutional Networks").

ImageNet layout (128 px and up), as in the paper's Figure 3: a 7x7 stride-2 first layer of 96
filters (AlexNet's 11x11 stride 4, made smaller after the visualisations), 3x3 stride-2 max
pooling, 5x5 stride-2 convolution to 256, pooling, three 3x3 convolutions (384, 384, 256),
pooling, then 4096-4096 fully connected layers with dropout. The map entering the classifier is
pooled to 6x6 (what 224 px gives), so any size from 128 px runs. Left out: the local contrast
normalisation after the first two layers, and the renormalisation of first-layer filters.

The paper gives no parameter count; `tests/test_zoo_papers.py` checks the count against the
sum of the layer shapes of Figure 3 (the paper's own table of the network), 62.4M at 224 px
with 1000 classes.

CIFAR-sized adaptation (below 128 px), as for AlexNet here: a 3x3 stride-1 first layer and a
stride-1 5x5 second layer, pooling padded so a map of `s` pixels becomes `ceil(s / 2)` (dropped
once the map is 1 pixel), pooled to 2x2 before 1024-unit hidden layers.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    dropout_mlp_head,
    halving_strides,
    imagenet_sized,
    init_weights,
    max_pool,
)
from searchspace.zoo.registry import register_network


def conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              padding: int | None = None) -> nn.Sequential:
    """Convolution with bias, then ReLU (ZFNet has no batch norm)."""
    pad = kernel_size // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad),
                         nn.ReLU(inplace=True))


class ZFNet(nn.Module):
    """Five convolutions, three max pools and a three-layer classifier."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        if imagenet_sized(input_size):
            self.features = nn.Sequential(
                conv_relu(in_channels, 96, 7, stride=2, padding=1),
                nn.MaxPool2d(3, 2, padding=1),
                conv_relu(96, 256, 5, stride=2, padding=0),
                nn.MaxPool2d(3, 2, padding=1),
                conv_relu(256, 384, 3), conv_relu(384, 384, 3), conv_relu(384, 256, 3),
                nn.MaxPool2d(3, 2, padding=1),
            )
            self.classifier = dropout_mlp_head(256, 6, 4096, num_classes)
        else:
            first, second, third = halving_strides(input_size, 3)
            self.features = nn.Sequential(
                conv_relu(in_channels, 96, 3), max_pool(first),
                conv_relu(96, 256, 5), max_pool(second),
                conv_relu(256, 384, 3), conv_relu(384, 384, 3), conv_relu(384, 256, 3),
                max_pool(third),
            )
            self.classifier = dropout_mlp_head(256, 2, 1024, num_classes)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@register_network("zfnet")
def zfnet(num_classes: int, input_size: int, in_channels: int) -> ZFNet:
    """ZFNet: 62.4M parameters at 224 px with 1000 classes; 5.8M in its CIFAR-sized form."""
    return ZFNet(num_classes, input_size, in_channels)
