"""A big window is normalized a day per worker process: the lake and Postgres end up with exactly
what the same days normalized in one process give, dead letters included."""

from __future__ import annotations

import shutil
import uuid
from datetime import date, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cc_assets import normalizing
from cc_events import NormalizeContext
from cc_events.raw_tables import raw_json
from cc_events.registry import RAW_TABLES
from resources.storage.lake import Lake, raw_schema

DAYS = [date(2026, 11, 17) + timedelta(days=n) for n in range(3)]
INGESTED = datetime(2026, 11, 20, 12)
CRON = RAW_TABLES["cron", "events"]


def cron_records(day: date, runs: int) -> list[dict]:
    records = []
    for run in range(runs):
        at = datetime.combine(day, datetime.min.time()) + timedelta(minutes=run)
        for seq, kind in enumerate(("started", "failed" if run % 5 == 0 else "succeeded")):
            records.append({"seq": run * 2 + seq, "id": f"{day}-{run}-{kind}", "job": f"job-{run % 7}",
                            "host": "h1", "event": kind, "run_id": f"{day}-{run}", "at": at.isoformat() + "Z",
                            "duration_ms": 1000 + run, "exit_code": 0, "message": 'quoted "text", with\nlines'})
    # One record the normalizer refuses: it lands, but becomes a dead letter of the normalized table.
    records.append({**records[0], "id": f"{day}-bad", "event": "exploded"})
    return records


def land_raw(lake: Lake) -> None:
    for n, day in enumerate(DAYS):
        rows = []
        for record in cron_records(day, 40 + n):
            row = CRON.flatten(record)
            row["_raw"] = raw_json(record)
            rows.append(row)
        lake.write(("raw", "cron", "events"), day, rows, raw_schema(CRON), INGESTED)


def normalized_files(lake: Lake) -> dict[str, list[dict]]:
    found = {}
    for path in sorted(lake.root.glob("normalized/*/date=*/part-0.parquet")) + sorted(
            lake.root.glob("dead_letter/normalized/*/date=*/part-0.parquet")):
        found[str(path.relative_to(lake.root))] = pq.read_table(path).to_pylist()
    return found


@pytest.fixture
def own_database(pg_admin_url):
    """A database of this test's own: the workers load into its `raw` schema, as a deployment's do."""
    name = f"cc_test_norm_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def pg_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select * from raw.normalized__events order by event_id").fetchall()


@pytest.mark.postgres
def test_a_pool_of_workers_writes_what_one_process_writes(tmp_path, own_database, monkeypatch):
    in_process, pooled = Lake(tmp_path / "one" / "lake"), Lake(tmp_path / "pool" / "lake")
    land_raw(in_process)
    shutil.copytree(in_process.root, pooled.root)
    monkeypatch.setattr(normalizing, "POOL_MIN_RECORDS", 0)  # three small days are worth a pool here
    assert normalizing.pool_size(2, len(DAYS), normalizing.raw_records(pooled, DAYS)) == 2
    ctx = NormalizeContext()

    one = normalizing.normalize_days(in_process, own_database, ctx, DAYS, INGESTED, workers=1)
    loaded_in_process = pg_rows(own_database)
    with psycopg.connect(own_database) as conn:
        conn.execute("drop schema raw cascade")  # the pool starts from an empty warehouse too
    pool = normalizing.normalize_days(pooled, own_database, ctx, DAYS, INGESTED, workers=2)

    assert one == pool
    assert [d.day for d in pool] == DAYS and all(d.events > 0 and d.dead_letters == 1 for d in pool)
    assert normalized_files(in_process) == normalized_files(pooled)
    assert pg_rows(own_database) == loaded_in_process
    assert len(loaded_in_process) == sum(d.events for d in pool)
