"""SIGTERM and SIGHUP (what `docker stop`, systemd and Kubernetes send) stop a search as Ctrl-C
does: `SearchInterrupted`, a `KeyboardInterrupt`, is raised in the main thread; the search
loop checkpoints, records status `interrupted` and releases the search. The exit status is
128 + the signal's number (130, 143, 129), as a shell reports a process killed by it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SearchInterrupted(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.reason = f"interrupted by {self.name}"
        super().__init__(self.reason)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextmanager
def interrupt_on_stop_signals() -> Iterator[None]:
    """Within the block, the first stop signal raises `SearchInterrupted`; later ones are
    ignored so that the checkpoint and the final status get written. Main thread only."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        raise SearchInterrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
