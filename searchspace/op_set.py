"""The version of the op set that genotypes are built with.

Every architecture records the version it was found with, and `nas export` / `nas transfer`
refuse one found with another: its network would not be the one that was scored. Raise it with
any change that alters the network an existing genotype builds (an op's layers, their order or
settings, how a cell wires its ops): `tests/test_op_set_version.py` fails on any change of those
definitions (`searchspace/ops.py`, `cells.py`, `network.py`) until its new fingerprint is
recorded there, with the version it belongs to.
"""

OP_SET_VERSION = 1
