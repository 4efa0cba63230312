"""REST API latency with 100,000 stored architectures, and ingest while 20 clients follow SSE.

Against a real `nas serve` (uvicorn, `NAS_RUNNER=process`) on 127.0.0.1, over httpx, on a
throwaway SQLite file and (when NAS_TEST_POSTGRES_URL is set: `eval "$(bash .ci/postgres.sh)"`)
a throwaway PostgreSQL schema:

- p50 / p95 latency of `GET /api/v1/searches/{id}/architectures?sort=reward&limit=100`: the
  first page, and pages deep in the keyset (following `next_cursor` through the rows); of the
  same sorted by params; and of `GET /api/v1/searches/{id}` (status, counts, best so far).
- the ingest rate of scored architectures (`add_architectures` + `finish_architecture` by a
  writer process that owns the search, as the search loop does) alone, and while 20 clients
  (one process, httpx async) follow `GET /api/v1/searches/{id}/events`.

On PostgreSQL the filled table is vacuumed and analysed before it is read, as autovacuum does
soon after a large insert (else the latencies depend on when autovacuum happens to run).

    .venv/bin/python bench/api.py [--rows 100000] [--requests 200] [--deep-pages 200]
        [--ingest-seconds 10] [--clients 20] [--backends sqlite,postgresql] [--no-docs]

Prints one JSON object and rewrites the "REST API" section of docs/benchmarks.md.
Goal: p95 under 20 ms for a page of 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
from sqlalchemy import create_engine, insert, text

from nas.store import ArchitectureState, SearchStatus, Store
from nas.store.models import Architecture
from searchspace.spaces import SearchSpace

GOAL_MS = 20.0
CONFIG = {"name": "bench-api", "seed": 0, "strategy": {"name": "random"},
          "evaluator": {"name": "synthetic"}, "budget": {"architectures": 1_000_000},
          "samples_per_step": 4}
TOKEN = "bench-token"


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
            "samples": len(ordered)}


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    """A new empty database URL: a SQLite file, or a throwaway PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    server = os.environ["NAS_TEST_POSTGRES_URL"]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
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


def fill(url: str, rows: int) -> str:
    """A finished search holding `rows` scored architectures (bulk inserted); its id."""
    with Store(url) as store:
        search_id = store.create_search("bench-100k", CONFIG, seed=0).id
        store.set_status(search_id, SearchStatus.RUNNING)
        store.set_status(search_id, SearchStatus.FINISHED)
    space, rng = SearchSpace(), random.Random(0)
    genotypes = [space.sample(rng) for _ in range(256)]
    now = datetime.now(UTC)
    engine = create_engine(url)
    batch = 10_000
    with engine.begin() as connection:
        for start in range(0, rows, batch):
            values = []
            for index in range(start, min(rows, start + batch)):
                genotype = genotypes[index % len(genotypes)]
                failed = index % 50 == 0  # a few FAIL rows: no reward, no metrics
                values.append({
                    "search_id": search_id, "step": index // 4, "genotype": genotype.to_json(),
                    "genotype_id": genotype.id, "role": "candidate", "evaluator": "synthetic",
                    "state": ArchitectureState.FAIL if failed else ArchitectureState.COMPLETE,
                    "reward": None if failed else round(rng.random(), 6),
                    "accuracy": None if failed else rng.random(),
                    "params": None if failed else rng.randrange(10_000, 2_000_000),
                    "flops": None if failed else rng.randrange(1_000_000, 500_000_000),
                    "latency_ms": None, "train_seconds": 0.01, "metrics": None,
                    "error": "synthetic failure" if failed else None,
                    "created_at": now, "finished_at": now, "parent_id": None,
                })
            connection.execute(insert(Architecture), values)
    engine.dispose()
    if url.startswith("postgresql"):  # what autovacuum does within a minute or so of the insert
        vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
        with vacuum.connect() as connection:
            connection.execute(text("VACUUM ANALYZE architectures"))
        vacuum.dispose()
    return search_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(url: str, home: Path) -> Iterator[str]:
    """A real `nas serve` on 127.0.0.1 (process runner, migrations done); its base URL."""
    port = free_port()
    env = os.environ | {"NAS_DATABASE_URL": url, "NAS_HOME": str(home), "NAS_RUNNER": "process",
                        "NAS_API_TOKEN": TOKEN, "OMP_NUM_THREADS": "1", "NAS_THREADS": "1"}
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "nas"), "serve", "--port", str(port), "--no-migrate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nas serve did not start: {(home / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def timed(client: httpx.Client, path: str, **params) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def latencies(base: str, search_id: str, requests: int, deep_pages: int) -> dict:
    results = {}
    pages = f"/api/v1/searches/{search_id}/architectures"
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(20):  # warm up connections, caches and the planner
            timed(client, pages, sort="reward", limit=100)
            timed(client, f"/api/v1/searches/{search_id}")
        for name, sort in (("page_reward_first", "reward"), ("page_params_first", "params")):
            results[name] = percentiles([timed(client, pages, sort=sort, limit=100)[0]
                                         for _ in range(requests)])
        for name, sort in (("page_reward_deep", "reward"), ("page_params_deep", "params")):
            walk, cursor = [], None
            for _ in range(deep_pages):
                params = {"sort": sort, "limit": 100} | ({"cursor": cursor} if cursor else {})
                seconds, body = timed(client, pages, **params)
                walk.append(seconds)
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            results[name] = percentiles(walk)
        results["search"] = percentiles([timed(client, f"/api/v1/searches/{search_id}")[0]
                                         for _ in range(requests)])
        body = client.get(f"/api/v1/searches/{search_id}").json()
        results["search_architectures"] = body["architectures"]
    return results


