"""Connecting to Ray: the cluster at NAS_RAY_ADDRESS (or the config's address), else a local one.

The embedded default starts Ray in this process's machine with the CPUs and GPUs it finds; a
cluster started with `ray start` (see `nas worker`) runs the same code.
"""

from __future__ import annotations

import logging
import os
import socket

import ray

from nas.allocator import keep_freed_memory
from nas.threads import prefer_passive_openmp

ADDRESS_VARIABLE = "NAS_RAY_ADDRESS"
TUNE_ENVIRONMENT = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no per-trial CSV/TensorBoard files
    "RAY_AIR_NEW_OUTPUT": "0",  # no experiment tables on stdout
}
"""Settings Tune reads from the environment when an experiment starts (a user's win)."""
logger = logging.getLogger(__name__)


class ClusterUnreachable(ConnectionError):
    """The Ray cluster named by NAS_RAY_ADDRESS or the config cannot be reached."""


def cluster_address(configured: str | None = None) -> str | None:
    """The address to join: NAS_RAY_ADDRESS wins over the config's; None starts Ray locally."""
    return os.environ.get(ADDRESS_VARIABLE) or configured or None


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (or NAS_RAY_ADDRESS), or start Ray locally.

    Either way Tune's settings (`TUNE_ENVIRONMENT`) are set for the experiments this
    process starts. Joins nothing when Ray is already initialised (a test's cluster, the
    runner actor).
    """
    for name, value in TUNE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if ray.is_initialized():
        return
    prefer_passive_openmp()  # a local Ray's workers inherit it (see nas.threads)
    keep_freed_memory()  # and the allocator's thresholds (see nas.allocator)
    address = cluster_address(address)
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=False)
        logger.info("started a local Ray with %s", ray.cluster_resources())
        return
    check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=False)
    except (ConnectionError, RuntimeError) as error:
        raise ClusterUnreachable(f"cannot join the Ray cluster at {address}: {error}") from None
    logger.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise `ClusterUnreachable` unless something listens at `address` ("host:port",
    optionally `ray://`); "auto" (the cluster on this machine) is left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachable(f"Ray address {address!r} ({ADDRESS_VARIABLE} or workers.address)"
                                 f" must be host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address}: {error}; start "
                                 f"one with `ray start --head` (see `nas worker`)") from None
