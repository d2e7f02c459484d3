"""Data loaders: the reads a list of objects makes for each of them, batched into one.

A page of 50 workflows that asks for each one's events is one query of the marts
(`read_workflow_events`), not 51. Loaders batch within one operation and cache nothing: a
WebSocket connection's context lives as long as the connection, and its reads must stay fresh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from fastapi.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader

from streaming.data.queries import read_workflow_events
from streaming.data.serving import Serving
from streaming.schemas import EventPage

EventsKey = tuple[str, datetime | None, int]  # (workflow id, since, limit)


class Loaders:
    """One context's loaders."""

    def __init__(self, data: Serving) -> None:
        self.data = data
        self.workflow_events: DataLoader[EventsKey, EventPage] = DataLoader(self._workflow_events, cache=False)

    async def _workflow_events(self, keys: Sequence[EventsKey]) -> list[EventPage]:
        # Keys asking the same `since` and `limit` (every workflow of a page, as a rule) are one read.
        groups: dict[tuple[datetime | None, int], list[str]] = defaultdict(list)
        for workflow_id, since, limit in keys:
            if workflow_id not in groups[(since, limit)]:
                groups[(since, limit)].append(workflow_id)
        pages: dict[EventsKey, EventPage] = {}
        for (since, limit), workflows in groups.items():
            found = await run_in_threadpool(read_workflow_events, self.data, workflows, since, limit)
            pages.update({(w, since, limit): page for w, page in found.items()})
        return [pages[key] for key in keys]
