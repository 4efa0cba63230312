"""One registry for ops, zoo networks, strategies and evaluators: the same lookups and the same
error everywhere, and every registered entry builds what its name says (as timm tests every
registered model)."""

import math
import random
import sys

import pytest
import torch

from nas.config import parse_config
from nas.evaluators import EVALUATORS, create_evaluator
from nas.export_source import op_builder
from nas.search import open_dataset
from nas.strategies import STRATEGIES, create
from searchspace.ops import OPS, UnknownOp, create_op
from searchspace.registry import Registry, UnknownName
from searchspace.spaces import SearchSpace
from searchspace.zoo import NETWORKS, UnknownNetwork, create_network

SPACE = SearchSpace(ops=("identity", "sep_conv_3x3", "max_pool_3x3"), blocks=2)


def test_register_create_names_and_mapping():
    colours: Registry = Registry("colour")

    @colours.register("red")
    def red(shade: int = 1) -> tuple[str, int]:
        return "red", shade

    colours.add("blue", lambda: ("blue", 0))
    assert colours.create("red", shade=3) == ("red", 3)
    assert colours["red"] is red and "red" in colours and "green" not in colours
    assert colours.names() == list(colours) == ["blue", "red"] and len(colours) == 2
    assert colours.get("green") is None  # a read-only mapping: a missing name is a KeyError
    with pytest.raises(ValueError, match="a colour named 'red' is already registered"):
        colours.add("red", red)
    with pytest.raises(ValueError, match="non-empty name"):
        colours.add("", red)


def test_modules_are_imported_on_the_first_lookup():
    sys.modules.pop("colorsys", None)
    lazy: Registry = Registry("thing", modules=("colorsys",))
    assert "colorsys" not in sys.modules  # nothing imported yet
    assert lazy.names() == [] and "colorsys" in sys.modules
    with pytest.raises(UnknownName, match=r"^unknown thing 'x'; choose one of \(none"):
        lazy.create("x")


REGISTRIES = [
    (OPS, "op", UnknownOp, lambda name: create_op(name, 4, 1)),
    (NETWORKS, "network", UnknownNetwork, lambda name: create_network(name)),
    (STRATEGIES, "strategy", UnknownName, lambda name: create(name, SPACE)),
    (EVALUATORS, "evaluator", UnknownName, lambda name: EVALUATORS.create(name, None, None, None)),
]


@pytest.mark.parametrize(("registry", "kind", "error", "build"), REGISTRIES,
                         ids=[kind for _, kind, _, _ in REGISTRIES])
def test_an_unknown_name_is_the_same_error_everywhere(registry, kind, error, build):
    with pytest.raises(error) as raised:
        build("no_such_thing")
    # a KeyError (a registry is a mapping) and a ValueError (bad input) alike
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, ValueError)
    assert str(raised.value) == (f"unknown {kind} 'no_such_thing'; choose one of "
                                 f"{', '.join(registry.names())}")
    assert raised.value.known_names == registry.names() and len(registry.names()) >= 3


def test_the_registries_hold_what_the_project_documents():
    assert set(OPS) >= {"identity", "sep_conv_3x3", "inception", "se_sep_conv_3x3",
                        "mbconv_3x3", "avg_pool_3x3", "max_pool_3x3"}
    assert STRATEGIES.names() == ["evolution", "random", "reinforce", "tpe"]
    assert EVALUATORS.names() == ["enas", "standalone", "synthetic"]
    assert {"resnet20", "mobilenet_v2", "lenet5"} <= set(NETWORKS)


@pytest.mark.parametrize("name", OPS.names())
def test_every_op_is_exportable_by_its_builder(name):
    builder = op_builder(name)
    assert builder.__name__ == name  # the exported cells call it by the op's name
    torch.manual_seed(0)
    first = builder(4, 2)
    torch.manual_seed(0)
    assert str(first) == str(create_op(name, 4, 2))


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_asks_tells_and_resumes_by_its_name(name):
    strategy = create(name, SPACE, seed=3)
    assert strategy.name == name
    asked = strategy.ask(2)
    for genotype in asked:
        SPACE.validate(genotype)
    strategy.tell(asked, [0.2, 0.7])
    resumed = create(name, SPACE, seed=3)
    resumed.load_state_dict(strategy.state_dict())
    assert resumed.ask(3) == strategy.ask(3)  # the state holds everything it needs
    with pytest.raises(ValueError, match="finite"):
        strategy.tell(asked, [0.2, math.nan])


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_every_evaluator_is_created_by_the_name_its_config_gives(name, tmp_path):
    config = parse_config({
        "strategy": {"name": "random"}, "evaluator": {"name": name, "epochs": 1},
        "dataset": {"name": "synthetic", "limit": 64}, "network": {"cells": 1, "channels": 4},
        "space": {"blocks": 2, "ops": ["identity", "sep_conv_3x3"]},
        "budget": {"architectures": 2},
    })
    data = None if name == "synthetic" else open_dataset(config)
    evaluator = create_evaluator(config, data, tmp_path)
    try:
        assert evaluator.name == name
        genotype = config.space.build().sample(random.Random(0))
        (evaluation,) = evaluator.evaluate([genotype])
        assert evaluation.state == "COMPLETE" and 0 <= evaluation.reward <= 1
    finally:
        evaluator.close()
    if name != "synthetic":
        with pytest.raises(ValueError, match=f"evaluator '{name}' needs a dataset"):
            create_evaluator(config, None)
