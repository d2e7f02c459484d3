"""The sidecar's metrics about itself, in Prometheus' text format at `/metrics` (prometheus-client).

What is exported (`cc_` names; the README's "Metrics" section has the table): webhook deliveries by
source and outcome, the acknowledgement's latency, the landing log's fsync latency and lines per
group commit, dedupe hits, the live state's lag behind the last event, WebSocket clients, rooms,
frames and bytes sent and slow clients dropped, REST and GraphQL latency per route, the serving
cache's hits, rate-limit refusals; and whatever other processes leave in `$CC_DATA_DIR/metrics/*.prom`
(the Dagster exporter's runs, assets, rows landed and dead letters: `sensors/pipeline_metrics.py`).

The hot paths pay little: a delivery's outcome and ack latency are one cached child each (no label
lookup per webhook), the fsync histogram is observed by the landing writer thread once per group
commit, and what the rooms count per frame (`rooms.Sent`), the dropped clients and the cache's hits
are plain integers, carried into the counters when `/metrics` is read (`sample`).

Several workers on one port (`CC_SIDECAR_WORKERS`): prometheus-client's multiprocess mode. The
supervisor gives its workers a directory of their own (`PROMETHEUS_MULTIPROC_DIR`), each worker's
values live in files there, and whichever worker answers `/metrics` sums everyone's: counters and
histograms over every worker that ever ran (a restarted worker's counts stay), gauges over the
live ones. Each worker also samples its gauges every `SAMPLE_S`, so the answering worker reads
the others' at most that old.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streaming.params import known_parameters
from streaming.responses import with_unknown_parameter

SOURCES = {"/webhooks/github": "github", "/webhooks/linear": "linear", "/webhooks/charlie": "charlie",
           "/events": "events"}
OUTCOMES = ("landed", "duplicate", "refused", "rate_limited", "failed")
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LINES_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SAMPLE_S = 1.0  # multiprocess: how often each worker writes its gauges for the others to read
OTHER_ROUTE = "other"
GRAPHQL = "/graphql"  # a request no route matched (404s are not one series per path asked)


def multiprocess() -> bool:
    """Whether prometheus-client keeps values in files shared by workers (`PROMETHEUS_MULTIPROC_DIR`
    was set when it was imported: the supervisor sets it for its workers)."""
    return values.ValueClass is not values.MutexValue


class Telemetry:
    """The metric objects of one sidecar, and what carries its plain counts into them (`sample`)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess()
        # No `_created` series: a timestamp per child that no dashboard reads, a third of the text.
        disable_created_metrics()
        # One registry per sidecar, not the library's global one: two apps in one process (tests)
        # each expose their own. In multiprocess mode nothing is registered: the files are read.
        registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, mode: str) -> Gauge:
            return Gauge(name, doc, registry=registry, multiprocess_mode=mode)

        self.deliveries = counter("cc_webhook_deliveries", "Webhook and pushed deliveries answered, by source and "
                                  "outcome (landed, duplicate, refused, rate_limited, failed)", ("source", "outcome"))
        self.dead_letters = counter("cc_webhook_dead_letters", "Deliveries landed as dead letters (a known kind the "
                                    "normalizer cannot use)", ("source",))
        self.ack = Histogram("cc_webhook_ack_seconds", "From a webhook's request to its answer (202 once fsynced)",
                             ("source",), buckets=ACK_BUCKETS, registry=registry)
        self.fsync = Histogram("cc_landing_fsync_seconds", "A landing group commit's write and fsync, per file",
                               buckets=FSYNC_BUCKETS, registry=registry)
        self.commit_lines = Histogram("cc_landing_commit_lines", "Deliveries per landing group commit (per fsync)",
                                      buckets=LINES_BUCKETS, registry=registry)
        self.dedupe_hits = counter("cc_dedupe_hits", "Copies answered as duplicates, not landed again", ("stream",))
        self.live_lag = gauge("cc_live_state_lag_seconds", "How long the oldest event the live workflow state has not "
                              "computed yet has waited (0: caught up)", "livemax")
        self.clients = gauge("cc_ws_clients", "WebSocket and Socket.IO clients connected", "livesum")
        self.rooms = gauge("cc_ws_rooms", "Rooms with at least one client (per worker, summed)", "livesum")
        self.queued = gauge("cc_ws_queued_messages", "Messages waiting for slow clients", "livesum")
        self.frames = counter("cc_ws_frames_sent", "WebSocket frames written to clients")
        self.bytes = counter("cc_ws_bytes_sent", "Bytes of frames written to clients")
        self.slow_dropped = counter("cc_ws_slow_clients_dropped", "Clients closed for staying behind (4408)")
        self.http = Histogram("cc_http_request_seconds", "REST, GraphQL and other HTTP requests' latency, by route",
                              ("route", "method"), buckets=HTTP_BUCKETS, registry=registry)
        self.http_total = counter("cc_http_requests", "HTTP requests answered, by route, method and status",
                                  ("route", "method", "status"))
        self.cache = counter("cc_serving_cache_lookups", "REST reads' cached results: hit or miss", ("result",))
        self.rate_limited = counter("cc_rate_limit_refusals", "Requests refused 429 by a rate limit, by action",
                                    ("action",))
        self.rate_limit_errors = counter("cc_rate_limit_errors", "Rate-limit checks Redis did not answer (counted "
                                         "in the replica meanwhile)")
        if registry is not None:
            from prometheus_client import ProcessCollector

            ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory: this process's
        self._delivery = {(source, outcome): self.deliveries.labels(source, outcome)
                          for source in SOURCES.values() for outcome in OUTCOMES}
        self._ack = {path: self.ack.labels(source) for path, source in SOURCES.items()}
        self.webhook_duplicate = self.dedupe_hits.labels("webhooks")
        self._http: dict[tuple[str, str], Any] = {}
        self._http_total: dict[tuple[str, str, int], Any] = {}
        self._seen: dict[str, int] = {"frames": 0, "bytes": 0, "kicked": 0, "hits": 0, "misses": 0}

    # --- events ---------------------------------------------------------------------------------

    def delivered(self, source: str, outcome: str) -> None:
        child = self._delivery.get((source, outcome))
        if child is None:
            child = self._delivery[(source, outcome)] = self.deliveries.labels(source, outcome)
        child.inc()

    def acked(self, path: str, seconds: float) -> None:
        self._ack[path].observe(seconds)

    def committed(self, seconds: float, lines: int) -> None:
        """One group commit to one file (the landing writer thread)."""
        self.fsync.observe(seconds)
        self.commit_lines.observe(lines)

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method)
        child = self._http.get(key)
        if child is None:
            child = self._http[key] = self.http.labels(route, method)
        child.observe(seconds)
        total = self._http_total.get((route, method, status))
        if total is None:
            total = self._http_total[(route, method, status)] = self.http_total.labels(route, method, str(status))
        total.inc()

    def refused(self, action: str) -> None:
        self.rate_limited.labels(action).inc()

    # --- what is read when asked ----------------------------------------------------------------

    def sample(self, sidecar: Any) -> None:
        """Gauges from the sidecar's state, and its plain counts into the counters (on the event loop)."""
        hub = sidecar.hub
        self.clients.set(len(hub.clients))
        self.rooms.set(len(hub.rooms))
        self.queued.set(hub.backlog())
        self.live_lag.set(sidecar.state.lag_s())
        serving = sidecar.serving
        counts = {"frames": hub.sent.frames, "bytes": hub.sent.bytes, "kicked": hub.kicked,
                  "hits": serving.cache_hits if serving is not None else 0,
                  "misses": serving.cache_misses if serving is not None else 0}
        for name, metric in (("frames", self.frames), ("bytes", self.bytes), ("kicked", self.slow_dropped),
                             ("hits", self.cache.labels("hit")), ("misses", self.cache.labels("miss"))):
            grown = counts[name] - self._seen[name]
            if grown > 0:
                metric.inc(grown)
            self._seen[name] = counts[name]

    async def sample_every(self, sidecar: Any, interval_s: float = SAMPLE_S) -> None:
        while True:
            self.sample(sidecar)
            await asyncio.sleep(interval_s)

    def exposition(self, exported: Path) -> bytes:
        """The text format: this sidecar's metrics (every worker's), then each `exported/*.prom` file."""
        if self.multiprocess:
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        else:
            registry = self.registry
        parts = [generate_latest(registry)]
        if exported.is_dir():
            for path in sorted(exported.glob("*.prom")):
                try:
                    text = path.read_bytes()
                except OSError:  # replaced while read: the next scrape has it
                    continue
                parts.append(text if text.endswith(b"\n") or not text else text + b"\n")
        return b"".join(parts)


