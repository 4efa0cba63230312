"""Inception-v4 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke and Alemi, 2017).

Inception-v4 as in the paper's Figures 3-9: the stem to 384 channels, 4 Inception-A modules,
Reduction-A (k, l, m, n = 192, 224, 256, 384), 7 Inception-B, Reduction-B, 3 Inception-C,
global pooling, dropout 0.2 and the classifier. Inception-ResNet-v2 as in the authors' released
TF-slim code (`inception_resnet_v2.py`), whose widths the paper's Figures 15-19 do not quite give
(the figures' own channel counts disagree: 1154 vs 1152 and 2048 vs 2144 channels): a stem to
192 channels and a 320-channel mixed module, 10 x block35 (residuals scaled by 0.17),
Reduction-A to 1088 channels, 20 x block17 (0.1), Reduction-B to 2080, 10 x block8 (0.2; the last
unscaled and without ReLU), a 1x1 convolution to 1536, pooling, dropout 0.2, the classifier.

The paper gives no parameter counts. `tests/test_zoo_papers.py` checks the ImageNet layouts at
299 px with 1000 classes against the counts of the authors' released TF-slim models (42.7M and
55.8M parameters, as Keras and timm also report for ports of those checkpoints), and the
CIFAR-sized networks against the same counts less the classifier rows the 10 classes drop (the
adaptation below changes strides and padding, no weights).

CIFAR-sized adaptation (below 128 px): every convolution is same-padded (the paper's "V" ones
are unpadded); the stem's first two downsamplings are dropped and its last one kept, so a
32-pixel input reaches the A modules at 16x16, the B modules at 8x8 and the C modules at 4x4 (at
299 px: 35, 17 and 8); a halving is skipped once the map is 1 pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

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

Kernel = int | tuple[int, int]


class Layout:
    """Strides and padding of the network for one input size (see the module docstring)."""

    def __init__(self, input_size: int) -> None:
        self.valid = imagenet_sized(input_size)
        if self.valid:
            self.stem_strides, self.reductions = (2, 2, 2), (2, 2)
        else:
            last_stem, *reductions = halving_strides(input_size, 3)
            self.stem_strides, self.reductions = (1, 1, last_stem), tuple(reductions)

    def conv(self, in_channels: int, out_channels: int, kernel_size: Kernel, stride: int = 1,
             valid: bool = False) -> nn.Sequential:
        """Conv-BN-ReLU; `valid` ones are unpadded in the ImageNet layout only."""
        padding = 0 if valid and self.valid else None
        return conv_bn_act(in_channels, out_channels, kernel_size, stride, padding=padding)

    def pool(self, stride: int) -> nn.Module:
        """3x3 max pooling: unpadded in the ImageNet layout, same-padded otherwise."""
        return nn.MaxPool2d(3, stride, padding=0 if self.valid else 1)


def conv(in_channels: int, out_channels: int, kernel_size: Kernel) -> nn.Sequential:
    """A same-padded stride-1 conv-BN-ReLU (every convolution inside the modules)."""
    return conv_bn_act(in_channels, out_channels, kernel_size)


def chain(in_channels: int, *layers: tuple[int, Kernel]) -> nn.Sequential:
    """Same-padded convolutions of (width, kernel) one after the other."""
    modules, channels = [], in_channels
    for width, kernel in layers:
        modules.append(conv(channels, width, kernel))
        channels = width
    return nn.Sequential(*modules)


def pool_projection(in_channels: int, width: int) -> nn.Sequential:
    """3x3 stride-1 average pooling then a 1x1 convolution: the pooling branch of a module."""
    return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                         conv(in_channels, width, 1))


class Branches(nn.Module):
    """Parallel branches concatenated on channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(features) for branch in self.branches], dim=1)


