"""Cron job runs (started, succeeded, failed; docs/contract_sources.md), polled from the runner's
log or pushed to `POST /events` as `cron.event`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import parse_time, require
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

CRON_EVENTS = ("started", "succeeded", "failed")


def cron_event(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "job", "event", "run_id", "at")
    kind, run_id, job = str(record["event"]), str(record["run_id"]), str(record["job"])
    if kind not in CRON_EVENTS:
        raise InvalidRecord(f"event: not one of {', '.join(CRON_EVENTS)}: {kind!r}")
    host = str(record.get("host") or "")
    payload = {k: record.get(k) for k in ("seq", "job", "host", "run_id", "duration_ms", "exit_code", "message")}
    started_id = f"cron:run:{run_id}:started"
    event = NormalizedEvent(
        f"cron:run:{run_id}:{kind}", parse_time(record["at"], "at"), "cron", f"cron.job.{kind}",
        Actor(id=f"cron:{job}", name=job, type="bot"), Target("job", run_id, job, ""), payload,
        parent_event_id=None if kind == "started" else started_id, tags=tuple(t for t in (job, host) if t))
    return [event]


RAW_TABLES = (
    RawTable("cron", "events", (
        col("seq", "int", required=True), col("id", "str", required=True), col("job", "str", required=True),
        col("host", "str"), col("run_event", "str", "event", required=True),
        col("run_id", "str", required=True), col("occurred_at", "time", "at", required=True),
        col("duration_ms", "int"), col("exit_code", "int"), col("message", "str"),
    ), "Cron job run events (started, succeeded, failed) in the order the runner logged them."),
)


SOURCE = Source("cron", RAW_TABLES, normalizers={"events": cron_event}, pushed_kinds={"cron.event": "events"})
