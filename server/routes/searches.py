"""`/api/v1/searches`: launch, list, get, cancel, resume, delete; a search's architectures,
its best and its live events (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from nas.config import SearchConfig
from nas.service import architectures as architecture_service
from nas.service import searches as search_service
from nas.service.errors import InvalidInput
from nas.store import ArchitectureRole, ArchitectureState, SearchStatus
from nas.store.pages import ArchitectureSort
from server.auth import ReadAccess, WriteAccess
from server.deps import SettingsDep, StoreDep
from server.events import event_stream
from server.schemas import (
    ArchitectureOut,
    ArchitecturePage,
    SearchDetail,
    SearchOut,
    SearchPage,
    errors,
)
from server.strict_json import StrictJSONRoute

router = APIRouter(prefix="/api/v1/searches", tags=["searches"],
                   route_class=StrictJSONRoute)
ERRORS = errors(401, 404, not_found="unknown search id")  # 401: reads need the token too
WRITE_ERRORS = ERRORS | errors(403, 409, conflict="not allowed in the search's status")
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the last page")]


def _detail(store, search_id: str) -> SearchDetail:
    item = search_service.summary(store, search_id)
    return SearchDetail(**SearchOut.of(item).model_dump(), config=item.search.config)


@router.post("", status_code=201, response_model=SearchDetail,
             responses=errors(400, 401, 403, 422))
def launch(config: SearchConfig, _: WriteAccess, store: StoreDep, settings: SettingsDep,
           request: Request) -> SearchDetail:
    """Queue a search; it starts when a runner slot is free (`max_running_searches`)."""
    if settings.allowed_evaluators is not None and (
            config.evaluator.name not in settings.allowed_evaluators):
        raise InvalidInput(f"evaluator.name: this server runs only "
                           f"{', '.join(settings.allowed_evaluators)}")
    if config.evaluator.retrain_top and not settings.trains_from_scratch:
        raise InvalidInput(f"evaluator.retrain_top: this server trains no network from "
                           f"scratch (evaluators: {', '.join(settings.allowed_evaluators)}); "
                           f"leave it at 0")
    cap = settings.max_budget_architectures
    if cap is not None and (config.budget.architectures is None
                            or config.budget.architectures > cap):
        raise InvalidInput(f"budget.architectures: this server allows at most {cap}")
    request.app.state.runs.check_resources(config)
    roots = [settings.datasets_dir, *settings.dataset_roots]
    record = search_service.launch(store, config, allowed_roots=roots)
    request.app.state.runs.wake()
    return _detail(store, record.id)


@router.get("", response_model=SearchPage, responses=errors(401, 422))
def list_searches(_: ReadAccess, store: StoreDep, status: SearchStatus | None = None,
                  cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
                  ) -> SearchPage:
    """Searches, newest first; `next_cursor` pages on."""
    found = search_service.page(store, status=status, cursor=cursor, limit=limit)
    return SearchPage(items=[SearchOut.of(item) for item in found.items],
                      next_cursor=found.next_cursor)


@router.get("/{search_id}", response_model=SearchDetail, responses=ERRORS)
def get_search(search_id: str, _: ReadAccess, store: StoreDep) -> SearchDetail:
    return _detail(store, search_id)


@router.post("/{search_id}/cancel", response_model=SearchDetail, responses=WRITE_ERRORS)
def cancel(search_id: str, _: WriteAccess, store: StoreDep, request: Request) -> SearchDetail:
    """Stop a queued or running search (its running candidates are stopped)."""
    search_service.cancel(store, search_id)
    request.app.state.runs.stop(search_id)
    return _detail(store, search_id)


@router.post("/{search_id}/resume", response_model=SearchDetail, responses=WRITE_ERRORS)
def resume(search_id: str, _: WriteAccess, store: StoreDep, request: Request) -> SearchDetail:
    """Queue a failed, cancelled or interrupted search again, from its last checkpoint."""
    search_service.resume(store, search_id)
    request.app.state.runs.wake()
    return _detail(store, search_id)


@router.delete("/{search_id}", status_code=204, responses=WRITE_ERRORS)
def delete(search_id: str, _: WriteAccess, store: StoreDep) -> Response:
    """Delete an ended search with its architectures and files (409 while it runs)."""
    search_service.delete(store, search_id)
    return Response(status_code=204)


@router.get("/{search_id}/best", response_model=ArchitectureOut, responses=ERRORS)
def best(search_id: str, _: ReadAccess, store: StoreDep) -> ArchitectureOut:
    """The best architecture (ENAS: the derived ones, re-scored on the whole split)."""
    return ArchitectureOut.of(architecture_service.best(store, search_id))


@router.get("/{search_id}/top", response_model=list[ArchitectureOut], responses=ERRORS)
def top(search_id: str, _: ReadAccess, store: StoreDep,
        limit: Annotated[int, Query(ge=1, le=architecture_service.TOP_LIMIT)] = 5
        ) -> list[ArchitectureOut]:
    """The best architectures as `nas show` ranks them (ENAS: the derived ones)."""
    return [ArchitectureOut.of(row) for row in architecture_service.top(store, search_id, limit)]


@router.get("/{search_id}/architectures", response_model=ArchitecturePage,
            responses=ERRORS | errors(422))
def list_architectures(
    search_id: str, _: ReadAccess, store: StoreDep, sort: ArchitectureSort = "reward",
    order: Literal["asc", "desc"] | None = None, state: ArchitectureState | None = None,
    role: ArchitectureRole | None = None, cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ArchitecturePage:
    """A page of a search's architectures, sorted (reward and accuracy: best first)."""
    found = architecture_service.page(
        store, search_id, sort=sort, descending=None if order is None else order == "desc",
        state=state, role=role, cursor=cursor, limit=limit)
    return ArchitecturePage(items=[ArchitectureOut.of(row) for row in found.items],
                            next_cursor=found.next_cursor)


@router.get("/{search_id}/events", responses=ERRORS | {200: {
    "content": {"text/event-stream": {}},
    "description": "one event per status change and per scored architecture"}})
def events(search_id: str, _: ReadAccess, store: StoreDep, request: Request):
    """Server-Sent Events: the search's event log from `Last-Event-ID` on, then live."""
    store.get_search(search_id)
    return event_stream(request, store, search_id)
