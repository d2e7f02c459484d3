"""The sidecar's ASGI app, run by the launcher `python -m streaming.serve` (or `uvicorn streaming.app:app`).

Webhooks in (`streaming/webhooks.py`), rooms out over `/ws` (`streaming/ws.py`) and Socket.IO at
`/socket.io/` (`streaming/socket_io.py`), and the REST API (`streaming/routes/`, one router per tag,
reading `streaming/data/` through the dependencies in `streaming/deps.py`).
Everything the app holds — the landing writer, the broker connection, background refreshes — is
opened and closed in the lifespan, so importing this module starts nothing.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlparse, urlunparse

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from resources.settings import Settings
from streaming import graphql, page, telemetry, webhooks, ws
from streaming.alerting import monitor_status
from streaming.auth import NO_SECRET
from streaming.catchup import catch_up
from streaming.data.marts import MartsUnavailable, utcnow
from streaming.data.serving import Serving
from streaming.live import LiveEvents
from streaming.params import known_parameters
from streaming.ratelimit import RateLimitMiddleware
from streaming.responses import marts_unavailable, with_unknown_parameter
from streaming.routes import api_router
from streaming.samples import LiveSamples
from streaming.sidecar import Sidecar

logger = logging.getLogger("uvicorn.error")  # the launcher's log, shown at its default level


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[-1])) if parsed.password else url


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def http_error(request: Request, exc: HTTPException):
    """FastAPI's answer, except that a 405's `Allow` names every method of the path: Starlette's
    names those of the first route with that path only (`GET` for `/dashboard/dashboards`, which
    takes `POST` too)."""
    if exc.status_code == 405:
        # Asked of the routes themselves: included routers are not flattened into `app.routes`. A
        # mount (`/static/`) matches every method, so its own answer's `Allow` stands.
        allowed = [method for method in METHODS if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes if not isinstance(route, Mount))]
        if allowed:
            exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


class SidecarApp(FastAPI):
    """FastAPI, with the webhook routes answered first (`webhooks.fast_path`) and the server's
    own WebSocket send kept for `/ws` (`ws.FrameWriter`)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            scope[ws.SCOPE_SEND] = send  # the server's own send, for `ws.FrameWriter`
        elif await webhooks.fast_path(self, scope, receive, send):
            return
        await super().__call__(scope, receive, send)


