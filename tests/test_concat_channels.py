"""Channel concatenation hands each input a dense gradient (`searchspace.ops.concat_channels`).

A channel slice of a channels-last gradient is strided; batch norm's backward on it took a
path about 14x slower on the CPU than on the same gradient made dense (docs/benchmarks.md,
"Op kernels"). Every cell ends in a concatenation, so most of a network's batch norms met one.
"""

import random

import pytest
import torch

from searchspace.network import CellNetwork
from searchspace.ops import concat_channels
from searchspace.spaces import DEFAULT_OPS, ENAS_OPS, SearchSpace

FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@pytest.mark.parametrize("name", FORMATS)
def test_same_values_and_gradients_as_torch_cat_with_dense_gradients(name):
    fmt = FORMATS[name]
    torch.manual_seed(0)
    parts = [torch.randn(4, width, 6, 6).to(memory_format=fmt).requires_grad_(True)
             for width in (3, 5, 2)]
    upstream = torch.randn(4, 10, 6, 6).to(memory_format=fmt)

    expected = torch.cat(parts, dim=1)
    expected_grads = torch.autograd.grad(expected, parts, upstream)
    found = concat_channels(parts)
    found_grads = torch.autograd.grad(found, parts, upstream)

    assert torch.equal(found, expected)
    for grad, reference in zip(found_grads, expected_grads, strict=True):
        assert torch.equal(grad, reference)
        assert grad.is_contiguous(memory_format=fmt)
    # what torch.cat hands back: strided slices of the upstream gradient
    assert not all(grad.is_contiguous(memory_format=fmt) for grad in expected_grads)


def test_without_gradients_it_is_torch_cat():
    parts = [torch.randn(2, 3, 4, 4), torch.randn(2, 1, 4, 4)]
    with torch.no_grad():
        out = concat_channels([part.requires_grad_(True) for part in parts])
    assert out.grad_fn is None and torch.equal(out, torch.cat(parts, dim=1))


@pytest.mark.parametrize("ops", [ENAS_OPS, DEFAULT_OPS], ids=["enas-ops", "ten-ops"])
def test_every_batch_norm_of_a_channels_last_network_gets_a_dense_gradient(ops):
    torch.manual_seed(0)
    genotype = SearchSpace(ops=ops).sample(random.Random(0))
    model = CellNetwork(genotype, cells=1, channels=8, reduce_inputs=True)
    model = model.to(memory_format=torch.channels_last).train()
    strided: list[tuple[int, ...]] = []

    def record(grad):
        if not grad.is_contiguous(memory_format=torch.channels_last):
            strided.append(tuple(grad.stride()))

    def watch(_module, _inputs, output):  # the gradient batch norm's backward receives
        output.register_hook(record)

    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.register_forward_hook(watch)
    images = torch.randn(8, 3, 32, 32).to(memory_format=torch.channels_last)
    torch.nn.functional.cross_entropy(model(images), torch.randint(0, 10, (8,))).backward()

    assert len(norms) > 10
    assert strided == []
