"""Published cells mapped onto this project's ops, by name.

- `nasnet_a` (Zoph et al., 2018, NASNet-A; from the authors' TF-slim code, inputs renumbered
  to 0 = two cells back, 1 = previous cell). Approximate in one respect: NASNet concatenates
  some states that other blocks also read (the normal cell adds its previous-cell input, the
  reduction cell its second block), while our cells concatenate exactly the unread block outputs.
- `enas` (Pham et al., 2018, the micro cell in the authors' `cifar10_micro_final.sh`): exact
  op for op (their ids 0..4 = sep_conv_3x3, sep_conv_5x5, avg_pool_3x3, max_pool_3x3, identity).
"""

from __future__ import annotations

from searchspace.genotype import Genotype

NASNET_A = Genotype(
    normal=(
        (1, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (0, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (1, "avg_pool_3x3", 0, "identity"),
        (0, "avg_pool_3x3", 0, "avg_pool_3x3"),
        (1, "sep_conv_3x3", 1, "identity"),
    ),
    reduction=(
        (1, "sep_conv_5x5", 0, "sep_conv_7x7"),
        (1, "max_pool_3x3", 0, "sep_conv_7x7"),
        (1, "avg_pool_3x3", 0, "sep_conv_5x5"),
        (3, "identity", 2, "avg_pool_3x3"),
        (2, "sep_conv_3x3", 1, "max_pool_3x3"),
    ),
)

ENAS_MICRO = Genotype(
    normal=(
        (0, "avg_pool_3x3", 0, "sep_conv_3x3"),
        (0, "identity", 0, "sep_conv_5x5"),
        (0, "identity", 1, "sep_conv_5x5"),
        (1, "sep_conv_3x3", 0, "sep_conv_5x5"),
        (0, "avg_pool_3x3", 1, "sep_conv_5x5"),
    ),
    reduction=(
        (1, "sep_conv_3x3", 1, "sep_conv_3x3"),
        (0, "max_pool_3x3", 0, "avg_pool_3x3"),
        (1, "sep_conv_5x5", 3, "sep_conv_5x5"),
        (1, "sep_conv_3x3", 0, "identity"),
        (0, "max_pool_3x3", 1, "sep_conv_5x5"),
    ),
)

REFERENCE_GENOTYPES: dict[str, Genotype] = {"nasnet_a": NASNET_A, "enas": ENAS_MICRO}


def reference_genotype(name: str) -> Genotype:
    """The published genotype `name`; an unknown name raises `KeyError` listing the known ones."""
    try:
        return REFERENCE_GENOTYPES[name]
    except KeyError:
        known = ", ".join(REFERENCE_GENOTYPES)
        raise KeyError(f"unknown reference genotype {name!r}; known: {known}") from None
