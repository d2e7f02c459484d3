"""GET /api/events: events of one workflow and/or from a time on, live events included."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from streaming.data.marts import iso
from streaming.data.queries import read_events
from streaming.data.serving import TTL
from streaming.deps import Data
from streaming.params import ISO_TIME, parse_time
from streaming.responses import cached_response, encode
from streaming.schemas import EventPage

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=EventPage,
            summary="Events (oldest first), of one workflow and/or from a time on; live events included",
            responses={400: {"description": "`since` is not an ISO 8601 time"}})
def list_events(
    request: Request, data: Data,
    workflow: Annotated[str | None, Query(max_length=300, description="A workflow id, e.g. linear:ENG-12")] = None,
    since: Annotated[str | None, Query(description="Events at or after it", json_schema_extra=ISO_TIME)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    # Read as text: as a `datetime` parameter it took numbers too (`since=0.5`, seconds from 1970).
    since_at = parse_time("since", since) if since is not None else None
    key = json.dumps(["events", workflow, iso(since_at), limit])
    encoded = data.cached(key, TTL["events"], lambda: encode(read_events(data, workflow, since_at, limit)), live=True)
    return cached_response(request, encoded, TTL["events"])
