"""The cron event API: job runs as a numbered event log, polled by `seq` or streamed as Server-Sent Events.

The stream sends every event after `Last-Event-ID` (or `?last_event_id=`), then keeps the
connection open with heartbeat comments, since nothing new happens in a finished world. `max_events`
and `timeout` end it, so tests and batch readers finish; `interval` paces events as if live.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

from sandbox.model import AgentWorld, CronEvent, iso

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
RETRY_MS = 1000  # what the stream tells clients to wait before reconnecting
DEFAULT_HEARTBEAT_S = 5.0


class CronApi:
    def __init__(self, agents: AgentWorld) -> None:
        self.jobs = agents.cron_jobs
        self.events = agents.cron_events  # by seq
        self.seqs = [e.seq for e in self.events]

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        route = path.strip("/")
        if route == "v1/jobs":
            return 200, {"jobs": [{"name": j.name, "schedule": j.schedule, "host": j.host,
                                   "description": j.description} for j in self.jobs]}
        if route != "v1/events":
            return 404, {"error": "not_found", "message": "No such resource"}
        try:
            after = _int(query.get("after"), "after", 0)
            limit = _int(query.get("limit"), "limit", DEFAULT_LIMIT)
        except ValueError as exc:
            return 400, {"error": "bad_request", "message": str(exc)}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"error": "bad_request", "message": f"limit must be between 1 and {MAX_LIMIT}"}
        lo = bisect_right(self.seqs, after)
        page = self.events[lo : lo + limit]
        return 200, {
            "events": [cron_record(e) for e in page],
            "last_seq": page[-1].seq if page else after,
            "has_more": lo + limit < len(self.events),
        }

    def stream(self, query: dict[str, str], last_event_id: str | None,
               cut_after: int | None = None) -> tuple[int, Any, Iterator[bytes | None] | None]:
        """(status, error payload, chunks); a None chunk means: drop the connection here."""
        try:
            after = _int(last_event_id or query.get("last_event_id"), "Last-Event-ID", 0)
            max_events = _int(query.get("max_events"), "max_events", 0) or None
            timeout = _float(query.get("timeout"), "timeout", 0.0) or None
            heartbeat = _float(query.get("heartbeat"), "heartbeat", DEFAULT_HEARTBEAT_S)
            interval = _float(query.get("interval"), "interval", 0.0)
        except ValueError as exc:
            return 400, {"error": "bad_request", "message": str(exc)}, None
        if not 0.01 <= heartbeat <= 300:
            return 400, {"error": "bad_request", "message": "heartbeat must be between 0.01 and 300 seconds"}, None
        return 200, None, self._chunks(after, max_events, timeout, heartbeat, interval, cut_after)

    def _chunks(self, after: int, max_events: int | None, timeout: float | None, heartbeat: float,
                interval: float, cut_after: int | None) -> Iterator[bytes | None]:
        now = time.monotonic()
        deadline = now + timeout if timeout else None
        last_write = now
        yield f"retry: {RETRY_MS}\n\n".encode()
        sent, position = 0, bisect_right(self.seqs, after)
        while max_events is None or sent < max_events:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            has_event = position < len(self.events)
            event_due = last_write + interval if interval and sent else now
            beat_due = last_write + heartbeat
            wait = (min(event_due, beat_due) if has_event else beat_due) - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            if wait > 0:
                time.sleep(wait)
                continue
            if not has_event or now < event_due:
                yield f": heartbeat {iso(int(time.time()))}\n\n".encode()
            elif cut_after is not None and sent >= cut_after:
                yield None
                return
            else:
                yield _frame(self.events[position])
                position += 1
                sent += 1
            last_write = time.monotonic()


def _frame(event: CronEvent) -> bytes:
    data = json.dumps(cron_record(event), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.event}\ndata: {data}\n\n".encode()


def cron_record(e: CronEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": e.seq, "id": e.id, "job": e.job.name, "host": e.job.host, "event": e.event,
                           "run_id": e.run_id, "at": iso(e.at)}
    if e.event != "started":
        out["duration_ms"] = e.duration_ms
        out["exit_code"] = e.exit_code
        out["message"] = e.message
    return out


def _int(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def _float(value: str | None, name: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    if not number >= 0:
        raise ValueError(f"{name} must not be negative")
    return number
