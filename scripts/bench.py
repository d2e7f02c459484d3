"""`make bench`: the real pipeline, stage by stage, at several sandbox sizes, on DuckDB and Postgres.

Usage: python -m scripts.bench [--events 5000,1000000] [--days 7] [--targets duckdb,postgres]
       [--no-tiers] [--pg-url URL]          (`make bench SIZE=10000000` sets --events)

Each size gets a fresh sandbox world (its generation is timed apart, with the sandbox's memory),
and each target a fresh data folder (and a fresh Postgres database). The stages are the jobs a
deployment runs: `ingest_job` (landing per source, then normalize), `transform_job` (dbt build and
tests), then the tier moves (cold + warm over the window, hot over its last day, archive per
month). Per stage: wall time, records (or events) per second, and the peak resident memory of
this process and its children (dbt, normalize workers; the sandbox apart). The end checks the
warehouse against the generator's ground truth. With two or more sizes a growth table says how
each stage's time grew against the size. Prints tables; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from scripts.benchlib import MemorySampler

MIB = 2**20


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    records: int = 0  # what the stage moved: records landed, events normalized or built
    windows: list[tuple[float, float]] = field(default_factory=list)  # (start, end) in time.time()
    peak_rss: int = 0


@dataclass
class Run:
    size: int
    target: str
    events: int
    workflows: int
    exact: bool
    stages: list[Stage]
    overhead_s: float  # ingest wall time no step accounts for: Dagster's own (run start, events)


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _steps(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) wall time from the run's event log."""
    started, spans = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            spans[event.step_key] = (started[event.step_key], record.timestamp)
    return spans


def _metadata_value(result, step: str, name: str) -> int:
    return next((m.metadata[name].value for m in result.asset_materializations_for_node(step)
                 if name in m.metadata), 0)


def _ingest_stages(instance, result) -> tuple[list[Stage], int]:
    """Landing per source (its raw assets' steps), the delivered records, then normalize."""
    stages: dict[str, Stage] = {}
    spans = _steps(instance, result.run_id)
    for step, (start, end) in sorted(spans.items(), key=lambda kv: kv[1]):
        if step.startswith("raw__"):
            name, records = f"land {step.split('__')[1]}", _metadata_value(result, step, "rows_in_run")
        elif step == "delivered_records":
            name, records = "land webhooks", 0
        elif step == "normalized_events":
            name, records = "normalize", _metadata_value(result, step, "events_in_run")
        else:
            name, records = step, 0
        stage = stages.setdefault(name, Stage(name))
        stage.seconds += end - start
        stage.records += records
        stage.windows.append((start, end))
    events = stages["normalize"].records if "normalize" in stages else 0
    landing = sorted((s for s in stages.values() if s.name.startswith("land ")), key=lambda s: s.name)
    return [*landing, *(s for s in stages.values() if not s.name.startswith("land "))], events


def _timed_job(defs, job: str, platform, instance, name: str, events: int, **kwargs) -> Stage:
    start = time.time()
    defs.resolve_job_def(job).execute_in_process(instance=instance, resources={"platform": platform},
                                                 raise_on_error=True, **kwargs)
    end = time.time()
    return Stage(name, end - start, events, [(start, end)])


def run_target(defs, target: str, data_dir: Path, sandbox, days: list[date], end: datetime,
               pg_url: str | None, tiers: bool, sampler: MemorySampler) -> tuple[list[Stage], int, float, int, bool]:
    from dagster import DagsterInstance

    from resources.platform import PlatformResource
    from resources.storage.warehouse import compare_with_truth, mart_counts, open_warehouse

    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse=target, pg_url=pg_url)
    with DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=_range_tags(days[0].isoformat(), days[-1].isoformat()),
            resources={"platform": platform}, raise_on_error=True)
        stages, events = _ingest_stages(instance, ingest)
        overhead = time.perf_counter() - t0 - sum(s.seconds for s in stages)
        stages.append(_timed_job(defs, "transform_job", platform, instance, "dbt build", events))
        if tiers:
            tier = Stage("tiers", records=events)
            last = end.replace(minute=0) - timedelta(hours=1)
            months = sorted({d.replace(day=1).isoformat() for d in days})
            for job, kwargs in [("tiers_daily_job", {"tags": _range_tags(days[0].isoformat(), days[-1].isoformat())}),
                                ("hot_job", {"tags": _range_tags(f"{last - timedelta(hours=23):%Y-%m-%d-%H}:00",
                                                                 f"{last:%Y-%m-%d-%H}:00")}),
                                *[("archive_job", {"partition_key": m}) for m in months]]:
                part = _timed_job(defs, job, platform, instance, job, events, **kwargs)
                tier.seconds += part.seconds
                tier.windows += part.windows
            stages.append(tier)
    for stage in stages:
        stage.peak_rss = max((sampler.peak(s, e)[0] for s, e in stage.windows), default=0)
    with open_warehouse(platform.settings()) as con:
        workflows = mart_counts(con).get("fct_workflows", 0)
        exact = compare_with_truth(con, sandbox.truth_path, sandbox.agents_truth_path).exact
    return stages, events, overhead, workflows, exact


