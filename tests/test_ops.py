"""Every registered op, at stride 1 and 2, for several widths and odd and even sizes."""

import pytest
import torch

from searchspace.ops import OPS, FactorizedReduce, Identity, create_op


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("channels", "size"), [(8, 16), (6, 7), (5, 9)])
def test_op_forward_backward(name, stride, channels, size):
    torch.manual_seed(0)
    op = create_op(name, channels, stride)
    x = torch.randn(2, channels, size, size, requires_grad=True)
    y = op(x)
    expected = (size + stride - 1) // stride
    assert y.shape == (2, channels, expected, expected)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for parameter in op.parameters():
        assert parameter.grad is None or torch.isfinite(parameter.grad).all()


def test_identity_is_a_plain_shortcut_at_stride_1_and_reduces_at_stride_2():
    assert isinstance(create_op("identity", 4, 1), Identity)
    assert isinstance(create_op("identity", 4, 2), FactorizedReduce)


def test_unknown_op_names_the_known_ones():
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        create_op("sep_conv_9x9", 4, 1)


def test_bad_stride_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        create_op("conv_3x3", 4, 3)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(8, 8), (7, 7), (9, 6), (1, 5)])
def test_average_pool_is_torch_average_pool_without_padding(stride, size):
    """The depthwise-convolution pooling gives the numbers, and the gradients, of
    `nn.AvgPool2d(3, stride, 1, count_include_pad=False)`, borders and odd sizes included."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, *size, dtype=torch.float64, requires_grad=True)
    reference = torch.nn.AvgPool2d(3, stride, 1, count_include_pad=False)(x)
    pooled = create_op("avg_pool_3x3", 5, stride)(x)
    torch.testing.assert_close(pooled, reference, rtol=0, atol=1e-12)
    weights = torch.randn_like(reference)
    (expected,) = torch.autograd.grad((reference * weights).sum(), x)
    (found,) = torch.autograd.grad((pooled * weights).sum(), x)
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (9, 6), (6, 9)])
def test_factorized_reduce_is_the_pad_and_shift_formula(size):
    """Its odd path is the stride-2 1x1 convolution of the input shifted by one pixel and
    zero-padded at the bottom and right (the DARTS / ENAS formula), computed on the strided
    pixels only: the same numbers, and the same parameters, for even and odd sizes."""
    torch.manual_seed(0)
    reduce = FactorizedReduce(4, 6).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    relu = torch.relu(x)
    shifted = torch.nn.functional.pad(relu, (0, 1, 0, 1))[:, :, 1:, 1:]
    odd = torch.nn.functional.conv2d(shifted, reduce.conv_odd.weight, stride=2)
    expected = reduce.bn(torch.cat([reduce.conv_even(relu), odd], dim=1))
    torch.testing.assert_close(reduce(x), expected, rtol=0, atol=1e-12)
    assert sorted(reduce.state_dict()) == sorted(FactorizedReduce(4, 6).state_dict())
