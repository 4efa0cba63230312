"""Genotype round trips, canonical form, stable ids and validation errors."""

import json
import random
import subprocess
import sys

import pytest

from searchspace.genotype import Genotype, InvalidGenotype, loose_ends
from searchspace.references import ENAS_MICRO, NASNET_A, REFERENCE_GENOTYPES
from searchspace.spaces import SearchSpace


def test_json_round_trip_of_references_and_random_genotypes():
    space = SearchSpace()
    rng = random.Random(3)
    for genotype in [*REFERENCE_GENOTYPES.values(), *(space.sample(rng) for _ in range(20))]:
        assert Genotype.from_json(genotype.to_json()) == genotype
        assert Genotype.from_json(genotype.to_json(indent=2)) == genotype
        assert Genotype.from_dict(json.loads(genotype.to_json())) == genotype


def test_canonical_form_ignores_the_order_of_a_blocks_two_inputs():
    a = Genotype(normal=[(1, "sep_conv_3x3", 0, "identity")], reduction=[(0, "max_pool_3x3",
                 1, "avg_pool_3x3")])
    b = Genotype(normal=[(0, "identity", 1, "sep_conv_3x3")], reduction=[(1, "avg_pool_3x3",
                 0, "max_pool_3x3")])
    assert a != b
    assert a.canonical() == b.canonical()
    assert a.id == b.id
    assert a.id != NASNET_A.id


def test_id_is_the_same_in_another_process():
    code = (
        "from searchspace.references import ENAS_MICRO; print(ENAS_MICRO.id)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == ENAS_MICRO.id
    assert len(other) == 16


def test_genotype_is_immutable_and_hashable():
    with pytest.raises(AttributeError):
        NASNET_A.normal = ()
    assert len({NASNET_A, ENAS_MICRO, Genotype.from_json(NASNET_A.to_json())}) == 2


def test_loose_ends_are_the_unread_blocks():
    assert loose_ends(NASNET_A.normal) == [2, 3, 4, 5, 6]
    assert loose_ends(NASNET_A.reduction) == [4, 5, 6]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"normal": [[0, "identity", 1, "identity"]]}, "missing cell"),
        ({"normal": [], "reduction": [[0, "identity", 1, "identity"]]}, "normal cell: needs"),
        ({"normal": [[0, "identity", 2, "identity"]], "reduction": [[0, "identity", 1,
          "identity"]]}, "normal cell, block 0, input_b: input 2 out of range"),
        ({"normal": [[0, "identity", 1, "identity"]], "reduction": [[0, "identity", 1]]},
         "reduction cell, block 0: expected"),
        ({"normal": [[0, 3, 1, "identity"]], "reduction": [[0, "identity", 1, "identity"]]},
         "normal cell, block 0, op_a: expected str"),
        ({"normal": [[0, "x", 1, "y"]], "reduction": [[0, "x", 1, "y"]], "extra": []},
         "unknown key"),
        ([1, 2], "expected an object"),
    ],
)
def test_malformed_genotypes_name_what_is_wrong(data, message):
    with pytest.raises(InvalidGenotype, match=message):
        Genotype.from_dict(data)


def test_invalid_json_is_an_invalid_genotype():
    with pytest.raises(InvalidGenotype, match="not valid JSON"):
        Genotype.from_json("{normal: ")


def test_validation_against_a_space_names_cell_block_and_field():
    space = SearchSpace(ops=("identity", "sep_conv_3x3"), blocks=5)
    with pytest.raises(InvalidGenotype, match=r"normal cell, block 0, op_a: 'sep_conv_5x5'"):
        space.validate(NASNET_A)
    with pytest.raises(InvalidGenotype, match="has 5 blocks, the space has 4"):
        SearchSpace(blocks=4, ops=tuple(NASNET_A.ops())).validate(NASNET_A)
