"""The classic-architecture zoo: every registered network builds, runs and learns at any size."""

from __future__ import annotations

import pytest
import torch

from searchspace.complexity import count_flops, count_parameters
from searchspace.zoo import UnknownNetwork, create_network, list_networks, register_network

NETWORK_NAMES = list_networks()


@pytest.fixture(autouse=True)
def _deterministic_two_threads() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)


def test_every_family_is_registered_and_listed_sorted() -> None:
    expected = {
        "lenet5", "alexnet", "vgg11", "vgg16", "googlenet", "resnet20", "resnet56",
        "se_resnet20", "wrn16_4", "resnext29", "densenet_bc", "squeezenet",
        "mobilenet_v1", "mobilenet_v2", "zfnet", "vgg19", "nin", "inception_v4",
        "inception_resnet_v2", "preact_resnet164", "fractalnet", "shufflenet_v2",
        "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_b1",
        "efficientnet_b2", "efficientnet_b3",
    }  # fmt: skip
    assert expected <= set(NETWORK_NAMES)
    assert sorted(NETWORK_NAMES) == NETWORK_NAMES


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_forward_and_backward_on_cifar_sized_batch(name: str) -> None:
    network = create_network(name, num_classes=10, input_size=32, in_channels=3)
    images = torch.randn(2, 3, 32, 32)

    logits = network(images)
    logits.square().mean().backward()

    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    gradients = [p.grad for p in network.parameters() if p.requires_grad]
    assert all(gradient is not None for gradient in gradients)
    assert all(torch.isfinite(gradient).all() for gradient in gradients)


@pytest.mark.parametrize(
    ("input_size", "in_channels", "num_classes"),
    [(8, 1, 10), (64, 3, 5)],
    ids=["digits-1x8x8", "3x64x64"],
)
@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_runs_at_other_input_sizes(
    name: str, input_size: int, in_channels: int, num_classes: int
) -> None:
    network = create_network(name, num_classes, input_size, in_channels).eval()

    with torch.no_grad():
        logits = network(torch.randn(1, in_channels, input_size, input_size))

    assert logits.shape == (1, num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_flops_grow_with_the_input_and_the_weights_do_not(name: str) -> None:
    network = create_network(name, input_size=16)
    small, large = count_flops(network, (3, 16, 16)), count_flops(network, (3, 32, 32))
    assert 0 < small < large
    assert count_parameters(network) == count_parameters(create_network(name, input_size=32))


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("resnet20", 260_000, 280_000), ("resnet56", 840_000, 870_000)],
)
def test_cifar_resnets_have_the_published_parameter_counts(name: str, low: int, high: int) -> None:
    assert low <= count_parameters(create_network(name)) <= high


def test_unknown_name_is_named_and_known_names_are_listed() -> None:
    with pytest.raises(UnknownNetwork) as raised:
        create_network("resnet_9000")

    message = str(raised.value)
    assert "resnet_9000" in message
    assert all(name in message for name in NETWORK_NAMES)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("arguments", "named_argument"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"input_size": 7}, "input_size"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 2.5}, "num_classes"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    arguments: dict[str, object], named_argument: str
) -> None:
    with pytest.raises(ValueError, match=named_argument):
        create_network("resnet20", **arguments)


def test_registering_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_network("resnet20")(lambda **_: torch.nn.Identity())
