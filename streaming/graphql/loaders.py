"""Data loaders: the reads a list of objects makes for each of them, batched into one.

A page of 50 workflows that asks for each one's events is one query of the marts
(`read_workflow_events`), not 51, cached as `/api/events` is (the seeds' TTL, new live events).
The loaders themselves keep nothing between operations: a WebSocket connection's context lives as
long as the connection, and its reads must stay fresh.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from fastapi.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader

from streaming.data.queries import read_workflow_events
from streaming.data.serving import TTL, Serving
from streaming.schemas import EventPage

EventsKey = tuple[str, datetime | None, int]  # (workflow id, since, limit)


class Loaders:
    """One context's loaders."""

    def __init__(self, data: Serving) -> None:
        self.data = data
        self.workflow_events: DataLoader[EventsKey, EventPage] = DataLoader(self._workflow_events, cache=False)

    async def _workflow_events(self, keys: Sequence[EventsKey]) -> list[EventPage]:
        # Keys asking the same `since` and `limit` (every workflow of a page, as a rule) are one read.
        groups: dict[tuple[datetime | None, int], dict[str, None]] = defaultdict(dict)
        for workflow_id, since, limit in keys:
            groups[(since, limit)][workflow_id] = None
        pages: dict[EventsKey, EventPage] = {}
        for (since, limit), workflows in groups.items():
            key = json.dumps(["graphql:workflow_events", list(workflows), since.isoformat() if since else None, limit])
            found = await run_in_threadpool(self.data.cached, key, TTL["events"],
                                            partial(read_workflow_events, self.data, list(workflows), since, limit), True)
            pages.update({(w, since, limit): page for w, page in found.items()})
        return [pages[key] for key in keys]
