"""GET /api/workflows: workflows, newest activity first, paged by offset or by cursor."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from streaming.data.queries import CURSOR_PATTERN, Cursor, read_workflows
from streaming.data.serving import TTL
from streaming.deps import Data
from streaming.responses import cached_response, encode
from streaming.schemas import Source, WorkflowPage, WorkflowStatus

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", response_model=WorkflowPage,
            summary="Workflows, newest activity first, with their event counts (live events included)",
            responses={400: {"description": "A `cursor` with an `offset` other than 0"}})
def list_workflows(
    request: Request, data: Data,
    status: Annotated[WorkflowStatus | None, Query()] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="Assignee id or name, or a Charlie instance id")] = None,
    provider: Annotated[Source | None, Query(description="A source the workflow has events from")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=CURSOR_PATTERN,
                                        description="A page's `nextCursor`: the next page, as fast at any depth "
                                        "(offset pages get slower the deeper they are). Any text of this pattern "
                                        "is a place in the order: the workflows after it")] = None,
) -> Response:
    after = None
    if cursor is not None:
        if offset:
            raise HTTPException(400, "page with either `cursor` or `offset`, not both")
        try:
            after = Cursor.decode(cursor)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
    key = json.dumps(["workflows", status, assignee, provider, limit, offset, after.encode() if after else None])
    encoded = data.cached(key, TTL["workflows"],
                          lambda: encode(read_workflows(data, status, assignee, provider, limit, offset, after)),
                          live=True)
    return cached_response(request, encoded, TTL["workflows"])
