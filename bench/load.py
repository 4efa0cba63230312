"""Load on a real `nas serve` while a search writes: SSE followers and architecture pagers.

A real `nas serve` (uvicorn, `NAS_RUNNER=process`) on 127.0.0.1, once over a throwaway
PostgreSQL schema (when NAS_TEST_POSTGRES_URL is set: `eval "$(bash .ci/postgres.sh)"`) and once
over a SQLite file. A search
launched through the API writes all along (a synthetic evaluator: no training, so the
server, not the search, is what is loaded). For `--seconds`, from one client process (httpx
with asyncio, one event loop):

- `--followers` clients follow `GET /api/v1/searches/{id}/events` (SSE): the time to the
  first event of the stream, and each event's lag (received minus written; the server polls
  the event log every 0.5 s);
- `--pagers` clients page `GET /api/v1/searches/{id}/architectures?sort=reward&limit=50`
  through `next_cursor` (back to the first page after 10), waiting `--think` s between pages.

Before that, the pagers alone for `--baseline-seconds`: their latency then is the baseline
that the figures under the streams' load compare with (the machine may be shared).

Errors (any status but 200, any exception, a stream that ends before the search) must be 0.
The server's and the search process's CPU and memory are sampled from /proc every second,
and the client's own CPU is measured too: on a small machine it competes with the server.

    .venv/bin/python bench/load.py [--followers 50] [--pagers 20] [--seconds 60]
        [--think 0.2] [--baseline-seconds 15] [--backends postgresql,sqlite] [--no-docs]

Prints one JSON object and rewrites the "Load" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _common import (
    ROOT,
    command_line,
    load_average,
    machine_info,
    markdown_table,
    today,
    write_section,
)
from api import TOKEN, database, serving

TICKS = os.sysconf("SC_CLK_TCK")
PAGE, PAGES_PER_WALK = 50, 10
SEARCH = {"name": "bench-load", "seed": 0, "strategy": {"name": "random"},
          "evaluator": {"name": "synthetic", "synthetic_seconds": 0.05},
          "budget": {"architectures": 1_000_000}, "samples_per_step": 4}


def percentiles(seconds: list[float]) -> dict:
    """p50 / p95 / p99 in milliseconds (nearest rank) and the count."""
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "samples": 0}

    def rank(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 1)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99),
            "samples": len(ordered)}


def process_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident memory (bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


class Sampler:
    """CPU share and peak memory of the server and of the search process it started,
    sampled every second on a thread of the client."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.samples: dict[str, list[tuple[float, float, int]]] = {"server": [], "search": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            searches = children_of(self.server_pid)
            for name, pids in (("server", [self.server_pid]), ("search", searches)):
                try:
                    usage = [process_usage(pid) for pid in pids]
                except OSError:
                    continue
                if usage:
                    self.samples[name].append((now, sum(cpu for cpu, _ in usage),
                                               sum(rss for _, rss in usage)))
            self._stop.wait(1.0)

    def summary(self, name: str) -> dict:
        samples = self.samples[name]
        if len(samples) < 2:
            return {}
        shares = [(later[1] - earlier[1]) / (later[0] - earlier[0]) * 100
                  for earlier, later in zip(samples, samples[1:], strict=False)]
        wall = samples[-1][0] - samples[0][0]
        return {"cpu_percent_mean": round((samples[-1][1] - samples[0][1]) / wall * 100, 1),
                "cpu_percent_max": round(max(shares), 1),
                "rss_mb_start": round(samples[0][2] / 2**20, 1),
                "rss_mb_max": round(max(sample[2] for sample in samples) / 2**20, 1)}


class Tally:
    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.pages: list[float] = []
        self.first_event: list[float] = []
        self.lags: list[float] = []
        self.events: list[int] = []


def written_at(data: str) -> float | None:
    """The POSIX time an event was stored, from its `data:` JSON (None for status events)."""
    created = json.loads(data).get("created_at")
    if created is None:
        return None
    moment = datetime.fromisoformat(created)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def follow(client: httpx.AsyncClient, search_id: str, tally: Tally,
                 until: float) -> None:
    """One SSE follower until `until` (monotonic); a stream that ends before is an error."""
    received = 0
    started, connected_at = time.perf_counter(), time.time()
    try:
        async with client.stream("GET", f"/api/v1/searches/{search_id}/events") as stream:
            if stream.status_code != 200:
                tally.errors[f"events HTTP {stream.status_code}"] += 1
                return
            lines = stream.aiter_lines()
            while True:
                timeout = until - time.monotonic()
                if timeout <= 0:
                    return
                try:
                    line = await asyncio.wait_for(anext(lines), timeout)
                except TimeoutError:
                    return
                except StopAsyncIteration:
                    tally.errors["event stream ended early"] += 1
                    return
                if line.startswith("event: "):
                    if received == 0:
                        tally.first_event.append(time.perf_counter() - started)
                    received += 1
                elif line.startswith("data: ") and (stored := written_at(line[6:])) and \
                        stored >= connected_at:  # live, not the log's history replayed
                    tally.lags.append(time.time() - stored)
    except httpx.HTTPError as error:
        tally.errors[f"events {type(error).__name__}"] += 1
    finally:
        tally.events.append(received)


