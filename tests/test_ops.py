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