class LazySocketIO:
    """`/socket.io/`, built on its first request: python-socketio's package pulls in its clients,
    aiohttp and redis, a quarter of the sidecar's import time, which would otherwise come before
    the first webhook can be answered. The import runs in a thread, not on the event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._asgi = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if self._asgi is None:
            async with self._lock:
                if self._asgi is None:
                    self._asgi = await asyncio.to_thread(self._build)
        await self._asgi(scope, receive, send)

    def _build(self):
        socket_io = importlib.import_module("streaming.socket_io")
        return socket_io.socketio.ASGIApp(socket_io.create_server(self.app), socketio_path=socket_io.PATH)


# Container allocations between two young-generation collections (CPython's default: 700). A
# webhook parses its body into a few hundred containers, so the default collected every two or
# three webhooks; nearly all of them are garbage by the time the request ends.
GC_YOUNG_THRESHOLD = 20_000
# How long a thread holding the interpreter keeps it while another waits (CPython's default: 5 ms).
# The live state's worker and the alert monitor run Python between their I/O; with the default,
# the event loop could wait 5 ms for them before answering a webhook or writing a room's turn.
SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """After start-up. What exists now (imports, the app, DuckDB and Arrow handles, the dedupe
    index) lives as long as the process, so it leaves the collector's generations (`gc.freeze`):
    every full collection re-scanned it, pauses of 40-80 ms in the middle of the webhook load
    (bench-stream). No collection first: it would delay the first webhook by a full one, for the
    little garbage start-up leaves. Young collections run less often (`GC_YOUNG_THRESHOLD`), and
    the loop waits less for the interpreter (`SWITCH_INTERVAL_S`)."""
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, young), middle, old)
    sys.setswitchinterval(min(SWITCH_INTERVAL_S, sys.getswitchinterval()))


async def catch_up_first(sidecar: Sidecar) -> None:
    """A named worker, one of several on a data dir (`CC_SIDECAR_WORKERS`, replicas), reads back
    what its peers landed before it subscribed (`streaming/catchup.py`) before it takes a
    connection: a client reconnecting to a worker just restarted would otherwise read an
    `/api/events` without them, and miss them for good. Its peers take the connections meanwhile;
    what they publish reaches it already. A lone sidecar starts from the marts and hot tier: its
    catch-up counted events the hot tier already held a second time, as live."""
    try:
        await catch_up(sidecar, utcnow())
    except Exception:  # noqa: BLE001 - serve what the live path brings rather than not at all
        logger.exception("reading back what the other workers landed failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings or Settings.from_env()
        if not app.state.settings.jwt_secret:
            logger.warning("%s: the page, REST, /ws and Socket.IO refuse everyone until it is set "
                           "(`make ui` makes a development one)", NO_SECRET)
        app.state.live = LiveEvents()
        app.state.samples = LiveSamples()
        sidecar = app.state.sidecar = Sidecar(app.state.settings, app.state.live, app.state.samples)
        await sidecar.start()
        serving = None
        try:
            # What the REST routes read, over the webhook routes' live events. It opens no network
            # connection (the app store's Postgres schema is made on first use), so the sidecar
            # starts, and lands webhooks, with Postgres down.
            serving = app.state.serving = await asyncio.to_thread(Serving.from_settings, app.state.settings,
                                                                  app.state.live, sidecar.state, app.state.samples)
            sidecar.serving = serving
            if app.state.settings.sidecar_worker_id is not None:
                await catch_up_first(sidecar)
            tune_interpreter()
            yield
        finally:
            await sidecar.stop()
            if serving is not None:
                serving.close()

    app = SidecarApp(title="Command Center sidecar", lifespan=lifespan,
                  description="Webhooks in, live rooms out (`/ws`, Socket.IO at `/socket.io/`), and the "
                              "dashboard's REST API.",
                  docs_url=None, redoc_url=None)  # from local assets: `streaming/page.py`
    app.include_router(webhooks.router)
    app.include_router(ws.router)
    app.include_router(api_router)
    app.include_router(telemetry.router)  # /metrics (the dashboard's business metrics are /dashboard/metrics)
    graphql.install(app)
    app.add_exception_handler(MartsUnavailable, marts_unavailable)
    app.add_exception_handler(HTTPException, http_error)
    app.mount("/socket.io", LazySocketIO(app))
    # By path, so a route added later (/graphql) is limited and timed by where it lives; the timer
    # outermost, so a 429 is timed too. Webhooks are answered before both (`webhooks.fast_path`).
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(telemetry.RouteTimer)
    page.install(app)

    @app.get("/healthz", tags=["ops"], summary="Liveness, with this replica's fan-out state",
             dependencies=[Depends(known_parameters)], responses=with_unknown_parameter({}))
    async def healthz(request: Request) -> dict:
        sidecar = request.app.state.sidecar
        return {"status": "ok", "worker": sidecar.writer, "broker": _without_password(sidecar.broker.url),
                "clients": sidecar.hub.count(),
                "live_events": len(sidecar.live), "live_state": sidecar.state.status,
                "live_state_detail": sidecar.state.detail(),
                "landing_fsyncs": sidecar.journal.batches,
                "landed_lines": sidecar.journal.lines, "deliveries_in_flight": sidecar.deliveries.in_flight(),
                "duplicates_waiting": sidecar.deliveries.waiting, "dedupe_index": sidecar.deliveries.startup,
                "claims_taken_over": sidecar.claims.taken_over,
                "queued": sidecar.hub.backlog(),
                "slow_clients_closed": sidecar.hub.kicked,
                "alert_rules": sidecar.monitor.detail() if sidecar.monitor is not None else None,
                "alert_monitor": monitor_status(sidecar.monitor, sidecar.shared_facts)}

    return app


app = create_app()