def write_scored(url: str, seconds: float, clients: int, pipe) -> None:
    """The writer process: create a search and own it (running, heartbeat fresh: the server
    leaves it alone), send its id, and on "go" record scored architectures, 4 per step, for
    `seconds`; send (architectures, seconds) and end the search (its streams end)."""
    space, rng = SearchSpace(), random.Random(1)
    with Store(url) as store:
        search_id = store.create_search(f"bench-ingest-{clients}", CONFIG, seed=0).id
        lease = store.claim_search(search_id, f"bench-{os.getpid()}", stale_after=30)
        owned = store.fenced(lease)
        pipe.send(search_id)
        assert pipe.recv() == "go"
        written, step, started = 0, 0, time.perf_counter()
        last_beat = started
        while time.perf_counter() - started < seconds:
            ids = owned.add_architectures(search_id, step, [space.sample(rng) for _ in range(4)],
                                          "synthetic")
            for architecture_id in ids:
                owned.finish_architecture(architecture_id, state=ArchitectureState.COMPLETE,
                                          reward=rng.random(), accuracy=rng.random(),
                                          params=rng.randrange(10_000, 2_000_000))
            written, step = written + len(ids), step + 1
            if time.perf_counter() - last_beat > 1:
                owned.heartbeat()
                last_beat = time.perf_counter()
        elapsed = time.perf_counter() - started
        owned.set_status(search_id, SearchStatus.FINISHED)
        owned.release_search()
    pipe.send((written, elapsed))


async def follow(base: str, search_id: str, clients: int, ready: asyncio.Event) -> list[int]:
    """`clients` SSE followers of the search until its `end` event; the events each got."""
    counts = [0] * clients
    connected = 0

    async def one(index: int, client: httpx.AsyncClient) -> None:
        nonlocal connected
        async with client.stream("GET", f"/api/v1/searches/{search_id}/events") as stream:
            connected += 1
            if connected == clients:
                ready.set()
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    counts[index] += 1
                    if line == "event: end":
                        return

    limits = httpx.Limits(max_connections=clients + 5)
    async with httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as client:
        await asyncio.gather(*(one(index, client) for index in range(clients)))
    return counts


def followers_process(base: str, search_id: str, clients: int, pipe) -> None:
    async def main() -> list[int]:
        ready = asyncio.Event()
        task = asyncio.create_task(follow(base, search_id, clients, ready))
        await ready.wait()
        pipe.send("ready")
        return await task

    pipe.send(asyncio.run(main()))


