"""Keep freed activation memory in the process instead of handing it back to the OS each step.

glibc's malloc returns a freed block to the OS when it is large (an `mmap`ed block) or when
the free memory at the top of the heap passes a threshold that it sizes for itself. A training
step frees all its activations at the end of the backward pass, so with the defaults the next
step asks the OS for the same memory again and pays a page fault for every 4 KiB of it (the
`fill_`, `copy_` and ReLU kernels that touch it first are slowed the most). Setting glibc's two
thresholds (`M_MMAP_THRESHOLD` at its 32 MiB maximum, `M_TRIM_THRESHOLD` at 256 MiB) keeps
that memory for the next step: the peak resident memory stays the same, the steps are faster
(docs/benchmarks.md, "Op kernels").

`keep_freed_memory` sets them in this process through `mallopt` and in the environment that
child processes (Ray's workers, candidate processes, `ray start`) read when they start. A user
who set either variable (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) or a malloc
tunable (`GLIBC_TUNABLES=glibc.malloc...`), or preloads another allocator (`LD_PRELOAD`), keeps
their choice; an empty variable counts as unset (glibc would read it as 0: trim every free).
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 32 << 20
"""Blocks this large or larger are `mmap`ed and unmapped when freed (glibc's maximum)."""
TRIM_THRESHOLD = 256 << 20
"""Free memory at the top of the heap that is kept rather than returned to the OS."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
}
"""Environment variable -> (`mallopt` parameter, value)."""


def keep_freed_memory() -> bool:
    """Set glibc's thresholds here and for child processes, unless the user chose an allocator
    setting; whether they were set."""
    if (any(os.environ.get(name) for name in SETTINGS) or os.environ.get("LD_PRELOAD")
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl, macOS: no such thresholds
        return False
    for name, (parameter, value) in SETTINGS.items():
        if not libc.mallopt(parameter, value):  # 1 on success
            return False
        os.environ[name] = str(value)
    return True