async def page(client: httpx.AsyncClient, search_id: str, tally: Tally, until: float,
               think: float) -> None:
    """One pager: walk the architectures by reward, `PAGES_PER_WALK` pages, then again."""
    cursor, walked = None, 0
    path = f"/api/v1/searches/{search_id}/architectures"
    while time.monotonic() < until:
        params = {"sort": "reward", "limit": PAGE} | ({"cursor": cursor} if cursor else {})
        started = time.perf_counter()
        try:
            response = await client.get(path, params=params)
        except httpx.HTTPError as error:
            tally.errors[f"page {type(error).__name__}"] += 1
        else:
            tally.pages.append(time.perf_counter() - started)
            if response.status_code != 200:
                tally.errors[f"page HTTP {response.status_code}"] += 1
                cursor = None
            else:
                walked += 1
                cursor = response.json()["next_cursor"]
                if walked % PAGES_PER_WALK == 0:
                    cursor = None
        await asyncio.sleep(think)


async def drive(base: str, search_id: str, args: argparse.Namespace, followers: int,
                seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    # httpx's default idle expiry (5 s): shorter than the server's keep-alive (`nas serve
    # --keep-alive`, 75 s); at uvicorn's default, also 5 s, requests failed with ReadError.
    limits = httpx.Limits(max_connections=followers + args.pagers + 5)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(
            *(follow(client, search_id, tally, until) for _ in range(followers)),
            *(page(client, search_id, tally, until, args.think) for _ in range(args.pagers)))
    return tally


def launched_search(base: str) -> str:
    """A search launched through the API, once it has written its first rows."""
    with httpx.Client(base_url=base, timeout=30) as client:
        response = client.post("/api/v1/searches", json=SEARCH,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        response.raise_for_status()
        search_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/searches/{search_id}").json()["architectures"] < 100:
            if time.monotonic() > deadline:
                raise RuntimeError("the search did not start writing")
            time.sleep(0.5)
    return search_id


def server_pid(base: str) -> int:
    """The pid of the `nas serve` listening at `base` (the only child of this process)."""
    port = base.rsplit(":", 1)[1]
    for pid in children_of(os.getpid()):
        if f"--port\0{port}\0".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError(f"no `nas serve` on port {port} among this process's children")


def cancel(base: str, search_id: str) -> dict:
    """Cancel the search through the API; the search once its run stopped."""
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post(f"/api/v1/searches/{search_id}/cancel",
                    headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        deadline = time.monotonic() + 60
        while (body := client.get(f"/api/v1/searches/{search_id}").json())["status"] != \
                "cancelled" and time.monotonic() < deadline:
            time.sleep(0.5)
        return body


def run(args: argparse.Namespace, backend: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="nas-bench-load-") as folder, \
            database(backend, Path(folder)) as url:
        home = Path(folder) / "home"
        home.mkdir()
        migrated = subprocess.run(
            [str(Path(sys.executable).parent / "nas"), "db", "upgrade"], cwd=ROOT,
            env=os.environ | {"NAS_DATABASE_URL": url}, capture_output=True, text=True,
            timeout=120)
        if migrated.returncode != 0:
            raise RuntimeError(f"nas db upgrade failed: {migrated.stderr}")
        with serving(url, home) as base:
            search_id = launched_search(base)
            # the same pagers without the streams first: the machine's load at this time
            baseline = asyncio.run(drive(base, search_id, args, 0, args.baseline_seconds))
            with httpx.Client(base_url=base, timeout=30) as client:
                rows_before = client.get(f"/api/v1/searches/{search_id}").json()["architectures"]
            client_cpu = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            with Sampler(server_pid(base)) as sampler:
                tally = asyncio.run(drive(base, search_id, args, args.followers, args.seconds))
            wall = time.monotonic() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
            final = cancel(base, search_id)
    client_seconds = (used.ru_utime - client_cpu.ru_utime) + (used.ru_stime - client_cpu.ru_stime)
    return {
        "backend": backend, "followers": args.followers, "pagers": args.pagers,
        "seconds": round(wall, 1), "think_s": args.think,
        "errors": sum(tally.errors.values()) + sum(baseline.errors.values()),
        "error_kinds": dict(tally.errors + baseline.errors),
        "baseline_pages": percentiles(baseline.pages) | {"seconds": args.baseline_seconds},
        "pages": percentiles(tally.pages) | {
            "per_second": round(len(tally.pages) / wall, 1)},
        "first_event": percentiles(tally.first_event),
        "event_lag": percentiles(tally.lags),
        "events_per_follower_min": min(tally.events, default=0),
        "architectures_written": final["architectures"] - rows_before,
        "server": sampler.summary("server"), "search_process": sampler.summary("search"),
        "client": {"cpu_percent_mean": round(client_seconds / wall * 100, 1),
                   "rss_mb_max": round(used.ru_maxrss / 1024, 1)},
    }


def ratio_text(ratio: float | None) -> str:
    return "" if ratio is None else f" (page p50 x{ratio:.1f} the pagers' alone)"


def render(report: dict) -> str:
    results = report["results"]
    first = results[0]
    rows, usage, notes = [], [], []
    for result in results:
        backend = result["backend"]
        for label, key in ((f"page of {PAGE} by reward, pagers alone (baseline)",
                            "baseline_pages"),
                           (f"page of {PAGE} by reward, with the streams", "pages"),
                           ("SSE: connect to first event", "first_event"),
                           ("SSE: event lag, stored to received (live)", "event_lag")):
            figures = result[key]
            rows.append([backend, label, figures["p50_ms"], figures["p95_ms"],
                         figures["p99_ms"], figures["samples"]])
        for label, key in (("server (`nas serve`)", "server"),
                           ("search process (`nas resume`)", "search_process"),
                           ("load client (this script)", "client")):
            figures = result[key]
            usage.append([backend, label, figures.get("cpu_percent_mean", ""),
                          figures.get("cpu_percent_max", ""), figures.get("rss_mb_start", ""),
                          figures.get("rss_mb_max", "")])
        errors = f" {json.dumps(result['error_kinds'])}" if result["errors"] else ""
        ratio = (result["pages"]["p50_ms"] / result["baseline_pages"]["p50_ms"]
                 if result["baseline_pages"]["p50_ms"] else None)
        notes.append(f"- {backend}: errors **{result['errors']}**{errors}; "
                     f"{result['pages']['per_second']} pages/s{ratio_text(ratio)}; every "
                     f"follower received at least {result['events_per_follower_min']} events; "
                     f"{result['architectures_written']:,} architectures written in "
                     f"{result['seconds']:.0f} s; load average {result['load_before']} "
                     f"before, {result['load_after']} after.")
    return "\n".join([
        f"Run on {report['date']} with `{report['command']}`: a real `nas serve` on 127.0.0.1 "
        f"(`NAS_RUNNER=process`), a search launched through the API writing all along "
        f"(synthetic evaluator, {SEARCH['evaluator']['synthetic_seconds']:g} s a candidate: "
        f"the server is what is loaded, not training), and one client process (httpx + "
        f"asyncio, one event loop) holding {first['followers']} SSE streams of the search and "
        f"{first['pagers']} pagers ({first['think_s']:g} s between pages) for "
        f"{first['seconds']:.0f} s, per database. Target: 0 errors.",
        "",
        *notes,
        "",
        markdown_table(["database", "request", "p50 ms", "p95 ms", "p99 ms", "samples"], rows,
                       align="llrrrr"),
        "",
        "A stream first replays the search's event log, then follows it live; the lag is of "
        "the events stored after the stream connected, and includes the stream's poll of the "
        "event log (every 0.5 s). Each stream polls the store on its own (the search and its "
        "new events, every 0.5 s): 50 streams are 200 queries a second, which is what slows "
        "the pages here; one poller per search shared by its streams would make it 4.",
        "",
        markdown_table(["database", "process", "CPU % (mean)", "CPU % (max 1 s)",
                        "RSS MB (start)", "RSS MB (max)"], usage, align="llrrrr"),
        "",
        f"CPU % is of one core ({report['machine']['cpu_count'] * 100} % is every core of this "
        f"machine). The client runs on the same {report['machine']['cpu_count']} cores as the "
        f"server and takes its CPU from it; other work shared them too (the load averages "
        f"above), so the latencies include waiting for a core. The client's memory is mostly "
        f"torch, which `bench/_common.py` imports for the machine facts.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--pagers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=0.2)
    parser.add_argument("--baseline-seconds", type=float, default=15.0,
                        help="the pagers alone first, for this long")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if not (0 < args.seconds <= 600 and 0 <= args.baseline_seconds <= 600
            and 0 <= args.followers <= 500 and 0 <= args.pagers <= 500 and args.think >= 0):
        parser.error("expected 0 < --seconds <= 600, 0 <= --baseline-seconds <= 600, 0-500 "
                     "followers and pagers, --think >= 0")
    backends = [name for name in args.backends.split(",") if name]
    if unknown := set(backends) - {"postgresql", "sqlite"}:
        parser.error(f"--backends: unknown {sorted(unknown)}; expected postgresql, sqlite")
    if "postgresql" in backends and not os.environ.get("NAS_TEST_POSTGRES_URL"):
        print("postgresql skipped: NAS_TEST_POSTGRES_URL is not set", file=sys.stderr)
        backends.remove("postgresql")
    results = []
    for backend in backends:
        load_before = load_average()
        results.append(run(args, backend) | {"load_before": load_before,
                                             "load_after": load_average()})
    report = {"benchmark": "load", "date": today(), "command": command_line(),
              "machine": machine_info(), "results": results}
    print(json.dumps(report))
    if not args.no_docs and results:
        write_section("Load (bench/load.py)", render(report))
    return 0 if results and all(result["errors"] == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
