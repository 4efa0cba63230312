"""Published cells mapped onto this project's ops, by name.

- `nasnet_a` (Zoph et al., 2018, NASNet-A; from the authors' TF-slim code, inputs renumbered
  to 0 = two cells back, 1 = previous cell). Approximate in one respect: NASNet concatenates
  some states that other blocks also read (the normal cell adds its previous-cell input, the
  reduction cell its second block), while our cells concatenate exactly the unread block outputs.
- `enas` (Pham et al., 2018, the micro cell in the authors' `cifar10_micro_final.sh`): exact
  op for op (their ids 0..4 = sep_conv_3x3, sep_conv_5x5, avg_pool_3x3, max_pool_3x3, identity).
- `darts_v2` (Liu et al., 2019, DARTS second order; `DARTS_V2` in the authors' `cnn/genotypes.py`,
  whose input numbering is ours): op for op (`skip_connect` = identity, a factorized reduce at
  stride 2 as in DARTS). Approximate in one respect: DARTS concatenates all four block outputs,
  ours the unread ones (normal: blocks 1-3, as block 3 reads block 0; reduction: blocks 1-3).
- `amoebanet_a` (Real et al., 2019, AmoebaNet-A; as `AmoebaNet` in the DARTS authors'
  `genotypes.py`, from the TensorFlow release): exact, concatenation included (its concat lists,
  normal 4, 5, 6 and reduction 3, 4, 6, are exactly its unread states); `conv_7x1_1x7` is our
  `conv_1x7_7x1`.
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

DARTS_V2 = Genotype(
    normal=(
        (0, "sep_conv_3x3", 1, "sep_conv_3x3"),
        (0, "sep_conv_3x3", 1, "sep_conv_3x3"),
        (1, "sep_conv_3x3", 0, "identity"),
        (0, "identity", 2, "dil_conv_3x3"),
    ),
    reduction=(
        (0, "max_pool_3x3", 1, "max_pool_3x3"),
        (2, "identity", 1, "max_pool_3x3"),
        (0, "max_pool_3x3", 2, "identity"),
        (2, "identity", 1, "max_pool_3x3"),
    ),
)

AMOEBANET_A = Genotype(
    normal=(
        (0, "avg_pool_3x3", 1, "max_pool_3x3"),
        (0, "sep_conv_3x3", 2, "sep_conv_5x5"),
        (0, "sep_conv_3x3", 3, "avg_pool_3x3"),
        (1, "sep_conv_3x3", 1, "identity"),
        (0, "identity", 1, "avg_pool_3x3"),
    ),
    reduction=(
        (0, "avg_pool_3x3", 1, "sep_conv_3x3"),
        (0, "max_pool_3x3", 2, "sep_conv_7x7"),
        (0, "sep_conv_7x7", 1, "avg_pool_3x3"),
        (0, "max_pool_3x3", 1, "max_pool_3x3"),
        (0, "conv_1x7_7x1", 5, "sep_conv_3x3"),
    ),
)

REFERENCE_GENOTYPES: dict[str, Genotype] = {
    "nasnet_a": NASNET_A, "enas": ENAS_MICRO, "darts_v2": DARTS_V2, "amoebanet_a": AMOEBANET_A,
}

