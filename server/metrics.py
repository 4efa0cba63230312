"""Prometheus metrics of one app: requests by route and status, latency, searches by status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nas.store import SearchStatus, Store


class SearchCollector(Collector):
    """`nas_searches{status=...}`, read from the store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        gauge = GaugeMetricFamily("nas_searches", "searches in the store by status",
                                  labels=["status"])
        counts = self.store.count_searches_by_status()
        for status in SearchStatus:
            gauge.add_metric([str(status)], counts.get(status, 0))
        yield gauge


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("nas_http_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("nas_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry)
        self.registry.register(SearchCollector(store))

    async def middleware(self, request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # an error no handler took: the server answers 500 outside this middleware
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            name = getattr(request.scope.get("route"), "path", "unmatched")
            self.requests.labels(name, str(status)).inc()
            self.latency.labels(name).observe(time.perf_counter() - started)
