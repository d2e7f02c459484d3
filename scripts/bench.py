"""`make bench`: the pipeline's wall time and rows at several sandbox scales, DuckDB and Postgres.

Usage: python -m scripts.bench [--events 5000,1000000] [--days 7] [--targets duckdb,postgres]
Each scale gets a fresh data folder (and a fresh Postgres database); the sandbox generation is
timed apart from the pipeline. Prints one table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql


def _run(defs, platform, days):
    from dagster import DagsterInstance

    tags = {"dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat()}
    with DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=tags, resources={"platform": platform}, raise_on_error=True)
        t1 = time.perf_counter()
        defs.resolve_job_def("transform_job").execute_in_process(
            instance=instance, resources={"platform": platform}, raise_on_error=True)
        t2 = time.perf_counter()
        per_source = _per_source(instance, ingest)
    # A range run records one materialization per partition, each with the run's totals.
    events = next(m.metadata["events_in_run"].value
                  for m in ingest.asset_materializations_for_node("normalized_events")
                  if "events_in_run" in m.metadata)
    return t1 - t0, t2 - t1, events, per_source


def _per_source(instance, result) -> dict[str, tuple[int, float]]:
    """Records landed and seconds spent per source: its raw assets' rows and their steps' wall time."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.all_logs(result.run_id):
        event = record.dagster_event
        if event is None or not event.step_key or not event.step_key.startswith("raw__"):
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] = record.timestamp - started[event.step_key]
    out: dict[str, tuple[int, float]] = {}
    for step, spent in seconds.items():
        source = step.split("__")[1]
        rows = next((m.metadata["rows_in_run"].value for m in result.asset_materializations_for_node(step)
                     if "rows_in_run" in m.metadata), 0)
        landed, total = out.get(source, (0, 0.0))
        out[source] = (landed + rows, total + spent)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default="5000,1000000")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--targets", default="duckdb,postgres")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()

    end = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
    days = [(end - timedelta(days=n)).date() for n in range(args.days, -1, -1)]
    # Every world starts empty: its partitions start at its first day (cc_assets/catalog.py).
    os.environ.setdefault("CC_PARTITIONS_START", days[0].isoformat())
    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from resources.settings import Settings
    from resources.storage.warehouse import mart_counts
    from sandbox.process import run_sandbox

    admin_url = args.pg_url or Settings.from_env().pg_url
    rows = []
    rates = []
    for scale in [int(s) for s in args.events.split(",")]:
        with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
            t0 = time.perf_counter()
            with run_sandbox(Path(tmp) / "sandbox", events=scale, days=args.days, end=end,
                             rate_limit=10_000_000) as sandbox:
                generate_s = time.perf_counter() - t0
                # Measure the pipeline, not the APIs' budgets: lift Linear's as rate_limit lifts GitHub's (REST and GraphQL).
                sandbox.set_limits(linear_requests=10**9, linear_complexity=10**12)
                for target in args.targets.split(","):
                    data_dir = Path(tmp) / f"data-{target}"
                    db = None
                    pg_url = None
                    if target == "postgres":
                        db = f"cc_bench_{uuid.uuid4().hex[:8]}"
                        with psycopg.connect(admin_url, autocommit=True) as conn:
                            conn.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
                        pg_url = f"{admin_url.rsplit('/', 1)[0]}/{db}"
                    try:
                        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url,
                                                    warehouse=target, pg_url=pg_url)
                        ingest_s, dbt_s, events, per_source = _run(defs, platform, days)
                        rates.append((scale, target, per_source))
                        if target == "duckdb":
                            workflows = mart_counts(data_dir / "warehouse.duckdb")["fct_workflows"]
                        else:
                            with psycopg.connect(pg_url) as conn:
                                workflows = conn.execute("select count(*) from analytics.fct_workflows").fetchone()[0]
                    finally:
                        if db:
                            with psycopg.connect(admin_url, autocommit=True) as conn:
                                conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                                    sql.Identifier(db)))
                    rows.append((scale, target, generate_s, ingest_s, dbt_s, events, workflows))
                    print(f"scale={scale:,} target={target}: sandbox {generate_s:.1f}s, ingest {ingest_s:.1f}s, "
                          f"dbt build {dbt_s:.1f}s, {events:,} events, {workflows:,} workflows", flush=True)
    print()
    print("| sandbox events | target | sandbox start | ingest (land + normalize) | dbt build + test | events | workflows |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for scale, target, gen, ing, dbt_s, events, workflows in rows:
        print(f"| {scale:,} | {target} | {gen:.1f} s | {ing:.1f} s | {dbt_s:.1f} s | {events:,} | {workflows:,} |")
    print()
    print("Landing rate per source (records landed / wall time of its raw assets' steps):")
    print("| sandbox events | target | source | records | seconds | records/s |")
    print("|---:|---|---|---:|---:|---:|")
    for scale, target, per_source in rates:
        for source, (landed, spent) in sorted(per_source.items()):
            rate = landed / spent if spent else 0.0
            print(f"| {scale:,} | {target} | {source} | {landed:,} | {spent:.1f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
