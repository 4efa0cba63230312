"""The ENAS supernet: sampled-path outputs equal the standalone network with shared weights."""

import random

import pytest
import torch

from searchspace.complexity import count_parameters
from searchspace.genotype import InvalidGenotype
from searchspace.references import ENAS_MICRO
from searchspace.spaces import SearchSpace
from searchspace.supernet import Supernet, extract_network


def _randomize_batch_norm(model):
    """Give every batch norm non-trivial statistics and affine weights, so eval mode is tested."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_sampled_path_equals_standalone_network_for_many_genotypes(mode):
    torch.manual_seed(0)
    space = SearchSpace(blocks=4)
    supernet = Supernet(space, num_classes=5, cells=1, channels=6)
    _randomize_batch_norm(supernet)
    x = torch.randn(3, 3, 16, 16)
    rng = random.Random(0)
    for _ in range(6):
        genotype = space.sample(rng)
        network = extract_network(supernet, genotype)
        supernet.train(mode == "train")
        network.train(mode == "train")
        with torch.no_grad():
            expected = supernet(x, genotype)
            got = network(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        assert supernet.path_parameters(genotype) == count_parameters(network)


def test_gradients_reach_only_the_sampled_ops():
    space = SearchSpace(ops=("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
                             "identity", "dil_conv_3x3"), blocks=5)
    supernet = Supernet(space, cells=1, channels=4)
    supernet(torch.randn(2, 3, 16, 16), ENAS_MICRO).sum().backward()
    for cell in supernet.cells:
        blocks = ENAS_MICRO.reduction if cell.reduction else ENAS_MICRO.normal
        used = {(i, 0, op_a) for i, (_, op_a, _, _) in enumerate(blocks)}
        used |= {(i, 1, op_b) for i, (_, _, _, op_b) in enumerate(blocks)}
        for block, sides in enumerate(cell.candidates):
            for side, ops in enumerate(sides):
                for op, module in ops.items():
                    grads = [p.grad for p in module.parameters()]
                    if (block, side, op) in used:
                        assert all(g is not None for g in grads)
                    else:
                        assert all(g is None for g in grads), (block, side, op)


def test_a_genotype_outside_the_space_is_rejected():
    supernet = Supernet(SearchSpace(ops=("identity", "sep_conv_3x3"), blocks=5), cells=1,
                        channels=4)
    with pytest.raises(InvalidGenotype, match="'avg_pool_3x3' is not an op of this space"):
        extract_network(supernet, ENAS_MICRO)
    with pytest.raises(InvalidGenotype, match="not an op of this space"):
        supernet(torch.randn(1, 3, 8, 8), ENAS_MICRO)
