"""`create_app(settings)`: the FastAPI application (routes, auth, errors, metrics, runs).

Thin by design: every route calls `nas.service`, and a user error raised there becomes a JSON
`{"detail": ...}` with its status (`nas.service.errors.http_status`); anything else is a 500
with no traceback in the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError

from nas.service.errors import STATUS_BY_TYPE
from nas.service.runs import Launcher, ProcessLauncher, RunScheduler
from nas.store import Store
from server.errors import error_response, validation_response
from server.head import HeadAsGet
from server.limits import RequestLimits
from server.metrics import Metrics
from server.routes import (
    architectures,
    baselines,
    dashboard,
    datasets,
    health,
    searches,
    session,
    zoo,
)
from server.settings import ServerSettings
from server.single_query import refuse_repeated_query


def create_launcher(settings: ServerSettings) -> Launcher:
    if settings.runner == "process":
        return ProcessLauncher(settings.store_url, settings.home)
    from workers.search_actors import RayLauncher

    return RayLauncher(settings.store_url, settings.home, settings.ray_address)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runs = RunScheduler(app.state.store, create_launcher(settings),
                            max_running=settings.max_running_searches)
        app.state.runs = runs
        runs.start()
        try:
            yield
        finally:
            runs.close()
            app.state.store.close()

    app = FastAPI(title="nas-service", version="0.1.0", lifespan=lifespan,
                  dependencies=[Depends(refuse_repeated_query)],
                  description="Neural architecture search: launch, follow, cancel and resume "
                  "searches; every sampled architecture; exports of the best.")
    app.state.settings = settings
    app.state.store = Store(settings.store_url, migrate=settings.migrate)
    app.state.metrics = Metrics(app.state.store)
    app.add_middleware(RequestLimits)  # inside the metrics: its refusals are counted
    app.middleware("http")(app.state.metrics.middleware)
    app.add_middleware(HeadAsGet)
    # JSON for the API; a dashboard page's errors are pages (same status, same message)
    app.add_exception_handler(RequestValidationError, dashboard.html_errors(validation_response))
    for error_type, _ in STATUS_BY_TYPE:
        app.add_exception_handler(error_type, dashboard.html_errors(error_response))
    # a bug: a 500 without a traceback
    app.add_exception_handler(Exception, dashboard.html_errors(error_response))
    for module in (health, session, searches, baselines, architectures, datasets, zoo):
        app.include_router(module.router)
    dashboard.install(app)
    return app

