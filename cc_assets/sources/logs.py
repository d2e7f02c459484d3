"""Log lines: a run first tails the log files into the landing log, then lands the day's lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from cc_assets.partitions import Window
from cc_assets.raw import PULL_BUDGET_S, Fetch, RawSpec, from_landing
from cc_events.registry import RAW_TABLES
from cc_events.sources.logs import log_event_id
from resources.ingest.log_tailer import LogTailer
from resources.platform import PlatformResource
from resources.storage.landing import LandingLog

LOGS_STREAM = "logs"


def pull_logs(platform: PlatformResource) -> int:
    """Move every new log line into the landing log; the tailer's cursor is committed after."""
    settings = platform.settings()
    landing = LandingLog(settings.landing_dir)
    tailer = LogTailer(settings.log_patterns, platform.cursors())
    pulled = 0
    deadline = time.monotonic() + PULL_BUDGET_S
    try:
        while True:
            batch = tailer.read_batch(5000)
            records = [{**r, "id": log_event_id(r)} for r in batch.records]
            if records:
                landing.append(LOGS_STREAM, records, datetime.utcnow())
                pulled += len(records)
            tailer.commit(batch)
            if not records or time.monotonic() > deadline:  # a file written faster than read: next run
                return pulled
    finally:
        tailer.close()


def fetch_logs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    days = [*window.days, window.days[-1] + timedelta(days=1)]
    yield from from_landing(platform, LOGS_STREAM, days, lambda r: r.get("id"))


SPECS = [RawSpec(RAW_TABLES["logs", "lines"], fetch_logs, "received_at",
                 pull=lambda platform, log: f"tailed {pull_logs(platform)} new log line(s)")]
