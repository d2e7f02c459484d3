"""GET /dashboard/overview: the one-row dashboard marts plus the events seen since the last build."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from streaming.data.queries import read_overview
from streaming.data.serving import TTL, Serving
from streaming.deps import Data
from streaming.responses import cached_response, encode
from streaming.schemas import Overview

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

KEPT = "overview"  # the name its body is kept under in `Serving`


def overview_body(data: Serving) -> tuple[bytes, str]:
    return encode(read_overview(data))


@router.get("/overview", response_model=Overview,
            summary="Executive overview: the one-row dashboard marts plus events seen since the last build")
async def dashboard_overview(request: Request, data: Data) -> Response:
    # The most read route: its body is kept encoded and fresh by Serving's keeper thread (a new
    # build, new live events, the TTL running out), so a read sends bytes on the event loop and
    # neither computes nor waits for a thread.
    encoded = data.ready(KEPT)
    if encoded is None:  # the first read, or live events newer than the keeper's last look
        # Kept from the first read on, not from start-up: the keeper thread wakes every 20 ms, and
        # a sidecar nobody reads the REST API of should not pay that beside its webhooks (with it
        # from start-up, an ack's dedupe-index write lost the race to a SIGKILL in test_dedupe).
        data.keep(KEPT, TTL["overview"], lambda: overview_body(data))
        encoded = await run_in_threadpool(data.cached, KEPT, TTL["overview"], lambda: overview_body(data), live=True)
    return cached_response(request, encoded, TTL["overview"])
