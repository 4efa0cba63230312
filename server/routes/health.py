"""Liveness, readiness (database and Ray reachable) and Prometheus metrics, at the root."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.deps import StoreDep
from server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request, store: StoreDep) -> Response:
    """The database answers, and Ray does when searches run on it."""
    checks = {"database": "ok"}
    try:
        store.count_searches_by_status()
    except Exception as error:  # any failure means not ready; the reason is shown
        checks["database"] = f"unreachable: {type(error).__name__}"
    runs = request.app.state.runs
    checks["runner"] = runs.health()
    healthy = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
