"""Standalone candidates trained in a child process that can be stopped: time and memory limits.

A candidate that hangs inside a native kernel cannot be interrupted from a Python thread, and a
native crash (segfault, abort, the kernel's OOM killer) takes its whole process down. So when a
search sets `evaluator.timeout_seconds` or `evaluator.memory_limit_mb`, each candidate trains
in a worker process (started with `spawn`, reused from candidate to candidate). The parent
waits for the worker's messages, never for a heartbeat: liveness is progress (one message per
epoch, then the result). A worker with no result by the deadline is killed and the candidate
recorded FAIL ("timeout ..."); a worker that dies is recorded FAIL with its signal or exit
status; the next candidate gets a fresh worker. `memory_limit_mb` caps the worker's address
space above what it holds once started (RLIMIT_AS), so an allocation past it fails inside
torch and the candidate ends FAIL ("out of memory ...").
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import signal
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.states import ArchitectureState
from nas.train import EpochCallback, EpochMetrics
from nas.without_triton import hide_triton_without_gpu
from searchspace.genotype import Genotype

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 120.0  # a worker that is not ready by then is reported as failed


class CandidateProcess:
    """One worker process that trains standalone candidates, each under the config's limits."""

    def __init__(self, config: SearchConfig, data: DataSplits, weights_dir: Path | None,
                 device: torch.device | None = None) -> None:
        self.config, self.data, self.weights_dir, self.device = config, data, weights_dir, device
        self.timeout = config.evaluator.timeout_seconds
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None

    def evaluate_one(self, genotype: Genotype, on_epoch: EpochCallback | None = None):
        """Train `genotype` in the worker; FAIL on a timeout, a dead worker or no memory."""
        from nas.evaluators import Evaluation

        try:
            connection = self._ready()
        except WorkerLost as error:
            return Evaluation(state=ArchitectureState.FAIL,
                              error=f"the candidate's worker process {error}")
        connection.send(genotype.to_json())
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        epochs_done = 0
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not connection.poll(wait):
                self.close()
                return Evaluation(state=ArchitectureState.FAIL, error=(
                    f"timeout: no result within {self.timeout:g} s (evaluator.timeout_seconds);"
                    f" {epochs_done} of {self.config.evaluator.epochs} epochs done"))
            try:
                kind, payload = connection.recv()
            except (EOFError, OSError):
                return Evaluation(state=ArchitectureState.FAIL,
                                  error=f"the candidate's worker process {self._died()} after "
                                  f"{epochs_done} epochs")
            if kind == "epoch":
                epochs_done = payload["epoch"]
                if on_epoch is not None:
                    on_epoch(EpochMetrics(**payload))
            else:
                return Evaluation(**payload)

    def close(self) -> None:
        """Stop the worker (killed: it may be stuck in native code)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(timeout=10)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def _ready(self) -> Connection:
        if self._process is not None and self._process.is_alive():
            return self._connection
        self.close()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, name="nas-candidate", daemon=True,
            args=(child, self.config.model_dump(mode="json"), self.data,
                  str(self.weights_dir) if self.weights_dir else None,
                  str(self.device) if self.device else None, torch.get_num_threads()))
        self._process.start()
        child.close()
        self._connection = parent
        if not parent.poll(STARTUP_SECONDS):
            self.close()
            raise WorkerLost(f"did not start within {STARTUP_SECONDS:g} s")
        try:
            parent.recv()  # "ready"
        except (EOFError, OSError):
            raise WorkerLost(self._died() + " while starting") from None
        return parent

    def _died(self) -> str:
        process = self._process
        if process is not None:
            process.join(timeout=10)
        code = None if process is None else process.exitcode
        self.close()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" \
                if -code == signal.SIGKILL else ""
            return f"died from {name}{hint}"
        return f"exited with status {code}"


class WorkerLost(RuntimeError):
    """The worker process could not be started or died while starting."""


def _serve(connection: Connection, config: dict[str, Any], data: DataSplits,
           weights_dir: str | None, device: str | None, threads: int) -> None:
    """The worker: train each genotype received, send its epochs and its evaluation."""
    from nas.evaluators import StandaloneEvaluator

    hide_triton_without_gpu()
    torch.set_num_threads(threads)
    search_config = SearchConfig.model_validate(config)
    evaluator = StandaloneEvaluator(
        search_config, data, Path(weights_dir) if weights_dir else None,
        device=torch.device(device) if device else None)
    _limit_memory(search_config.evaluator.memory_limit_mb)
    connection.send(("ready", None))
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        while True:
            genotype = Genotype.from_json(connection.recv())
            evaluation = evaluator.train_one(
                genotype, on_epoch=lambda metrics: connection.send(("epoch", asdict(metrics))))
            connection.send(("evaluation", evaluation.to_json()))


def _limit_memory(megabytes: int | None) -> None:
    """Cap this process's address space at its current size plus `megabytes`."""
    if megabytes is None:
        return
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    limit = pages * resource.getpagesize() + megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
