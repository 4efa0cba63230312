"""The operations a cell block can apply, by name: `create_op(name, channels, stride)`.

Every op maps `channels` to `channels` and halves the spatial size (rounding up) at stride 2,
so any op can take any input of a cell. Convolutions use the NASNet order ReLU-Conv-BN; separable
convolutions are applied twice as in NASNet and DARTS.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.registry import Registry, UnknownName


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
        # applied to the odd pixels, already taken one in two: the stride-2 convolution of the
        # input shifted by one pixel, without building the padded full-size copy
        self.conv_odd = nn.Conv2d(c_in, c_out - half, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(reduce_by_two(self.relu(x), self.conv_even.weight, self.conv_odd.weight))


class _ConcatChannels(torch.autograd.Function):
    """`torch.cat` along the channels whose backward hands each input a dense gradient in the
    output's memory format, not a strided slice of the output's gradient."""

    @staticmethod
    def forward(ctx, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.widths = [tensor.shape[1] for tensor in tensors]
        out = torch.cat(tensors, dim=1)
        ctx.memory_format = (torch.channels_last
                             if out.dim() == 4 and not out.is_contiguous()
                             and out.is_contiguous(memory_format=torch.channels_last)
                             else torch.contiguous_format)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(part.contiguous(memory_format=ctx.memory_format)
                     for part in grad.split(ctx.widths, dim=1))


def concat_channels(tensors: list[torch.Tensor]) -> torch.Tensor:
    """`torch.cat(tensors, dim=1)`. When it is differentiated, each input's gradient comes back
    dense: a channel slice of a channels-last gradient is strided, and batch norm's backward
    on such a gradient is about 14x slower on the CPU (docs/benchmarks.md, "Op kernels")."""
    if (torch.is_grad_enabled() and any(tensor.requires_grad for tensor in tensors)
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()):
        return _ConcatChannels.apply(*tensors)
    return torch.cat(tensors, dim=1)


def reduce_by_two(x: torch.Tensor, even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """`FactorizedReduce`'s two 1x1 convolutions: `even` at stride 2 on the input, `odd` on the
    input shifted by one pixel (zero past the bottom and right edge), then concatenated."""
    height, width = x.shape[-2:]
    shifted = x[:, :, 1::2, 1::2]
    if height % 2 or width % 2:  # the shifted input's last row / column is padding
        shifted = F.pad(shifted, (0, width % 2, 0, height % 2))
    return concat_channels([F.conv2d(x, even, stride=2), F.conv2d(shifted, odd)])


class Identity(nn.Module):
    """The residual shortcut of a cell: passes its input through unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class AveragePool3x3(nn.Module):
    """3x3 average pooling over the pixels inside the image (`count_include_pad=False`),
    computed as a depthwise convolution of ones divided by each window's pixel count: the
    numbers of `nn.AvgPool2d(3, stride, 1, count_include_pad=False)` within rounding, and its
    training step several times faster on the CPU (docs/benchmarks.md, "Op kernels")."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones(x.shape[1], 1, 3, 3)
        sums = F.conv2d(x, ones, stride=self.stride, padding=1, groups=x.shape[1])
        counts = F.conv2d(x.new_ones(1, 1, *x.shape[-2:]), ones[:1], stride=self.stride,
                          padding=1)
        return sums / counts


class SqueezeExcitation(nn.Module):
    """Channel attention of SENet (Hu et al., 2018): global pool, bottleneck MLP, gate.

    The cells' se_sep_conv op uses `reduction` 4; the zoo's SE-ResNet the published 16, both
    with at least `min_hidden` hidden units, ReLU and a sigmoid gate. MobileNetV3 (hard-sigmoid
    gate) and EfficientNet (SiLU) give their own `hidden` width, `activation` and `gate`.
    """

    def __init__(
        self, channels: int, reduction: int = 4, min_hidden: int = 4, *,
        hidden: int | None = None, activation: type[nn.Module] = nn.ReLU,
        gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        hidden = max(channels // reduction, min_hidden) if hidden is None else hidden
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.activation = activation(inplace=True)
        self.excite = nn.Conv2d(hidden, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.adaptive_avg_pool2d(x, 1)
        weights = self.gate(self.excite(self.activation(self.squeeze(weights))))
        return x * weights


class SqueezeExcitationSeparableConv(nn.Sequential):
    """A separable convolution followed by squeeze-excitation."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            SeparableConv(channels, channels, kernel_size, stride),
            SqueezeExcitation(channels),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., 2018): 1x1 expansion (none at `expansion` 1),
    depthwise conv, linear 1x1 projection; batch norm after each, ReLU6 (in place: it follows a
    batch norm) after all but the projection; the input is added back when the shape is
    unchanged. The cells' mbconv op and the zoo's MobileNet v2 use it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expansion: int = 3) -> None:
        super().__init__()
        hidden = in_channels * expansion
        expand = [
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        ] if expansion != 1 else []
        self.use_residual = stride == 1 and in_channels == out_channels
        self.body = nn.Sequential(
            *expand,
            nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2,
                      groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
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
            AveragePool3x3(stride), ReLUConvBN(channels, cp, 1)
        )
        self.project = ReLUConvBN(c1 + c3 + c33 + cp, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch_1x1, self.branch_3x3, self.branch_double_3x3, self.branch_pool]
        return self.project(concat_channels([branch(x) for branch in branches]))


