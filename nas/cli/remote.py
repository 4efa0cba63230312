"""`nas --server URL` (or `NAS_SERVER`): the search commands talk to a deployed service over
its REST API with `NAS_API_TOKEN`, so a user needs no database credentials (as `nnictl` does
for NNI). An HTTP error is a user error: its `detail` becomes the one line of `nas`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from nas.service.errors import Unavailable, UserError
from nas.store import ArchitectureRecord, ArchitectureRole, ArchitectureState, SearchStatus
from searchspace.genotype import Genotype

_server: str | None = None
SEARCH_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
STREAM_SILENCE_SECONDS = 60.0  # the server pings every 15 s


def configure(server: str | None) -> None:
    """Set by the `--server` option (or `NAS_SERVER`) before a command runs."""
    global _server
    _server = server.rstrip("/") if server else None


def server() -> str | None:
    return _server


class RemoteError(UserError):
    """The server refused the request; `status` is its HTTP status."""


class Remote:
    """The service's REST API, one call per thing a command needs."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        token = token if token is not None else os.environ.get("NAS_API_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        try:
            self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)
        except httpx.InvalidURL as error:
            raise UserError(f"invalid server URL {url!r}: {error}") from None

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: object) -> None:
        self.http.close()
        if isinstance(error, (KeyError, TypeError, ValueError)) and not isinstance(
                error, UserError):  # an answer of another shape than the API's
            raise RemoteError(f"{self.url}: an answer this client cannot read (is it the "
                              f"nas-service API, of this version?): {type(error).__name__}: "
                              f"{error}") from None

    def request(self, method: str, path: str, *, expect: str = "json",
                **options: Any) -> httpx.Response:
        """The server's answer to `method path`: a 2xx (204 when `expect` is "nothing"),
        JSON when `expect` is "json"; `RemoteError` for anything else."""
        try:
            response = self.http.request(method, path, **options)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise Unavailable(f"cannot reach the server at {self.url}: {error}") from None
        if response.status_code >= 400:
            raise RemoteError(f"{self.url}: {_detail(response)}")
        self._check(response, f"{method} {path}", expect)
        return response

    def _check(self, response: httpx.Response, what: str, expect: str) -> None:
        """`RemoteError` unless `response` is the 2xx of the kind `expect` names ("json",
        "bytes", "nothing": a 204, "events": an event stream)."""
        if response.is_redirect:
            raise RemoteError(f"{self.url}: answered {response.status_code}, a redirect to "
                              f"{response.headers.get('location', '?')}: pass that address "
                              f"as --server")
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        wanted = {"json": "application/json", "events": "text/event-stream"}.get(expect)
        unexpected = (not response.is_success
                      or (expect == "nothing" and response.status_code != 204)
                      or (wanted is not None and kind != wanted))
        if unexpected:
            raise RemoteError(f"{self.url}: answered {response.status_code} "
                              f"{kind or 'without a content type'} to {what}, not "
                              f"the nas-service API's answer (a wrong URL, or a proxy in "
                              f"between?)")

    @staticmethod
    def _search_path(search_id: str, *rest: str) -> str:
        """The API path of a search (an id is letters, digits, `_` and `-`: one that is not
        would have been read as another path, `x/../ID` deleting search ID)."""
        if not SEARCH_ID.fullmatch(search_id):
            raise RemoteError(f"unknown search id {search_id[:100]!r}")
        return "/".join(("/api/v1/searches", search_id, *rest))

    def searches(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/searches", params={"limit": limit}).json()["items"]

    def search(self, search_id: str) -> dict[str, Any]:
        return self.request("GET", self._search_path(search_id)).json()

    def top(self, search_id: str, limit: int) -> list[ArchitectureRecord]:
        rows = self.request("GET", self._search_path(search_id, "top"),
                            params={"limit": limit}).json()
        return [architecture_record(row) for row in rows]

    def zoo_runs(self, search_id: str) -> list[dict[str, Any]]:
        """The search's zoo baselines, best reward first, as `nas show --json` prints them."""
        rows = self.request("GET", self._search_path(search_id, "architectures"),
                            params={"role": "zoo", "sort": "reward", "limit": 100}).json()
        return [baseline_row(architecture_record(row)) for row in rows["items"]]

    def baselines(self, search_id: str, archs: list[str]) -> list[dict[str, Any]]:
        """Queue zoo baselines beside a search; the server trains them in the background."""
        body = {"archs": archs} if archs else {}
        rows = self.request("POST", self._search_path(search_id, "baselines"),
                            json=body).json()
        return [baseline_row(architecture_record(row)) for row in rows["architectures"]]

    def launch(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/searches", json=config).json()

    def act(self, search_id: str, action: str) -> dict[str, Any]:
        return self.request("POST", self._search_path(search_id, action)).json()

    def delete(self, search_id: str) -> None:
        self.request("DELETE", self._search_path(search_id), expect="nothing")

    def latest_finished(self) -> str:
        params = {"status": str(SearchStatus.FINISHED), "limit": 1}
        found = self.request("GET", "/api/v1/searches", params=params).json()["items"]
        if not found:
            raise RemoteError(f"{self.url}: no finished search; pass --search ID")
        return found[0]["id"]

    def export(self, architecture_id: int, fmt: str, stem: str | None) -> tuple[str, bytes]:
        params = {"format": fmt} | ({"stem": stem} if stem else {})
        response = self.request("GET", f"/api/v1/architectures/{architecture_id}/export",
                                expect="bytes", params=params, timeout=600)
        disposition = response.headers.get("content-disposition", "")
        filename = disposition.partition('filename="')[2].rstrip('"') or "export"
        return filename, response.content

    def events(self, search_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The search's events as they come, until its `end`; `Unavailable` when the stream
        stops before that (the server went away), `RemoteError` when it is no event stream."""
        kind, path = "message", self._search_path(search_id, "events")
        try:
            # the server pings every 15 s: a minute of silence is a frozen server, or a
            # connection that died without a word
            with self.http.stream("GET", path, timeout=httpx.Timeout(
                    STREAM_SILENCE_SECONDS, connect=10)) as stream:
                if stream.status_code >= 400:
                    stream.read()
                    raise RemoteError(f"{self.url}: {_detail(stream)}")
                self._check(stream, f"GET {path}", "events")
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        yield kind, json.loads(line[6:])
                        if kind == "end":
                            return
        except httpx.HTTPError as error:
            raise Unavailable(f"lost the server at {self.url}: {error}") from None
        raise Unavailable(f"lost the server at {self.url}: the event stream of search "
                          f"{search_id} stopped before the search ended (`nas --server "
                          f"{self.url} show {search_id}` tells where it stands)")


def baseline_row(record: ArchitectureRecord) -> dict[str, Any]:
    from nas.service.baselines import as_dict  # loads torch: only when asked

    return as_dict(record)


def architecture_record(row: dict[str, Any]) -> ArchitectureRecord:
    """An architecture as the API returns it, as the store's record (for the same printing)."""
    genotype = Genotype.from_dict(row["genotype"])
    return ArchitectureRecord(
        id=row["id"], search_id=row["search_id"], step=row["step"],
        genotype_json=genotype.to_json(), genotype_id=row["genotype_id"],
        state=ArchitectureState(row["state"]), role=ArchitectureRole(row["role"]), parent_id=None,
        evaluator=row["evaluator"], reward=row["reward"], accuracy=row["accuracy"],
        params=row["params"], flops=row["flops"], latency_ms=row["latency_ms"],
        train_seconds=row["train_seconds"], metrics=row.get("metrics"), error=row["error"],
        op_set_version=row.get("op_set_version", 1),
        created_at=datetime.fromisoformat(row["created_at"]),
        finished_at=datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors: field: message; ...
        detail = "; ".join(f"{'.'.join(str(part) for part in item.get('loc', [])[1:])}: "
                           f"{item.get('msg')}" for item in detail)
    return " ".join(str(detail or response.reason_phrase).split())
