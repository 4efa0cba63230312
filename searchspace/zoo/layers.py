"""Pieces shared by the zoo: stride planning for any input size, conv-BN-ReLU, head, init."""

from __future__ import annotations

from torch import nn


def halving_strides(input_size: int, count: int) -> list[int]:
    """Strides for `count` planned 2x downsamplings of an `input_size`-pixel map, in order.

    A stride-2 step maps `s` pixels to `ceil(s / 2)`; once the map is down to 1 pixel the
    remaining steps get stride 1, so small inputs (8x8 digits) never shrink below 1x1.
    """
    strides = []
    size = input_size
    for _ in range(count):
        stride = 2 if size >= 2 else 1
        strides.append(stride)
        size = -(-size // stride)
    return strides


def max_pool(stride: int, kernel_size: int = 3) -> nn.Module:
    """2x max pooling (3x3 padded, or 2x2 rounding up) that maps `s` pixels to `ceil(s / 2)`.

    The identity when `stride` is 1, i.e. when `halving_strides` skipped this downsampling.
    """
    if stride == 1:
        return nn.Identity()
    if kernel_size == 2:
        return nn.MaxPool2d(2, stride, ceil_mode=True)
    return nn.MaxPool2d(kernel_size, stride, padding=kernel_size // 2)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Same-padded convolution (no bias), batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def pooled_linear_head(in_channels: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Global average pooling, optional dropout and one linear layer to the class logits."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        nn.Linear(in_channels, num_classes),
    )


def dropout_mlp_head(
    in_channels: int, pooled_size: int, hidden: int, num_classes: int
) -> nn.Sequential:
    """AlexNet/VGG classifier: pool to `pooled_size`^2, then two dropout + ReLU hidden layers."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(pooled_size),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(in_channels * pooled_size * pooled_size, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions with zero bias and unit/zero batch norm.

    Linear layers keep PyTorch's default (Kaiming-uniform) initialisation.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