def ingest(url: str, base: str, seconds: float, clients: int) -> dict:
    """Scored architectures per second written while `clients` follow the search by SSE."""
    context = multiprocessing.get_context("spawn")
    to_writer, writer_end = context.Pipe()
    writer = context.Process(target=write_scored, args=(url, seconds, clients, writer_end))
    writer.start()
    if not to_writer.poll(120):
        raise RuntimeError("the writer did not start")
    search_id = to_writer.recv()
    followers = from_followers = None
    if clients:
        from_followers, followers_end = context.Pipe()
        followers = context.Process(target=followers_process,
                                    args=(base, search_id, clients, followers_end))
        followers.start()
        if not (from_followers.poll(120) and from_followers.recv() == "ready"):
            raise RuntimeError("the SSE clients did not connect")
    to_writer.send("go")
    if not to_writer.poll(seconds + 120):
        raise RuntimeError("the writer did not finish")
    written, elapsed = to_writer.recv()
    writer.join()
    report = {"clients": clients, "architectures": written,
              "per_second": round(written / elapsed, 1)}
    if followers is not None:
        if not from_followers.poll(60):
            raise RuntimeError("the SSE clients did not see the end of the search")
        report["events_per_client_min"] = min(from_followers.recv())
        followers.join()
    return report


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="nas-bench-api-") as folder, \
            database(backend, Path(folder)) as url:
        home = Path(folder) / "home"
        home.mkdir()
        started = time.perf_counter()
        search_id = fill(url, args.rows)
        fill_seconds = time.perf_counter() - started
        print(f"{backend}: {args.rows} rows in {fill_seconds:.1f} s", file=sys.stderr, flush=True)
        with serving(url, home) as base:
            result = {"backend": backend, "rows": args.rows,
                      "fill_seconds": round(fill_seconds, 1),
                      "latency": latencies(base, search_id, args.requests, args.deep_pages)}
            print(f"{backend}: {json.dumps(result['latency'])}", file=sys.stderr, flush=True)
            result["ingest"] = [ingest(url, base, args.ingest_seconds, clients)
                                for clients in (0, args.clients)]
            print(f"{backend}: {json.dumps(result['ingest'])}", file=sys.stderr, flush=True)
    return result


def render(report: dict) -> str:
    rows = []
    for result in report["results"]:
        latency = result["latency"]
        for key, label in (("page_reward_first", "page of 100 by reward, first"),
                           ("page_reward_deep", "page of 100 by reward, keyset walk"),
                           ("page_params_first", "page of 100 by params, first"),
                           ("page_params_deep", "page of 100 by params, keyset walk"),
                           ("search", "GET /searches/{id}")):
            rows.append([result["backend"], label, latency[key]["p50_ms"],
                         latency[key]["p95_ms"], latency[key]["samples"]])
    ingest_rows = []
    for result in report["results"]:
        alone, followed = result["ingest"]
        ingest_rows.append([result["backend"], alone["per_second"], followed["per_second"],
                            followed["clients"], followed.get("events_per_client_min", "")])
    worst = max(result["latency"][key]["p95_ms"] for result in report["results"]
                for key in ("page_reward_first", "page_reward_deep"))
    verdict = "met" if worst < GOAL_MS else "NOT met"
    return "\n".join([
        f"Run on {report['date']} with `{report['command']}` ({report['seconds']:.0f} s in all), "
        f"{report['rows']:,} architectures in one search, a real `nas serve` on 127.0.0.1 "
        f"(`NAS_RUNNER=process`), httpx, one request at a time; PostgreSQL's table vacuumed "
        f"and analysed after the fill, as autovacuum would. The machine is shared "
        f"({report['machine']['cpu_count']} cores; load average "
        f"{report['load_before']} before, {report['load_after']} after): latencies include "
        f"the others' load.",
        "",
        f"Goal: p95 under {GOAL_MS:g} ms for a page of 100 by reward: **{verdict}** (worst p95 "
        f"{worst:.1f} ms).",
        "",
        markdown_table(["database", "request", "p50 ms", "p95 ms", "requests"], rows,
                       align="llrrr"),
        "",
        "Ingest: scored architectures per second written by one process that owns the search "
        "(`add_architectures` + `finish_architecture`, 4 per step, each its own transaction "
        "with its SSE event), alone and while SSE clients follow the search:",
        "",
        markdown_table(["database", "alone / s", "followed / s", "SSE clients",
                        "events each (min)"], ingest_rows, align="lrrrr"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deep-pages", type=int, default=200)
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    backends = [name for name in args.backends.split(",") if name]
    if "postgresql" in backends and not os.environ.get("NAS_TEST_POSTGRES_URL"):
        print("postgresql skipped: NAS_TEST_POSTGRES_URL is not set", file=sys.stderr)
        backends.remove("postgresql")
    started = time.perf_counter()
    load_before = load_average()
    results = [run_backend(backend, args) for backend in backends]
    report = {"benchmark": "api", "date": today(), "command": command_line(),
              "machine": machine_info(), "load_before": load_before,
              "load_after": load_average(), "rows": args.rows,
              "seconds": round(time.perf_counter() - started, 1), "goal_p95_ms": GOAL_MS,
              "results": results}
    print(json.dumps(report))
    if not args.no_docs:
        write_section("REST API (bench/api.py)", render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
