"""How many threads this process computes with, and OpenMP threads that sleep instead of spin.

Thread count: `NAS_THREADS`, else `OMP_NUM_THREADS`, else the CPUs this process may really use
(its CPU affinity and its cgroup's CPU quota, not `os.cpu_count()`). OpenMP's worker threads
wait passively (`OMP_WAIT_POLICY=PASSIVE`) unless the user chose a policy: a spinning thread
burns a core that another process on a shared machine needs. OpenMP reads the policy when
torch loads, so `prefer_passive_openmp` runs before anything imports torch (the CLI's entry),
and Ray workers get it through their environment (`workers.cluster`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

THREADS_VARIABLE = "NAS_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def prefer_passive_openmp() -> None:
    """Make OpenMP threads sleep while idle, unless `OMP_WAIT_POLICY` is set already."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


MAX_THREADS = 1024  # torch allocates per thread: 100,000 ran out of memory in a migration


def thread_count() -> int:
    """`NAS_THREADS`, else `OMP_NUM_THREADS`, else `available_cpus()`."""
    for variable in (THREADS_VARIABLE, "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        try:
            count = int(value.split(",")[0])  # OMP_NUM_THREADS may list nesting levels
        except ValueError:
            raise ValueError(f"{variable}={value!r} must be a whole number of threads") from None
        if not 1 <= count <= MAX_THREADS:
            raise ValueError(f"{variable}={value!r} must be between 1 and {MAX_THREADS}")
        return count
    return available_cpus()


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus or 1, max(1, math.ceil(quota)))
    return max(1, cpus or 1)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs granted by the cgroup's quota (v2 `cpu.max`, or v1 `cfs_quota_us/cfs_period_us`);
    None when there is no quota or no cgroup file to read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
