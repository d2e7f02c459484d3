"""A (re)started worker's live events: what every worker landed lately, read back from the landing
files (or the shared landing in Postgres, every host's), so its REST reads and live workflow state
match its peers' instead of starting empty.

The live store is in memory: a worker the supervisor restarted after a crash (or any sidecar
restarted) used to serve only the events it received from then on until the next build. Now it
normalizes the deliveries landed within `CATCH_UP_S` before it subscribed (at most the newest
`CATCH_UP_MAX` of each landing file) before it takes a connection (`streaming/app.py`; its peers
take them meanwhile), in received order, beside the live messages it already receives: an event
the live path already holds wins (it is as new or newer), and the marts are asked again
which of the events they hold (`Serving.resync`), as after a build. Nothing goes to the rooms:
clients got these events when they happened.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cc_events.registry import normalize_delivery
from cc_events.sources.webhooks import LANDING_STREAM
from resources.storage.landing import LandingLog
from streaming.live import event_dict
from streaming.state.workflows import carried_by
from streaming.webhooks import Delivery

# The sidecar (streaming.sidecar.Sidecar) that calls in here: not imported, even for typing, as it
# imports this module (tests/cc_events/test_no_cycles.py).
Sidecar = Any

log = logging.getLogger(__name__)

CATCH_UP_S = 3600.0
CATCH_UP_MAX = 50_000
CHUNK = 200  # deliveries normalized between two turns of the event loop
_RECEIVED = re.compile(rb'"_received_at":"([^"]+)"')


def recent(landing_root: Path, stream: str, since: datetime, until: datetime,
           limit: int = CATCH_UP_MAX) -> list[tuple[datetime, dict[str, Any]]]:
    """Every writer's records received in [since, until), oldest first, at most `limit` of each
    file (its newest), read from the files' ends back."""
    log_ = LandingLog(landing_root)
    found: list[tuple[datetime, dict[str, Any]]] = []
    low, high = since.isoformat().encode(), until.isoformat().encode()
    day = since.date()
    while day <= until.date():
        for path in log_.files(stream, day):
            found += _read_back(path, low, high, limit)
        day = date.fromordinal(day.toordinal() + 1)
    found.sort(key=lambda item: item[0])
    return found


def _read_back(path: Path, low: bytes, high: bytes, limit: int) -> list[tuple[datetime, dict[str, Any]]]:
    out: list[tuple[datetime, dict[str, Any]]] = []
    with path.open("rb") as handle:
        if not handle.seek(0, 2):
            return out
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            newline = data.rfind(b"\n")
            while newline > 0 and len(out) < limit:
                start = data.rfind(b"\n", 0, newline) + 1
                line = data[start:newline]
                newline = start - 1
                stamp = _RECEIVED.search(line)
                if stamp is None:
                    continue
                if stamp.group(1) < low:
                    break
                if stamp.group(1) >= high:
                    continue
                try:
                    record = orjson.loads(line)
                    out.append((datetime.fromisoformat(stamp.group(1).decode()), record))
                except (orjson.JSONDecodeError, ValueError):
                    continue
    return out


def recent_shared(landing: Any, stream: str, since: datetime, until: datetime,
                  limit: int = CATCH_UP_MAX) -> list[tuple[datetime, dict[str, Any]]]:
    """`recent` from the shared landing in Postgres (`PgLanding.recent`)."""
    found = []
    for at, line in landing.recent(stream, since, until, limit):
        try:
            found.append((at, orjson.loads(line)))
        except orjson.JSONDecodeError:
            continue
    return found


async def catch_up(sidecar: Sidecar, until: datetime) -> int:
    """The events of the deliveries landed in the last `CATCH_UP_S` before `until` (when this worker
    subscribed) into its live store and state, a chunk per turn of the event loop; how many."""
    since = until - timedelta(seconds=CATCH_UP_S)
    if sidecar.shared_landing:  # every replica's, on every host
        lines = await asyncio.to_thread(recent_shared, sidecar.landing, LANDING_STREAM, since, until)
    else:
        lines = await asyncio.to_thread(recent, sidecar.settings.landing_dir, LANDING_STREAM, since, until)
    ours: set[str] = set()  # events this catch-up added: a later copy of one replaces it
    kept = 0
    for first in range(0, len(lines), CHUNK):
        kept += _take(sidecar, lines[first:first + CHUNK], ours)
        await asyncio.sleep(0)
    if kept and sidecar.serving is not None:
        sidecar.serving.resync()
    if lines:
        log.info("caught up %d live events from %d landed deliveries", kept, len(lines))
    return kept


def _take(sidecar: Sidecar, lines: list[tuple[datetime, dict[str, Any]]], ours: set[str]) -> int:
    rows, carried = [], []
    for at, record in lines:
        delivery = Delivery(str(record.get("source")), str(record.get("delivery_id")), str(record.get("event")),
                            record.get("payload"), record.get("action"), record.get("repo"))
        sidecar.learn_team(delivery)
        try:
            events = normalize_delivery(delivery.source, delivery.event, delivery.payload, sidecar.context)
        except Exception:  # noqa: BLE001 - a dead letter when it landed, and still
            continue
        live = {e["event_id"] for e in sidecar.live.get(e.id for e in events)} - ours
        for event in events:
            if event.id not in live:  # else the live path has it, as new or newer
                rows.append(event_dict(event, at, sidecar.correlator.workflow_for))
                ours.add(event.id)
        carried += carried_by(delivery, at)
    sidecar.live.add(rows)
    sidecar.state.note([r["event_id"] for r in rows], carried)
    return len(rows)
