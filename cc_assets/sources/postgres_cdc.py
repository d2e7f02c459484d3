"""Postgres changes: a run first pulls the replication slot into the landing log, then lands them."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg

from cc_assets.partitions import Window
from cc_assets.raw import PULL_BUDGET_S, Fetch, RawSpec, from_landing
from cc_events.registry import RAW_TABLES
from resources.ingest.cdc import CdcReader
from resources.ingest.pgoutput import parse_lsn
from resources.platform import PlatformResource
from resources.storage.landing import LandingLog

CDC_STREAM = "postgres_cdc"


def pull_postgres_cdc(platform: PlatformResource, log: logging.Logger) -> int:
    """Move every change waiting in the replication slot into the landing log; returns how many.

    A batch is confirmed to Postgres only after its lines are fsynced in the landing log, so a
    crash anywhere replays it and the landing dedupes on (commit_lsn, seq)."""
    settings = platform.settings()
    if not settings.cdc_pg_url:
        log.info("the CDC source is not configured (set CC_CDC_PG_URL to follow a Postgres database)")
        return 0
    landing = LandingLog(settings.landing_dir)
    cursors = platform.cursors()
    pulled = 0
    deadline = time.monotonic() + PULL_BUDGET_S
    # Under a steady write load the slot is never empty: a run lands what was committed before it
    # began (and whatever else arrives meanwhile), and leaves the rest to the next run.
    with psycopg.connect(settings.cdc_pg_url, connect_timeout=10) as conn:
        target = parse_lsn(conn.execute("select pg_current_wal_lsn()::text").fetchone()[0])
    with CdcReader(settings.cdc_pg_url, settings.cdc_slot, settings.cdc_publication, cursors,
                   tables=settings.cdc_tables or None) as reader:
        while True:
            batch = reader.read_batch(max_changes=5000, timeout_s=1.0)
            if batch.reset:
                # A fresh snapshot replaces whatever this slot landed before.
                shutil.rmtree(landing.root / CDC_STREAM, ignore_errors=True)
            if batch.changes:
                landing.append(CDC_STREAM, batch.changes, datetime.utcnow())
                pulled += len(batch.changes)
            reader.confirm(batch)
            if not batch.changes:  # caught up (the rest arrives on the next run)
                return pulled
            if reader.in_snapshot:
                continue
            if batch.position is not None and batch.position.lsn >= target:
                return pulled  # every transaction committed before the pull began has landed
            if time.monotonic() > deadline:
                log.info("pull budget of %.0f s spent; the rest waits for the next run", PULL_BUDGET_S)
                return pulled


def fetch_postgres_cdc(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # A change committed late on a day can land just after midnight: read one day more.
    days = [*window.days, window.days[-1] + timedelta(days=1)]
    yield from from_landing(platform, CDC_STREAM, days, lambda r: (r.get("commit_lsn"), r.get("seq")))


SPECS = [RawSpec(RAW_TABLES["postgres_cdc", "changes"], fetch_postgres_cdc, "committed_at",
                 pull=lambda platform, log: f"pulled {pull_postgres_cdc(platform, log)} change(s) from the replication slot")]
