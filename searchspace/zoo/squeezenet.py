"""SqueezeNet v1.1 (Iandola et al., 2016; v1.1 from the authors' repository) for small inputs.

Published: eight fire modules (1x1 squeeze, parallel 1x1 and 3x3 expand) with the v1.1 widths,
three 3x3 max pools, dropout, and a 1x1 convolution to the classes followed by ReLU and global
average pooling as the classifier; no batch norm. Adaptations: the first 3x3 convolution has
stride 1 instead of 2 (the map is 4x4 before the classifier at 32x32); pools are padded so a map
of `s` pixels becomes `ceil(s / 2)` and are skipped once the map is 1 pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.zoo.layers import halving_strides, init_weights, max_pool
from searchspace.zoo.registry import register_network

# Fire modules per stage as (squeeze, expand 1x1, expand 3x3); a max pool precedes each stage.
FireWidths = tuple[int, int, int]
STAGES: tuple[tuple[FireWidths, ...], ...] = (
    ((16, 64, 64), (16, 64, 64)),
    ((32, 128, 128), (32, 128, 128)),
    ((48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)),
)
STEM_CHANNELS = 64


class Fire(nn.Module):
    """Squeeze to few channels with 1x1, then expand with parallel 1x1 and 3x3, concatenated."""

    def __init__(self, in_channels: int, widths: FireWidths) -> None:
        super().__init__()
        squeeze, expand_1x1, expand_3x3 = widths
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, squeeze, 1), nn.ReLU(inplace=True))
        self.expand_1x1 = nn.Sequential(nn.Conv2d(squeeze, expand_1x1, 1), nn.ReLU(inplace=True))
        self.expand_3x3 = nn.Sequential(
            nn.Conv2d(squeeze, expand_3x3, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.out_channels = expand_1x1 + expand_3x3

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        squeezed = self.squeeze(features)
        return torch.cat([self.expand_1x1(squeezed), self.expand_3x3(squeezed)], dim=1)


class SqueezeNet(nn.Module):
    """Stem conv, three pooled stages of fire modules, convolutional classifier."""

    def __init__(self, num_classes: int, input_size: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1),
            nn.ReLU(inplace=True),
        ]
        channels = STEM_CHANNELS
        for stage, stride in zip(STAGES, halving_strides(input_size, len(STAGES)), strict=True):
            layers.append(max_pool(stride))
            for widths in stage:
                fire = Fire(channels, widths)
                layers.append(fire)
                channels = fire.out_channels
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(channels, num_classes, 1)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            final_conv,
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        init_weights(self)
        nn.init.normal_(final_conv.weight, std=0.01)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@register_network("squeezenet")
def squeezenet(num_classes: int, input_size: int, in_channels: int) -> SqueezeNet:
    """SqueezeNet v1.1 with a stride-1 stem: about 0.73M parameters."""
    return SqueezeNet(num_classes, input_size, in_channels)
