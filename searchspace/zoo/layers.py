"""Pieces shared by the zoo: stride planning for any input size, conv-BN-activation, stems,
heads, channel rounding, stochastic depth, init."""

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


# Inputs of at least this many pixels get a network's ImageNet layout (its published stem and
# strides); smaller ones its CIFAR-sized adaptation. Cell networks switch stems at this size too.
IMAGENET_MIN_SIZE = 128


def imagenet_sized(input_size: int) -> bool:
    """Whether `input_size` pixels get the ImageNet layout (see `IMAGENET_MIN_SIZE`)."""
    return input_size >= IMAGENET_MIN_SIZE


def conv_bn_act(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
    groups: int = 1, activation: type[nn.Module] | None = nn.ReLU,
    padding: int | tuple[int, int] | None = None,
) -> nn.Sequential:
    """Convolution (no bias; same-padded unless `padding` says otherwise), batch norm and an
    optional activation (`None`: linear)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    pad = (kh // 2, kw // 2) if padding is None else padding
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, (kh, kw), stride, pad, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


def imagenet_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """ResNet's ImageNet stem: 7x7 stride-2 conv-BN-ReLU and 3x3 stride-2 max pooling (4x)."""
    return nn.Sequential(
        conv_bn_act(in_channels, out_channels, 7, stride=2),
        nn.MaxPool2d(3, 2, padding=1),
    )


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to the nearest multiple of `divisor`, never below 90% of it (the channel
    rounding of MobileNet v2/v3 and EfficientNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
