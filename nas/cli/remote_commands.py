"""What the search commands do with `--server URL`: the same output, from the REST API."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.cli.app import console
from nas.cli.remote import Remote, server
from nas.metrics import Metrics
from nas.states import ArchitectureRole, SearchStatus
from nas.store import ArchitectureRecord


def remote() -> Remote:
    url = server()
    assert url is not None, "only called with --server"
    return Remote(url)


def summary(search: dict[str, Any], top: list | None = None) -> dict[str, Any]:
    """The keys `nas search --json` prints locally, from the API's search."""
    best = top[0] if top else None
    beat = search["heartbeat_at"]
    age = None if beat is None else (datetime.now(UTC) - datetime.fromisoformat(beat)
                                     ).total_seconds()
    return {
        "search_id": search["id"], "name": search["name"], "status": search["status"],
        "stale": search["stale"], "owner": search["owner"], "heartbeat_at": beat,
        "heartbeat_age_seconds": None if age is None else round(age, 1),
        "architectures": search["architectures"],
        "best_reward": best.reward if best else None,
        "best_params": best.params if best else None,
        "best_multiply_adds": best.flops if best else None,
        "best_latency_ms": best.latency_ms if best else None,
        "best_genotype": best.genotype.to_dict() if best else None,
        "ranking": ranking_of(best) if best else None, "error": search["error"],
        "created_at": search["created_at"],
    }


def ranking_of(architecture: ArchitectureRecord) -> dict[str, Any] | None:
    """ENAS: the agreement of the search's scores with the whole split's."""
    ranking = Metrics.of(architecture.metrics).ranking
    return None if ranking is None else ranking.model_dump()


def follow(client: Remote, search_id: str, quiet: bool) -> dict[str, Any]:
    """Show the search's progress from its event stream until it ends; the search."""
    total = client.search(search_id)["budget"]["architectures"]
    with Progress(TextColumn("[bold]search[/] {task.fields[search_id]}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[state]}"),
                  console=console, disable=quiet) as bar:
        task = bar.add_task("search", total=total, search_id=search_id,
                            state=str(SearchStatus.QUEUED))
        scored = 0
        for kind, data in client.events(search_id):
            role = data.get("data", {}).get("role") if kind == "architecture" else None
            if role == ArchitectureRole.CANDIDATE:
                scored += 1
                bar.update(task, completed=scored)
            elif kind == "status":
                bar.update(task, state=data["status"])
    return client.search(search_id)


def write_export(filename: str, content: bytes, output: Path) -> list[Path]:
    """The downloaded export at `output`; a zip's files (named by `output`'s stem) beside it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if not filename.endswith(".zip"):
        output.write_bytes(content)
        return [output]
    written = []
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for member in archive.namelist():
            target = output.parent / Path(member).name  # no folders: nothing escapes
            target.write_bytes(archive.read(member))
            written.append(target)
    return written


def print_json(value: Any) -> None:
    print(json.dumps(value))


def title(search: dict[str, Any]) -> str:
    return f"search [bold]{search['id']}[/] ({escape(search['name'])})"