# --- the middleware: latency per route ----------------------------------------------------------


def route_of(scope: dict) -> str:
    """The route a request matched; for one answered before routing (a 429), the route it would have."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    if scope["path"] == GRAPHQL or scope["path"].startswith(GRAPHQL + "/"):  # not in the OpenAPI document
        return GRAPHQL
    return next((template for template, pattern in _templates(scope["app"]) if pattern.match(scope["path"])),
                OTHER_ROUTE)


_TEMPLATES: dict[int, list] = {}


def _templates(app: Any) -> list:
    """The documented paths (every route, included routers flattened) as (template, regex), once."""
    found = _TEMPLATES.get(id(app))
    if found is None:
        from starlette.routing import compile_path

        found = _TEMPLATES[id(app)] = [(template, compile_path(template)[0]) for template in app.openapi()["paths"]]
    return found


class RouteTimer:
    """ASGI: every HTTP request's latency (to its last body byte) and status, by the route it matched
    (`/api/workflows/{workflow_id}`, `/graphql`): `cc_http_request_seconds`, `cc_http_requests_total`.
    The webhook routes are answered before any middleware (`webhooks.fast_path`) and have their own."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            sidecar = getattr(scope["app"].state, "sidecar", None)
            if sidecar is not None:
                sidecar.telemetry.answered(route_of(scope), scope["method"], status, time.perf_counter() - started)


# --- /metrics -----------------------------------------------------------------------------------

router = APIRouter(tags=["ops"])


@router.get("/metrics", summary="The sidecar's own metrics, Prometheus text format", response_class=Response,
            dependencies=[Depends(known_parameters)], responses=with_unknown_parameter({
                200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Every metric (`cc_*`, the Dagster "
                      "exporter's `cc_dagster_*`)"},
                401: {"description": "CC_METRICS_TOKEN is set and the bearer token is not it"},
                404: {"description": "CC_METRICS_ENABLED is off"}}))
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.metrics_enabled:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    if settings.metrics_token:
        given = request.headers.get("authorization", "")
        if given[:7].lower() != "bearer " or not hmac.compare_digest(given[7:].strip().encode(),
                                                                      settings.metrics_token.encode()):
            return JSONResponse({"detail": "send Authorization: Bearer <CC_METRICS_TOKEN>"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
    sidecar = request.app.state.sidecar
    sidecar.telemetry.sample(sidecar)
    # Off the event loop: reading every worker's files, or a few hundred series, takes a millisecond
    # or more that a webhook's acknowledgement should not wait behind.
    body = await asyncio.to_thread(sidecar.telemetry.exposition, settings.metrics_dir)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
