"""Seeds: the range a user may give, and generator seeds derived from it without aliasing.

A seed is any integer in `0 <= seed < 2**63` (the store keeps it in a signed 64-bit column).
Generators do not all take 64 bits: torch's CPU generator (a Mersenne Twister) keeps only the
low 32 bits of its seed and NumPy's legacy seeding takes 32 bits, so seeds 0 and 2**32 would
give the same run. Every generator is therefore seeded with `stream_seed(seed, stream)`: a hash
of the whole seed and the generator's purpose, so every bit of the user's seed matters.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import AfterValidator

SEED_LIMIT = 2**63
SEED_RANGE = "0 <= seed < 2**63"


def check_seed(seed: int) -> int:
    """`seed` when it is an integer in `SEED_RANGE`; else ValueError saying the range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"expected an integer with {SEED_RANGE}, got {seed!r}")
    return seed


Seed = Annotated[int, AfterValidator(check_seed)]
"""A seed field of a pydantic model: an int checked by `check_seed`."""


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the generator named `stream`, mixed from every bit of `seed` (SHA-256),
    so seeds that differ only in high bits give different generators, and streams differ."""
    digest = hashlib.sha256(f"{stream}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
