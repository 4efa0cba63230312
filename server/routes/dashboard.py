"""The dashboard: server-rendered pages (Jinja2, autoescaped) over the service layer, its
scripts and styles served from `server/static/` (no build step, no CDN).

`/` lists the searches and launches one from a YAML config; `/searches/{id}` charts and
tables a search's architectures (live through the API's Server-Sent Events);
`/architectures/{id}` draws its cells (`searchspace.drawing`), metrics, curves and exports.
The tables work without JavaScript; writes (launch, cancel, resume) need the sign-in's CSRF
token, which the pages carry for a signed-in session.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import yaml
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from nas.config import parse_config
from nas.service import architectures as architecture_service
from nas.service import searches as search_service
from nas.service.errors import InvalidInput, UserError, describe
from nas.states import ACTIVE_STATUSES, RESUMABLE_STATUSES, ArchitectureRole, SearchStatus
from nas.store import (
    ArchitectureRecord,
    ArchitectureState,
    SearchRecord,
    Store,
    UnknownArchitecture,
    UnknownSearch,
)
from nas.store.pages import ArchitectureSort
from nas.store.store import ranking_key
from nas.strict_yaml import load_yaml
from searchspace.drawing import cell_svg
from server.auth import WriteAccess, authorize, session_csrf
from server.deps import SettingsDep, StoreDep
from server.routes import searches as search_routes
from server.schemas import SearchDetail

HERE = Path(__file__).resolve().parent.parent
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined))
# the templates compare statuses and roles with the enums, never with string literals
templates.env.globals.update(
    SearchStatus=SearchStatus, ArchitectureRole=ArchitectureRole,
    ArchitectureState=ArchitectureState, ACTIVE_STATUSES=ACTIVE_STATUSES,
    RESUMABLE_STATUSES=RESUMABLE_STATUSES, VOCABULARY={
        "active": sorted(ACTIVE_STATUSES), "resumable": sorted(RESUMABLE_STATUSES),
        "derived": ArchitectureRole.DERIVED, "zoo": ArchitectureRole.ZOO,
        "complete": ArchitectureState.COMPLETE})
EXPORT_FORMATS = ("py", "torchscript", "onnx", "state-dict")
TABLE_ROWS = 25
CHART_POINTS = 20_000
MAX_CONFIG_BYTES = 64 * 1024
# A YAML media type is what the dashboard sends; no form of another site can send one without
# a CORS preflight, which this server never grants (cross-site request forgery, on an open
# server too).
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
ERROR_TITLES = {401: "Sign in", 404: "Not found", 409: "Conflict", 413: "Too large",
                422: "Invalid request", 500: "Internal error"}
ErrorHandler = Callable[[Request, Any], Awaitable[Response]]


class NotYaml(UserError):
    status = 415


EXAMPLE_CONFIG = """\
name: digits-enas
seed: 0
strategy: {name: reinforce}
evaluator: {name: enas, warmup_epochs: 1, steps_per_epoch: 2, derive_samples: 4, derive_top: 2}
dataset: {name: digits}
network: {cells: 1, channels: 8}
budget: {architectures: 40}
samples_per_step: 4
"""


def install(app: FastAPI) -> None:
    """Add the pages and serve `/static`."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


def _is_page(request: Request) -> bool:
    """Whether the request was routed to one of the dashboard's HTML pages."""
    return getattr(request.scope.get("route"), "response_class", None) is HTMLResponse


def _problem(item: Any) -> str:
    """One item of a 422's list as a sentence: "query parameter sort: Input should be ..."."""
    where, *name = item.get("loc") or ["request"]
    field = ".".join(str(part) for part in name)
    return f"{where} parameter {field}: {item.get('msg', '')}" if field else str(item.get("msg"))


def html_errors(handler: ErrorHandler) -> ErrorHandler:
    """`handler` (one of the API's JSON error handlers) whose answer to a request for a page is
    a page: the same status and the same message, with the dashboard's header and a way back."""
    async def respond(request: Request, error: Exception) -> Response:
        response = await handler(request, error)
        if not _is_page(request):
            return response
        detail = json.loads(response.body)["detail"]
        message = detail if isinstance(detail, str) else "; ".join(map(_problem, detail))
        title = ERROR_TITLES.get(response.status_code, "Error")
        return _page(request, "message.html", response.status_code, title=title, message=message)

    return respond


def _page(request: Request, template: str, status_code: int = 200, **context: Any
          ) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {
        "csrf": session_csrf(request), "open_server": request.app.state.settings.token() is None,
        **context}, status_code=status_code)


def _refused(request: Request) -> HTMLResponse | None:
    """The sign-in page (401) when reads are protected and nobody signed in."""
    try:
        authorize(request, write=False)
    except HTTPException:
        return _page(request, "message.html", 401, title="Sign in",
                     message="This server's pages need the API token: sign in above.")
    return None


def _not_found(request: Request, error: LookupError) -> HTMLResponse:
    return _page(request, "message.html", 404, title="Not found", message=describe(error))


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(record: SearchRecord) -> str:
    if record.started_at is None:
        return ""
    seconds = ((record.finished_at or datetime.now(UTC)) - record.started_at).total_seconds()
    minutes, seconds = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def _search_row(item: search_service.SearchSummary) -> dict[str, Any]:
    record = item.search
    return {
        "id": record.id, "name": record.name, "status": str(record.status), "stale": item.stale,
        "owner": record.owner, "heartbeat": _when(record.heartbeat_at),
        "progress": item.progress, "architectures": item.architectures,
        "budget": item.budget_architectures, "best_reward": record.best_reward,
        "strategy": (record.config.get("strategy") or {}).get("name") or "",
        "evaluator": (record.config.get("evaluator") or {}).get("name") or "",
        "created": _when(record.created_at), "duration": _duration(record),
        "error": record.error,
    }


