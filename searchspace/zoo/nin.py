"""Network in Network (Lin, Chen and Yan, 2014): "mlpconv" layers and global average pooling.

Each mlpconv layer is a spatial convolution followed by two 1x1 convolutions (a small MLP slid
over the map); the last one has one channel per class and global average pooling turns it into
the logits: no fully connected layer.

CIFAR layout (below 128 px), the paper's CIFAR-10 model as released in the authors' cuda-convnet
definition: mlpconv 192-160-96 (5x5), 3x3 stride-2 max pooling and dropout, mlpconv 192-192-192
(5x5), 3x3 stride-2 average pooling and dropout, mlpconv 192-192-classes (3x3). ImageNet layout
(128 px and up), the authors' ImageNet model (Caffe model zoo "NIN-Imagenet"): mlpconv 96-96-96
(11x11 stride 4), 256-256-256 (5x5), 384-384-384 (3x3) and 1024-1024-classes (3x3), 3x3 stride-2
max pooling after the first three, dropout before the last.

The paper gives no parameter count; `tests/test_zoo_papers.py` checks the count against the sum
of the released layer shapes (0.97M for the CIFAR-10 model, 7.6M for the ImageNet one).
Adaptations: batch norm after every convolution but the last (the paper has none; it makes the
network train at this project's learning rates), the last convolution is linear (the logits),
pools are padded so a map of `s` pixels becomes `ceil(s / 2)` and are dropped once it is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import (
    conv_bn_act,
    halving_strides,
    imagenet_sized,
    init_weights,
    max_pool,
)
from searchspace.zoo.registry import register_network

# (spatial kernel, stride, widths of the three convolutions) per mlpconv layer
CIFAR_LAYERS = ((5, 1, (192, 160, 96)), (5, 1, (192, 192, 192)), (3, 1, (192, 192, None)))
IMAGENET_LAYERS = ((11, 4, (96, 96, 96)), (5, 1, (256, 256, 256)), (3, 1, (384, 384, 384)),
                   (3, 1, (1024, 1024, None)))


def mlpconv(in_channels: int, kernel_size: int, stride: int, widths: tuple[int, int, int],
            last_is_logits: bool, padding: int | None = None) -> nn.Sequential:
    """A k x k convolution then two 1x1 convolutions; the last linear when it gives logits."""
    first, second, third = widths
    return nn.Sequential(
        conv_bn_act(in_channels, first, kernel_size, stride, padding=padding),
        conv_bn_act(first, second, 1),
        nn.Conv2d(second, third, 1) if last_is_logits else conv_bn_act(second, third, 1),
    )


def average_pool(stride: int) -> nn.Module:
    """3x3 average pooling that maps `s` pixels to `ceil(s / 2)` (identity at stride 1)."""
    if stride == 1:
        return nn.Identity()
    return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)


class NetworkInNetwork(nn.Module):
    """mlpconv layers separated by pooling, then global average pooling of per-class maps."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        imagenet = imagenet_sized(input_size)
        plan = IMAGENET_LAYERS if imagenet else CIFAR_LAYERS
        strides = iter(halving_strides(-(-input_size // 4) if imagenet else input_size,
                                       len(plan) - 1))
        layers: list[nn.Module] = []
        channels = in_channels
        for index, (kernel_size, stride, widths) in enumerate(plan):
            last = index == len(plan) - 1
            resolved = (widths[0], widths[1], num_classes if widths[2] is None else widths[2])
            if last and imagenet:
                layers.append(nn.Dropout(0.5))
            padding = 0 if kernel_size == 11 else None
            layers.append(mlpconv(channels, kernel_size, stride, resolved, last, padding))
            channels = resolved[2]
            if not last:
                pool_stride = next(strides)
                if imagenet or index == 0:
                    layers.append(max_pool(pool_stride))
                else:
                    layers.append(average_pool(pool_stride))
                if not imagenet:
                    layers.append(nn.Dropout(0.5))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(images))


@register_network("nin")
def nin(num_classes: int, input_size: int, in_channels: int) -> NetworkInNetwork:
    """Network in Network: 0.97M parameters (CIFAR-10 model), 7.6M at ImageNet size."""
    return NetworkInNetwork(num_classes, input_size, in_channels)
