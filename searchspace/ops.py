"""The operations a cell block can apply, by name: `OPS[name](channels, stride) -> nn.Module`.

Every op maps `channels` to `channels` and halves the spatial size (rounding up) at stride 2,
so any op can take any input of a cell. Convolutions use the NASNet order ReLU-Conv-BN; separable
convolutions are applied twice as in NASNet and DARTS.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU, then a (possibly dilated or grouped) convolution, then batch norm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, (kh, kw), stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(c_out),
        )


class DilatedSeparableConv(nn.Sequential):
    """ReLU, depthwise (possibly dilated) convolution, pointwise convolution, batch norm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SeparableConv(nn.Sequential):
    """Depthwise-separable convolution applied twice (stride on the first), as in NASNet."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            DilatedSeparableConv(c_in, c_in, kernel_size, stride),
            DilatedSeparableConv(c_in, c_out, kernel_size, 1),
        )


class FactorizedConv(nn.Sequential):
    """Inception's factorized 1xk then kx1 convolution (stride split between the two)."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, (1, kernel_size), (1, stride),
                      (0, kernel_size // 2), bias=False),
            nn.Conv2d(channels, channels, (kernel_size, 1), (stride, 1),
                      (kernel_size // 2, 0), bias=False),
            nn.BatchNorm2d(channels),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing pixels: two offset 1x1 stride-2 convs, concatenated."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        half = c_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_even = nn.Conv2d(c_in, half, 1, stride=2, bias=False)
        self.conv_odd = nn.Conv2d(c_in, c_out - half, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_even(x), self.conv_odd(shifted)], dim=1))


class Identity(nn.Module):
    """The residual shortcut of a cell: passes its input through unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class SqueezeExcitation(nn.Module):
    """Channel attention of SENet: global pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.adaptive_avg_pool2d(x, 1)
        weights = torch.sigmoid(self.excite(F.relu(self.squeeze(weights))))
        return x * weights


class SqueezeExcitationSeparableConv(nn.Sequential):
    """A separable convolution followed by squeeze-excitation."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            SeparableConv(channels, channels, kernel_size, stride),
            SqueezeExcitation(channels),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, depthwise conv, linear 1x1 projection; residual at s=1."""

    def __init__(self, channels: int, kernel_size: int, stride: int, expansion: int = 3) -> None:
        super().__init__()
        hidden = channels * expansion
        self.use_residual = stride == 1
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=False),
            nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2,
                      groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=False),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


def _split_channels(channels: int, parts: int) -> list[int]:
    """Split `channels` into `parts` near-equal positive widths (the first ones take the rest)."""
    base, rest = divmod(channels, parts)
    return [max(base + (1 if i < rest else 0), 1) for i in range(parts)]


class InceptionBranches(nn.Module):
    """Inception-v1 module: 1x1 / 1x1-3x3 / 1x1-3x3-3x3 / pool-1x1 branches, then 1x1 to C."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        c1, c3, c33, cp = _split_channels(channels, 4)
        self.branch_1x1 = ReLUConvBN(channels, c1, 1, stride)
        self.branch_3x3 = nn.Sequential(
            ReLUConvBN(channels, c3, 1), ReLUConvBN(c3, c3, 3, stride)
        )
        self.branch_double_3x3 = nn.Sequential(
            ReLUConvBN(channels, c33, 1), ReLUConvBN(c33, c33, 3), ReLUConvBN(c33, c33, 3, stride)
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride, 1, count_include_pad=False), ReLUConvBN(channels, cp, 1)
        )
        self.project = ReLUConvBN(c1 + c3 + c33 + cp, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch_1x1, self.branch_3x3, self.branch_double_3x3, self.branch_pool]
        return self.project(torch.cat([branch(x) for branch in branches], dim=1))


def identity(channels: int, stride: int) -> nn.Module:
    """The skip connection; a factorized reduce where the block must halve the size."""
    return Identity() if stride == 1 else FactorizedReduce(channels, channels)


OpBuilder = Callable[[int, int], nn.Module]

OPS: dict[str, OpBuilder] = {
    "identity": identity,
    "conv_1x1": lambda c, stride: ReLUConvBN(c, c, 1, stride),
    "conv_3x3": lambda c, stride: ReLUConvBN(c, c, 3, stride),
    "sep_conv_3x3": lambda c, stride: SeparableConv(c, c, 3, stride),
    "sep_conv_5x5": lambda c, stride: SeparableConv(c, c, 5, stride),
    "sep_conv_7x7": lambda c, stride: SeparableConv(c, c, 7, stride),
    "dil_conv_3x3": lambda c, stride: DilatedSeparableConv(c, c, 3, stride, dilation=2),
    "dil_conv_5x5": lambda c, stride: DilatedSeparableConv(c, c, 5, stride, dilation=2),
    "conv_1x7_7x1": lambda c, stride: FactorizedConv(c, 7, stride),
    "inception": lambda c, stride: InceptionBranches(c, stride),
    "se_sep_conv_3x3": lambda c, stride: SqueezeExcitationSeparableConv(c, 3, stride),
    "mbconv_3x3": lambda c, stride: InvertedResidual(c, 3, stride),
    "avg_pool_3x3": lambda c, stride: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride, 1),
}

def create_op(name: str, channels: int, stride: int) -> nn.Module:
    """Build op `name`; an unknown name raises `KeyError` listing the known ops."""
    try:
        builder = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OPS)}") from None
    if stride not in (1, 2):
        raise ValueError(f"op stride must be 1 or 2, got {stride}")
    return builder(channels, stride)
