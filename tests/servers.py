"""Test helpers for the service: a real `nas serve` process (a free port of 127.0.0.1, its own
NAS_HOME), and waiting for a search to reach a status through the API."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import create_engine, text

TOKEN = "process-token"
NAS = [sys.executable, "-c", "from nas.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, tmp_path, *options: str):
        self.options = options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "NAS_HOME": str(tmp_path / "home"), "NAS_THREADS": "1",
                    "NAS_API_TOKEN": TOKEN, "NAS_DATABASE_URL": "", "NAS_RUNNER": "process",
                    "NAS_MAX_RUNNING_SEARCHES": "2", "NAS_HEARTBEAT_STALE_SECONDS": "6"}
        self.log = tmp_path / "server.log"
        self.process = None

    def start(self):
        with open(self.log, "ab") as log:
            command = [*NAS, "serve", "--port", str(self.port), *self.options]
            self.process = subprocess.Popen(command, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.2)
        raise AssertionError("the server did not become ready")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)




def stop_runs_of(home) -> None:
    """Kill the `nas resume` runs launched with NAS_HOME `home` (each with its process group):
    a server's runs outlive it by design, and a test's must not take the CPU from the tests
    after it."""
    wanted = f"NAS_HOME={home}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if wanted not in environ.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if b"resume" not in cmdline.read().split(b"\0"):
                    continue
            os.killpg(int(entry.name), signal.SIGKILL)  # started in a session of its own
        except OSError:  # ProcessLookupError among them
            continue  # gone, or not ours to read


def wait_for(client, search_id, statuses=("finished",), timeout=120):
    """The search (as `GET /api/v1/searches/{id}` answers) once its status is in `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/searches/{search_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"search {search_id} is {body['status']}, not {statuses}, after "
                         f"{timeout} s")


@contextmanager
def throwaway_schema(server: str) -> Iterator[str]:
    """A URL of the PostgreSQL database at `server` that works in a new schema of its own,
    dropped afterwards (the shared database's own tables are never touched)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
