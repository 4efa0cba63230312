"""Cell networks from genotypes: CIFAR and ImageNet stems, auxiliary head, drop-path, counts."""

import random

import pytest
import torch

from searchspace.complexity import count_flops, count_parameters
from searchspace.network import CellNetwork
from searchspace.references import ENAS_MICRO, NASNET_A, REFERENCE_GENOTYPES
from searchspace.spaces import SearchSpace


def _forward_backward(model, x):
    model.train()
    output = model(x)
    logits = output[0] if isinstance(output, tuple) else output
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return output


@pytest.mark.parametrize("name", sorted(REFERENCE_GENOTYPES))
def test_reference_cells_at_cifar_size_with_auxiliary_head(name):
    torch.manual_seed(0)
    model = CellNetwork(REFERENCE_GENOTYPES[name], cells=1, channels=8, auxiliary=True)
    logits, auxiliary = _forward_backward(model, torch.randn(2, 3, 32, 32))
    assert logits.shape == auxiliary.shape == (2, 10)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_random_cells_at_cifar_size_and_on_digits():
    space = SearchSpace()
    rng = random.Random(0)
    for _ in range(4):
        genotype = space.sample(rng)
        model = CellNetwork(genotype, cells=1, channels=8, num_classes=7)
        assert _forward_backward(model, torch.randn(2, 3, 32, 32)).shape == (2, 7)
        digits = CellNetwork(genotype, cells=1, channels=8, in_channels=1)
        assert _forward_backward(digits, torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_imagenet_stem_at_224():
    torch.manual_seed(0)
    model = CellNetwork(NASNET_A, cells=1, channels=8, stem="imagenet", num_classes=5)
    assert len(model.cells) == 2 + 3 + 2  # two stem reductions, 3 stages of 1, 2 reductions
    assert _forward_backward(model, torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_drop_path_changes_training_outputs_only():
    torch.manual_seed(0)
    model = CellNetwork(ENAS_MICRO, cells=1, channels=8)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        reference = model(x)
        model.drop_path_prob = 0.5
        assert torch.equal(model(x), reference)
        model.train()
        torch.manual_seed(1)
        dropped = model(x)
    assert not torch.allclose(dropped, reference)


def test_parameters_and_flops_grow_with_width_and_depth():
    small = CellNetwork(NASNET_A, cells=1, channels=8)
    wide = CellNetwork(NASNET_A, cells=1, channels=16)
    deep = CellNetwork(NASNET_A, cells=2, channels=8)
    sizes = [count_parameters(m) for m in (small, wide, deep)]
    flops = [count_flops(m, (3, 32, 32)) for m in (small, wide, deep)]
    assert sizes[0] < sizes[2] < sizes[1]
    assert flops[0] < flops[2] and flops[0] < flops[1]
    assert all(f > 1e6 for f in flops)


def test_auxiliary_head_is_not_counted_in_flops():
    plain = CellNetwork(NASNET_A, cells=1, channels=8)
    with_head = CellNetwork(NASNET_A, cells=1, channels=8, auxiliary=True)
    assert count_parameters(with_head) > count_parameters(plain)
    assert count_flops(with_head, (3, 32, 32)) == count_flops(plain, (3, 32, 32))


@pytest.mark.parametrize(
    "kwargs", [{"cells": 0}, {"channels": 1}, {"num_classes": 1}, {"stem": "mnist"}]
)
def test_bad_network_knobs(kwargs):
    with pytest.raises(ValueError):
        CellNetwork(NASNET_A, **kwargs)