def _point(row: ArchitectureRecord) -> dict[str, Any]:
    """What the charts and the live table need of an architecture (as its SSE event has)."""
    return {"id": row.id, "step": row.step, "role": row.role, "state": str(row.state),
            "reward": row.reward, "accuracy": row.accuracy, "params": row.params,
            "flops": row.flops, "latency_ms": row.latency_ms,
            "train_seconds": row.train_seconds, "error": row.error}


def _zoo_runs(store: Store, record: SearchRecord) -> list[ArchitectureRecord]:
    """Classic zoo networks trained on the search's dataset, where the store has such runs
    (architectures of role `zoo` in searches on the same dataset)."""
    dataset = (record.config.get("dataset") or {}).get("name")
    runs: list[ArchitectureRecord] = []
    for other in store.list_searches(limit=200):
        if (other.config.get("dataset") or {}).get("name") == dataset:
            runs += store.ranked_architectures(other.id, role=ArchitectureRole.ZOO)
    return sorted(runs, key=ranking_key)[:10]


def reward_label(record: SearchRecord) -> str:
    """What a candidate's reward is: ENAS scores candidates on a few batches of shared weights."""
    evaluator = (record.config.get("evaluator") or {}).get("name")
    return "reward on scoring batches (shared weights)" if evaluator == "enas" else "reward"


@router.get("/", response_class=HTMLResponse)
def index(request: Request, store: StoreDep,
          cursor: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:
    if refused := _refused(request):
        return refused
    found = search_service.page(store, cursor=cursor, limit=50)
    return _page(request, "index.html", searches=[_search_row(item) for item in found.items],
                 next_cursor=found.next_cursor, first_page=cursor is None,
                 example_config=EXAMPLE_CONFIG)


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def search_page(
    request: Request, search_id: str, store: StoreDep, sort: ArchitectureSort = "step",
    order: Literal["asc", "desc"] = "desc", role: ArchitectureRole | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    if refused := _refused(request):
        return refused
    try:
        item = search_service.summary(store, search_id)
    except UnknownSearch as error:
        return _not_found(request, error)
    table = architecture_service.page(store, search_id, sort=sort, descending=order == "desc",
                                      role=role, cursor=cursor, limit=TABLE_ROWS)
    points = [_point(row) for row in store.architectures(search_id, order="step",
                                                         limit=CHART_POINTS)]
    best = architecture_service.top(store, search_id, 1)
    return _page(
        request, "search.html", search=_search_row(item), config=yaml.safe_dump(
            item.search.config, sort_keys=False), rows=table.items, next_cursor=table.next_cursor,
        first_page=cursor is None, sort=sort, order=order, role=role, points=points,
        best=best[0] if best else None, zoo=_zoo_runs(store, item.search),
        reward_label=reward_label(item.search), page_size=TABLE_ROWS)


@router.get("/architectures/{architecture_id}", response_class=HTMLResponse)
def architecture_page(request: Request, architecture_id: int, store: StoreDep
                      ) -> HTMLResponse:
    if refused := _refused(request):
        return refused
    try:
        row = store.get_architecture(architecture_id)
    except UnknownArchitecture as error:
        return _not_found(request, error)
    search = store.get_search(row.search_id)
    cells = {cell: cell_svg(row.genotype.cell(cell), f"{cell} cell of architecture {row.id}",
                            element_id=f"{cell}-cell") for cell in ("normal", "reduction")}
    metrics = {key: value for key, value in (row.metrics.numbers() if row.metrics else {}).items()
               if key != "traceback"}
    return _page(
        request, "architecture.html", row=row, search=search, cells=cells, metrics=metrics,
        history=architecture_service.history(row), formats=EXPORT_FORMATS,
        log=architecture_service.log_lines(row) if row.state is ArchitectureState.FAIL else [],
        reward_label=("reward (full validation split)" if row.role is ArchitectureRole.DERIVED
                      else reward_label(search)))


def _yaml_mapping(text: bytes) -> Any:
    """The YAML document in `text`, refusing aliases (no billion laughs) and bad encodings."""
    if len(text) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"config: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        source = text.decode("utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(source)):
            raise InvalidInput("config: YAML aliases (*name) are not accepted")
        return load_yaml(source)
    except UnicodeDecodeError:
        raise InvalidInput("config: not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise InvalidInput(f"config: invalid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise InvalidInput("config: nested too deeply to be a config") from None


@router.post("/dashboard/searches", status_code=201, response_model=SearchDetail)
async def launch_from_yaml(request: Request, _: WriteAccess, store: StoreDep,
                           settings: SettingsDep) -> SearchDetail:
    """Launch a search from the YAML config the dashboard's form sends: the same checks and
    the same service call as `POST /api/v1/searches` (it is that route's function)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in YAML_TYPES:
        raise NotYaml(f"send the config as application/yaml (got {kind or 'no content type'})")
    config = parse_config(_yaml_mapping(await request.body()), source="config")
    return await run_in_threadpool(search_routes.launch, config, None, store, settings,
                                   request)