OpBuilder = Callable[[int, int], nn.Module]


class UnknownOp(UnknownName):
    """No op is registered under the requested name."""


# Any change here that alters the network an existing genotype builds raises
# `searchspace.op_set.OP_SET_VERSION`.
# Each op: `builder(channels, stride) -> nn.Module`, registered under its name. `nas export`
# copies these builders and the classes they use into the standalone module.
OPS: Registry[OpBuilder] = Registry("op", unknown=UnknownOp)
register_op = OPS.register


@register_op("identity")
def identity(channels: int, stride: int) -> nn.Module:
    """The skip connection; a factorized reduce where the block must halve the size."""
    return Identity() if stride == 1 else FactorizedReduce(channels, channels)


@register_op("conv_1x1")
def conv_1x1(channels: int, stride: int) -> nn.Module:
    return ReLUConvBN(channels, channels, 1, stride)


@register_op("conv_3x3")
def conv_3x3(channels: int, stride: int) -> nn.Module:
    return ReLUConvBN(channels, channels, 3, stride)


@register_op("sep_conv_3x3")
def sep_conv_3x3(channels: int, stride: int) -> nn.Module:
    return SeparableConv(channels, channels, 3, stride)


@register_op("sep_conv_5x5")
def sep_conv_5x5(channels: int, stride: int) -> nn.Module:
    return SeparableConv(channels, channels, 5, stride)


@register_op("sep_conv_7x7")
def sep_conv_7x7(channels: int, stride: int) -> nn.Module:
    return SeparableConv(channels, channels, 7, stride)


@register_op("dil_conv_3x3")
def dil_conv_3x3(channels: int, stride: int) -> nn.Module:
    return DilatedSeparableConv(channels, channels, 3, stride, dilation=2)


@register_op("dil_conv_5x5")
def dil_conv_5x5(channels: int, stride: int) -> nn.Module:
    return DilatedSeparableConv(channels, channels, 5, stride, dilation=2)


@register_op("conv_1x7_7x1")
def conv_1x7_7x1(channels: int, stride: int) -> nn.Module:
    return FactorizedConv(channels, 7, stride)


@register_op("inception")
def inception(channels: int, stride: int) -> nn.Module:
    return InceptionBranches(channels, stride)


@register_op("se_sep_conv_3x3")
def se_sep_conv_3x3(channels: int, stride: int) -> nn.Module:
    return SqueezeExcitationSeparableConv(channels, 3, stride)


@register_op("mbconv_3x3")
def mbconv_3x3(channels: int, stride: int) -> nn.Module:
    return InvertedResidual(channels, channels, 3, stride)


@register_op("avg_pool_3x3")
def avg_pool_3x3(channels: int, stride: int) -> nn.Module:
    return AveragePool3x3(stride)


@register_op("max_pool_3x3")
def max_pool_3x3(channels: int, stride: int) -> nn.Module:
    return nn.MaxPool2d(3, stride, 1)


def create_op(name: str, channels: int, stride: int) -> nn.Module:
    """Build op `name` at `stride` (1 or 2); an unknown name raises `UnknownOp`."""
    builder = OPS.get_entry(name)
    if stride not in (1, 2):
        raise ValueError(f"op stride must be 1 or 2, got {stride}")
    return builder(channels, stride)