class SplitTail(nn.Module):
    """A branch that ends in parallel 1x3 and 3x1 convolutions, concatenated (Inception-C)."""

    def __init__(self, body: nn.Module, channels: int, width: int) -> None:
        super().__init__()
        self.body = body
        self.tails = Branches(conv(channels, width, (1, 3)), conv(channels, width, (3, 1)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.tails(self.body(features))


def inception_v4_stem(layout: Layout, in_channels: int) -> nn.Sequential:
    """Figure 3: 3x3 convolutions to 64, then three concatenating steps to 384 channels."""
    first, second, third = layout.stem_strides
    return nn.Sequential(
        layout.conv(in_channels, 32, 3, first, valid=True),
        layout.conv(32, 32, 3, valid=True),
        layout.conv(32, 64, 3),
        Branches(layout.pool(second), layout.conv(64, 96, 3, second, valid=True)),
        Branches(
            nn.Sequential(conv(160, 64, 1), layout.conv(64, 96, 3, valid=True)),
            nn.Sequential(chain(160, (64, 1), (64, (1, 7)), (64, (7, 1))),
                          layout.conv(64, 96, 3, valid=True)),
        ),
        Branches(layout.conv(192, 192, 3, third, valid=True), layout.pool(third)),
    )


def inception_a() -> Branches:
    return Branches(pool_projection(384, 96), conv(384, 96, 1), chain(384, (64, 1), (96, 3)),
                    chain(384, (64, 1), (96, 3), (96, 3)))


def reduction_a(layout: Layout, in_channels: int, k: int, l: int, m: int, n: int,  # noqa: E741
                stride: int) -> Branches:
    """Figure 7: pooling, a strided 3x3 to n, and 1x1 (k) -> 3x3 (l) -> strided 3x3 (m)."""
    return Branches(
        layout.pool(stride),
        layout.conv(in_channels, n, 3, stride, valid=True),
        nn.Sequential(chain(in_channels, (k, 1), (l, 3)),
                      layout.conv(l, m, 3, stride, valid=True)),
    )


def inception_b() -> Branches:
    return Branches(
        pool_projection(1024, 128), conv(1024, 384, 1),
        chain(1024, (192, 1), (224, (1, 7)), (256, (7, 1))),
        chain(1024, (192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))),
    )


def reduction_b(layout: Layout, stride: int) -> Branches:
    return Branches(
        layout.pool(stride),
        nn.Sequential(conv(1024, 192, 1), layout.conv(192, 192, 3, stride, valid=True)),
        nn.Sequential(chain(1024, (256, 1), (256, (1, 7)), (320, (7, 1))),
                      layout.conv(320, 320, 3, stride, valid=True)),
    )


def inception_c() -> Branches:
    return Branches(
        pool_projection(1536, 256), conv(1536, 256, 1),
        SplitTail(conv(1536, 384, 1), 384, 256),
        SplitTail(chain(1536, (384, 1), (448, (3, 1)), (512, (1, 3))), 512, 256),
    )


class InceptionV4(nn.Module):
    """Stem, 4 x A, Reduction-A, 7 x B, Reduction-B, 3 x C, pooling, dropout, linear."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layout = Layout(input_size)
        first, second = layout.reductions
        self.features = nn.Sequential(
            inception_v4_stem(layout, in_channels),
            *(inception_a() for _ in range(4)),
            reduction_a(layout, 384, 192, 224, 256, 384, first),
            *(inception_b() for _ in range(7)),
            reduction_b(layout, second),
            *(inception_c() for _ in range(3)),
        )
        self.head = pooled_linear_head(1536, num_classes, dropout=0.2)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class ScaledResidual(nn.Module):
    """x + scale * (1x1 linear projection of the concatenated branches), then ReLU (optional)."""

    def __init__(self, branches: Sequence[nn.Module], branch_channels: int, channels: int,
                 scale: float, activate: bool = True) -> None:
        super().__init__()
        self.branches = Branches(*branches)
        self.project = nn.Conv2d(branch_channels, channels, 1)
        self.scale = scale
        self.activation = nn.ReLU(inplace=True) if activate else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        residual = self.project(self.branches(features))
        return self.activation(features + self.scale * residual)


def block35() -> ScaledResidual:
    return ScaledResidual([conv(320, 32, 1), chain(320, (32, 1), (32, 3)),
                           chain(320, (32, 1), (48, 3), (64, 3))], 128, 320, 0.17)


def block17() -> ScaledResidual:
    return ScaledResidual([conv(1088, 192, 1), chain(1088, (128, 1), (160, (1, 7)), (192, (7, 1)))],
                          384, 1088, 0.1)


def block8(scale: float = 0.2, activate: bool = True) -> ScaledResidual:
    return ScaledResidual([conv(2080, 192, 1), chain(2080, (192, 1), (224, (1, 3)), (256, (3, 1)))],
                          448, 2080, scale, activate)


class InceptionResNetV2(nn.Module):
    """Stem, mixed 5b, 10 x block35, 6a, 20 x block17, 7a, 10 x block8, 1x1 conv, head."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layout = Layout(input_size)
        first, second, third = layout.stem_strides
        reduce_a, reduce_b = layout.reductions
        stem = nn.Sequential(
            layout.conv(in_channels, 32, 3, first, valid=True),
            layout.conv(32, 32, 3, valid=True),
            layout.conv(32, 64, 3),
            layout.pool(second) if second > 1 else nn.Identity(),
            conv(64, 80, 1),
            layout.conv(80, 192, 3, valid=True),
            layout.pool(third) if third > 1 else nn.Identity(),
        )
        mixed_5b = Branches(conv(192, 96, 1), chain(192, (48, 1), (64, 5)),
                            chain(192, (64, 1), (96, 3), (96, 3)), pool_projection(192, 64))
        mixed_6a = Branches(
            layout.conv(320, 384, 3, reduce_a, valid=True),
            nn.Sequential(chain(320, (256, 1), (256, 3)),
                          layout.conv(256, 384, 3, reduce_a, valid=True)),
            layout.pool(reduce_a),
        )
        mixed_7a = Branches(
            nn.Sequential(conv(1088, 256, 1), layout.conv(256, 384, 3, reduce_b, valid=True)),
            nn.Sequential(conv(1088, 256, 1), layout.conv(256, 288, 3, reduce_b, valid=True)),
            nn.Sequential(chain(1088, (256, 1), (288, 3)),
                          layout.conv(288, 320, 3, reduce_b, valid=True)),
            layout.pool(reduce_b),
        )
        self.features = nn.Sequential(
            stem, mixed_5b, *(block35() for _ in range(10)), mixed_6a,
            *(block17() for _ in range(20)), mixed_7a, *(block8() for _ in range(9)),
            block8(scale=1.0, activate=False), conv(2080, 1536, 1),
        )
        self.head = pooled_linear_head(1536, num_classes, dropout=0.2)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@register_network("inception_v4")
def inception_v4(num_classes: int, input_size: int, in_channels: int) -> InceptionV4:
    """Inception-v4: 42.7M parameters at ImageNet size, 41.2M with 10 classes."""
    return InceptionV4(num_classes, input_size, in_channels)


@register_network("inception_resnet_v2")
def inception_resnet_v2(num_classes: int, input_size: int, in_channels: int
                        ) -> InceptionResNetV2:
    """Inception-ResNet-v2: 55.8M parameters at ImageNet size, 54.3M with 10 classes."""
    return InceptionResNetV2(num_classes, input_size, in_channels)
