"""`make bench`: the pipeline's wall time and rows at several sandbox scales, DuckDB and Postgres.

Usage: python -m scripts.bench [--events 5000,1000000] [--days 7] [--targets duckdb,postgres]
Each scale gets a fresh data folder (and a fresh Postgres database); the sandbox generation is
timed apart from the pipeline. Prints one table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
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
    # A range run records one materialization per partition, each with the run's totals.
    events = next(m.metadata["events_in_run"].value
                  for m in ingest.asset_materializations_for_node("normalized_events")
                  if "events_in_run" in m.metadata)
    return t1 - t0, t2 - t1, events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default="5000,1000000")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--targets", default="duckdb,postgres")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from resources.settings import Settings
    from resources.warehouse import mart_counts
    from sandbox.process import run_sandbox

    admin_url = args.pg_url or Settings.from_env().pg_url
    end = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
    days = [(end - timedelta(days=n)).date() for n in range(args.days, -1, -1)]
    rows = []
    for scale in [int(s) for s in args.events.split(",")]:
        with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
            t0 = time.perf_counter()
            with run_sandbox(Path(tmp) / "sandbox", events=scale, days=args.days, end=end,
                             rate_limit=10_000_000) as sandbox:
                generate_s = time.perf_counter() - t0
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
                        ingest_s, dbt_s, events = _run(defs, platform, days)
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


if __name__ == "__main__":
    main()
