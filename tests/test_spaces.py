"""Search spaces: token sequences, sampling, size."""

import random

import pytest

from searchspace.genotype import InvalidGenotype
from searchspace.references import ENAS_MICRO
from searchspace.spaces import SearchSpace


def test_tokens_round_trip_for_random_genotypes():
    space = SearchSpace()
    rng = random.Random(0)
    for _ in range(50):
        genotype = space.sample(rng)
        space.validate(genotype)
        tokens = space.to_tokens(genotype)
        assert len(tokens) == len(space.decisions()) == 2 * 5 * 4
        assert space.from_tokens(tokens) == genotype


def test_decisions_offer_only_valid_inputs_and_ops():
    space = SearchSpace(blocks=3, ops=("identity", "conv_3x3", "max_pool_3x3"))
    choices = [(d.cell, d.block, d.kind, d.choices) for d in space.decisions()]
    assert choices[:4] == [("normal", 0, "input", 2), ("normal", 0, "op", 3),
                           ("normal", 0, "input", 2), ("normal", 0, "op", 3)]
    assert choices[8] == ("normal", 2, "input", 4)


def test_reference_genotype_tokens():
    space = SearchSpace(ops=("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
                             "identity"))
    tokens = space.to_tokens(ENAS_MICRO)
    # The ENAS authors' fixed_arc for their published cell, in their op ids.
    assert tokens[:20] == [0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1]
    assert tokens[20:] == [1, 0, 1, 0, 0, 3, 0, 2, 1, 1, 3, 1, 1, 0, 0, 4, 0, 3, 1, 1]


def test_sampling_is_seeded_and_covers_the_ops():
    space = SearchSpace()
    first = [space.sample(random.Random(7)) for _ in range(3)]
    again = [space.sample(random.Random(7)) for _ in range(3)]
    assert first == again
    rng = random.Random(1)
    seen = set().union(*(space.sample(rng).ops() for _ in range(40)))
    assert seen == set(space.ops)


def test_number_of_distinct_cells_matches_enumeration_of_a_tiny_space():
    space = SearchSpace(ops=("identity", "conv_1x1"), blocks=2, cells=("normal",))
    distinct = set()
    for a in range(2):
        for oa in range(2):
            for b in range(2):
                for ob in range(2):
                    for c in range(3):
                        for oc in range(2):
                            for d in range(3):
                                for od in range(2):
                                    tokens = [a, oa, b, ob, c, oc, d, od]
                                    distinct.add(space.from_tokens(tokens).canonical())
    assert space.num_cells() == len(distinct)
    assert space.num_genotypes() == len(distinct)


def test_normal_only_space_repeats_the_normal_cell_for_reduction():
    space = SearchSpace(cells=("normal",))
    genotype = space.sample(random.Random(0))
    assert genotype.reduction == genotype.normal
    assert len(space.to_tokens(genotype)) == 20
    with pytest.raises(InvalidGenotype, match="searches only the normal cell"):
        space.validate(SearchSpace().sample(random.Random(1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ops": ("nope",)}, "unknown op"), ({"blocks": 0}, "blocks"),
     ({"ops": ()}, "at least one op"), ({"cells": ("reduction",)}, "cells must be")],
)
def test_bad_space_definitions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_bad_token_sequences_are_invalid_genotypes():
    space = SearchSpace()
    with pytest.raises(InvalidGenotype, match="expected 40 tokens"):
        space.from_tokens([0] * 3)
    tokens = [0] * 40
    tokens[0] = 2
    with pytest.raises(InvalidGenotype, match="normal cell, block 0, input_a: token 2"):
        space.from_tokens(tokens)


def test_sample_ops_keeps_the_topology_and_draws_every_op():
    space = SearchSpace(blocks=4)
    topology = space.sample(random.Random(3))
    rng = random.Random(0)
    drawn = [space.sample_ops(rng, topology) for _ in range(40)]
    for genotype in drawn:
        space.validate(genotype)
        for cell in ("normal", "reduction"):
            assert ([(a, b) for a, _, b, _ in genotype.cell(cell)]
                    == [(a, b) for a, _, b, _ in topology.cell(cell)])
    assert set().union(*(genotype.ops() for genotype in drawn)) == set(space.ops)
    assert len(set(drawn)) == 40


def test_fair_paths_use_every_op_once_in_every_op_decision():
    space = SearchSpace(blocks=4)
    rng = random.Random(0)
    paths = space.fair_paths(rng)
    assert len(paths) == len(space.ops)
    columns = list(zip(*(space.to_tokens(genotype) for genotype in paths), strict=True))
    for column, decision in zip(columns, space.decisions(), strict=True):
        if decision.kind == "op":
            assert sorted(column) == list(range(len(space.ops)))
    assert len({genotype.normal for genotype in paths}) == len(paths)
    topology = space.sample(random.Random(3))
    kept = space.fair_paths(rng, topology)
    for genotype in kept:
        assert ([(a, b) for a, _, b, _ in genotype.cell("normal")]
                == [(a, b) for a, _, b, _ in topology.cell("normal")])