def _database(admin_url: str) -> tuple[str, str]:
    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return name, f"{admin_url.rsplit('/', 1)[0]}/{name}"


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def print_tables(runs: list[Run], worlds: dict[int, tuple[float, int]]) -> None:
    print("\nSandbox worlds (generated before the pipeline; not part of its time):")
    print("| sandbox events | generation | sandbox peak RSS |")
    print("|---:|---:|---:|")
    for size, (seconds, rss) in worlds.items():
        print(f"| {size:,} | {seconds:.1f} s | {rss / MIB:,.0f} MiB |")
    print("\n| sandbox events | target | events | stage | seconds | records | records/s | peak RSS |")
    print("|---:|---|---:|---|---:|---:|---:|---:|")
    for run in runs:
        for s in run.stages:
            rate = f"{s.records / s.seconds:,.0f}" if s.seconds and s.records else "–"
            print(f"| {run.size:,} | {run.target} | {run.events:,} | {s.name} | {s.seconds:.1f} | {s.records:,} "
                  f"| {rate} | {s.peak_rss / MIB:,.0f} MiB |")
        ingest = sum(s.seconds for s in run.stages if s.name.startswith("land ") or s.name == "normalize")
        print(f"| {run.size:,} | {run.target} | {run.events:,} | **ingest** (land + normalize; "
              f"+{run.overhead_s:.1f} s Dagster) | {ingest + run.overhead_s:.1f} | | | |")
    print("\n| sandbox events | target | workflows | correlation with the ground truth |")
    print("|---:|---|---:|---|")
    for run in runs:
        print(f"| {run.size:,} | {run.target} | {run.workflows:,} | {'exact' if run.exact else 'NOT exact'} |")
    by_target = defaultdict(list)
    for run in runs:
        by_target[run.target].append(run)
    growth = [(a, b) for rs in by_target.values() for a, b in zip(rs, rs[1:], strict=False) if a.events]
    if growth:
        print("\nGrowth between sizes (time ratio against the events ratio; 1.0x per 1.0x is linear):")
        print("| target | from → to events | events ratio | stage | time ratio | peak RSS ratio |")
        print("|---|---|---:|---|---:|---:|")
        for a, b in growth:
            ratio = b.events / a.events
            before = {s.name: s for s in a.stages}
            for s in b.stages:
                old = before.get(s.name)
                if old and old.seconds:
                    rss = f"{s.peak_rss / old.peak_rss:.1f}x" if old.peak_rss else "–"
                    print(f"| {b.target} | {a.events:,} → {b.events:,} | {ratio:.1f}x | {s.name} "
                          f"| {s.seconds / old.seconds:.1f}x | {rss} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default="5000,1000000", help="sandbox sizes, comma-separated")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--targets", default="duckdb,postgres")
    parser.add_argument("--no-tiers", dest="tiers", action="store_false", help="stop after the dbt build")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()

    end = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
    days = [(end - timedelta(days=n)).date() for n in range(args.days, -1, -1)]
    # Every world starts empty: its partitions start at its first day (cc_assets/catalog.py).
    os.environ.setdefault("CC_PARTITIONS_START", days[0].isoformat())
    os.environ.setdefault("CC_DBT_CATALOG_METADATA", "false")  # seconds per build, and not the pipeline's
    from cc_assets.definitions import defs
    from resources.settings import Settings
    from sandbox.process import run_sandbox

    admin_url = args.pg_url or Settings.from_env().pg_url
    runs: list[Run] = []
    worlds: dict[int, tuple[float, int]] = {}
    for size in [int(s) for s in args.events.replace("_", "").split(",")]:
        with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp, MemorySampler() as sampler:
            t0, started = time.perf_counter(), time.time()
            with run_sandbox(Path(tmp) / "sandbox", events=size, days=args.days, end=end,
                             rate_limit=10_000_000, ready_timeout=120 + size / 2_000) as sandbox:
                sampler.apart.add(sandbox.pid)
                generated = time.perf_counter() - t0
                time.sleep(2 * sampler.interval_s)  # a sample of the sandbox as it serves
                worlds[size] = (generated, sampler.peak(started)[1])
                print(f"size={size:,}: sandbox generated in {generated:.1f}s", flush=True)
                # Measure the pipeline, not the APIs' budgets: lift Linear's as rate_limit lifts GitHub's (REST and GraphQL).
                sandbox.set_limits(linear_requests=10**9, linear_complexity=10**12)
                for target in args.targets.split(","):
                    db, pg_url = _database(admin_url) if target == "postgres" else (None, None)
                    try:
                        stages, events, overhead, workflows, exact = run_target(
                            defs, target, Path(tmp) / f"data-{target}", sandbox, days, end, pg_url, args.tiers,
                            sampler)
                    finally:
                        if db:
                            _drop(admin_url, db)
                    runs.append(Run(size, target, events, workflows, exact, stages, overhead))
                    # Each stage's time and peak as soon as the target is done: a long run's first
                    # target is readable while the next one runs.
                    summary = ", ".join(f"{s.name} {s.seconds:.1f}s {s.peak_rss / MIB:,.0f} MiB" for s in stages)
                    print(f"size={size:,} target={target}: {events:,} events, {workflows:,} workflows, "
                          f"correlation {'exact' if exact else 'NOT exact'}; sandbox peak "
                          f"{sampler.peak(started)[1] / MIB:,.0f} MiB; {summary}", flush=True)
            worlds[size] = (generated, max(worlds[size][1], sampler.peak(started)[1]))
    print_tables(runs, worlds)


if __name__ == "__main__":
    main()
