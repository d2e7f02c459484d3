"""`make demo`: the whole platform once, on the embedded default, with nothing but Python.

Starts the sandbox sources on loopback, lands every source for the last few days (one Dagster
run for the whole range, recorded in the instance that `make ui` shows), builds and tests the
dbt project on DuckDB, stops the sandbox and prints what was built and where.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _cdc_source(stack: contextlib.ExitStack, settings) -> str:
    """The business database to follow: CC_CDC_PG_URL, else a throwaway sandbox cluster."""
    from sandbox.pg_cluster import PgClusterError, find_pg_bin, throwaway_cluster
    from sandbox.source_db import ChangeGenerator, setup_source_db

    if settings.cdc_pg_url:
        return f"following {settings.cdc_pg_url.split('@')[-1]}"
    if find_pg_bin() is None:
        return "not configured (no CC_CDC_PG_URL and no PostgreSQL server binaries for a sandbox database)"
    try:
        dsn = stack.enter_context(throwaway_cluster())
    except PgClusterError as exc:
        return f"not configured (the sandbox database did not start: {exc})"
    setup_source_db(dsn)
    ChangeGenerator(dsn).run(200)  # trades, todos and signals moving after the snapshot
    os.environ["CC_CDC_PG_URL"] = dsn
    return "sandbox business database (throwaway wal_level=logical cluster)"


DEMO_MARK = ".cc-demo"


class Steps:
    """The demo's steps, a line each: a spinner while one runs on a terminal, plain lines elsewhere
    (no control codes in files). What a step prints itself — dbt's line per node, Dagster's
    warnings — goes to `log_path`, which a failing step names."""

    def __init__(self, log_path: Path) -> None:
        from rich.console import Console

        self.console = Console(file=sys.stdout, highlight=False)
        self.log_path = log_path

    def say(self, text: str = "") -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        spinner = self.console.status(title) if self.console.is_terminal else contextlib.nullcontext()
        try:
            with self.log_path.open("a") as log, spinner, contextlib.redirect_stdout(log), \
                    contextlib.redirect_stderr(log):
                print(f"\n=== {title}", flush=True)
                yield
        except BaseException:
            self.say(f"✗ {title} ({time.perf_counter() - t0:.1f}s): its output is in {self.log_path}")
            raise
        self.say(f"✓ {title} ({time.perf_counter() - t0:.1f}s)")


def dbt_summary(result) -> str:
    """What a dbt build did, in one line: models materialized, tests passed and failed."""
    built = [m for m in result.get_asset_materialization_events()
             if m.asset_key.path[0] not in ("serving", "raw", "normalized")]
    checks = result.get_asset_check_evaluations()
    failed = [c for c in checks if not c.passed]
    line = f"{len(built)} models built, {len(checks)} tests: {len(checks) - len(failed)} passed, {len(failed)} failed"
    if failed:
        line += " (" + ", ".join(f"{c.asset_key.to_user_string()}:{c.check_name}" for c in failed[:5]) + ")"
    return line


def _fresh_data_dir(settings) -> None:
    """Start from an empty data folder: the sandbox generates a new world on every run, and the
    cursors, ETags and partitions of the last run's world would be merged into this one's.
    Only a folder the demo wrote (or the default one) is emptied; any other must be empty."""
    from resources.settings import DEFAULT_DATA_DIR

    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / DEMO_MARK).exists() and data_dir != DEFAULT_DATA_DIR:
            raise SystemExit(f"{data_dir} holds data the demo did not write; point CC_DATA_DIR at an empty folder")
        for child in data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARK).write_text("written by `make demo`; emptied by the next run\n")


def lake_rows(lake_dir) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {
        "/".join(folder.relative_to(lake_dir / "raw").parts): sum(
            pq.read_metadata(f).num_rows for f in folder.glob("date=*/part-0.parquet"))
        for folder in sorted((lake_dir / "raw").glob("*/*"))
    }


def move_tiers(defs, instance, run_config, days, now) -> list[str] | None:
    """Run each tier job once over the demo's days and say what each moved (None if one failed)."""
    from collections import Counter

    def run(job: str, **kwargs):
        result = defs.resolve_job_def(job).execute_in_process(run_config=run_config, instance=instance,
                                                              raise_on_error=False, **kwargs)
        if not result.success:
            print(f"{job} failed; see the run in `make ui`", file=sys.stderr)
            return None
        return {m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
                for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}

    span = {"dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat()}
    hour = now.replace(minute=0)
    results = [
        run("tiers_daily_job", tags=span),
        run("hot_job", tags={"dagster/asset_partition_range_start": f"{hour - timedelta(hours=2):%Y-%m-%d-%H}:00",
                             "dagster/asset_partition_range_end": f"{hour:%Y-%m-%d-%H}:00"}),
        *[run("archive_job", partition_key=month) for month in sorted({d.replace(day=1).isoformat() for d in days})],
        run("retention_job"),
    ]
    if any(r is None for r in results):
        return None
    daily, hot, *archives, retention = results
    cold = daily["cold/events"]
    lines = [f"hot      {hot['hot/events']['events']:>10,} events in the last 3 hours ({hot['hot/events']['backend']}, "
             f"TTL {hot['hot/events']['ttl_s']} s)",
             f"warm     fct_events + 1 min / 1 day rollups for {len(days)} days (dbt, per-day windows)",
             f"cold     {cold['rows_moved']:>10,} events in {len(cold['moved'])} daily files, {cold['bytes_written']:,} bytes "
             f"(landing {cold['landing_bytes']:,} bytes)"]
    for archive in archives:
        meta = archive["archive/events"]
        for month, rows in meta["moved"].items():
            lines.append(f"archive  {rows:>10,} events of {month} in one file, {meta['bytes_written']:,} bytes + manifest")
    dropped = Counter({key: len(meta["freed"]) for key, meta in retention.items()})
    lines.append(f"retention removed {sum(dropped.values())} partition(s) (everything is within CC_WARM_DAYS "
                 "and CC_COLD_DAYS)" if not sum(dropped.values()) else
                 f"retention removed {dict(dropped)} partition(s) past their retention")
    return lines


def weather_outage(settings, sandbox) -> str:
    """A real outage, so the demo shows the breaker's alert: the sandbox's weather API answers 503
    from now on, and the weather job's pull is tried until the source's circuit breaker opens."""
    from resources.http.client import SourceUnavailable
    from resources.platform import PlatformResource
    from resources.sources.weather import WeatherClient
    from sensors.triggers import circuit_breaker

    sandbox.set_faults([{"match": "/weather", "kind": "down"}])
    platform = PlatformResource(data_dir=str(settings.data_dir), sandbox_url=sandbox.url)
    breaker = circuit_breaker(platform, "weather")
    # One request per pull instead of the job's retries with backoff: the same five failures open
    # the circuit, in a fraction of a second rather than the quarter minute the backoff would wait.
    client = WeatherClient.from_settings(platform.settings().model_copy(update={"http_max_retries": 0}))
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    for _ in range(settings.circuit_failures):
        try:
            list(client.opportunities(since))
        except SourceUnavailable:
            if breaker.is_open():
                break
    return breaker.reason()


def check_alerts(settings) -> list:
    """Every rule the sidecar evaluates, once, over what the demo landed (as `make ui`'s sidecar
    does every 30 s); with what Dagster raised during the runs (dbt tests), the live alerts."""
    from cc_alerts.monitor import Monitor
    from cc_alerts.store import alert_store

    store = alert_store(settings)
    try:
        Monitor(store, settings).run_due()
        return store.list(state=["open", "acknowledged"], limit=1000)
    finally:
        store.close()


REPLAYED_RULES = ("cron_failed", "charlie_task_failed")


def replay_week(settings, start: datetime, end: datetime) -> list[str]:
    """The world's week as the cron and Charlie task rules would have seen it: evaluated hour by
    hour (their windows end at the clock they are given) into a store of its own, so the demo shows
    failures opening alerts and later successes resolving them, not only what is open at the end."""
    from collections import Counter

    from cc_alerts.monitor import Monitor
    from cc_alerts.rules import all_rules
    from cc_alerts.store import AlertStore

    path = settings.data_dir / "demo" / "alerts-replay.sqlite3"
    path.unlink(missing_ok=True)
    store = AlertStore(path)
    try:
        monitor = Monitor(store, settings, rules=[all_rules()[name] for name in REPLAYED_RULES])
        at = start
        while at <= end:
            monitor.run_due(at)
            at += timedelta(hours=1)
        notices = store.notices_after(0, 100_000)
    finally:
        store.close()
    counts = Counter((n.alert["rule"], n.transition) for n in notices)
    lines = []
    for rule in REPLAYED_RULES:
        example = next((n.alert for n in notices if n.alert["rule"] == rule and n.transition == "opened"), None)
        lines.append(f"  {rule}: {counts[rule, 'opened']} opened, {counts[rule, 'resolved']} resolved"
                     + (f"; e.g. {example['message'][:100]}..." if example else ""))
    return lines


def alert_lines(alerts: list) -> list[str]:
    """The live alerts, one line per rule, worst first: how many, the worst one's message, the other subjects."""
    from collections import defaultdict

    from cc_alerts.model import severity_rank

    by_rule: dict[str, list] = defaultdict(list)
    for alert in alerts:
        by_rule[alert.rule].append(alert)
    lines = []
    for rule, found in sorted(by_rule.items(), key=lambda kv: (-max(severity_rank(a.severity) for a in kv[1]), kv[0])):
        found.sort(key=lambda a: (-severity_rank(a.severity), a.subject))
        first = found[0]
        message = first.message if len(first.message) <= 100 else first.message[:97] + "..."
        others = f" (also {', '.join(a.subject_name for a in found[1:4])}{', ...' if len(found) > 4 else ''})" \
            if len(found) > 1 else ""
        lines.append(f"  {rule} x{len(found)}, {first.severity}: {message}{others}")
    return lines


class StepFailed(Exception):
    """A step's Dagster run failed: the message says where to look."""


def main() -> int:
    started = time.perf_counter()
    from resources.settings import Settings

    settings = Settings.from_env()
    if settings.warehouse == "postgres":
        # Before anything runs: unreachable, every Dagster step would fail with its own traceback.
        from scripts.preflight import check_postgres

        check_postgres(settings.pg_url, "CC_PG_URL", "start it or unset CC_WAREHOUSE")
    _fresh_data_dir(settings)
    steps = Steps(settings.data_dir / "logs" / "demo.log")
    try:
        return _run(settings, steps, started)
    except StepFailed as failed:
        steps.say(str(failed))
        return 1


def _execute(defs, job: str, instance, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        raise StepFailed(f"{job} failed in step(s) {', '.join(failed) or '?'}; see the run in `make ui`")
    return result


def _run(settings, steps: Steps, started: float) -> int:
    now = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
    days = [(now - timedelta(days=n)).date() for n in range(settings.demo_days, -1, -1)]
    steps.say(f"Command Center demo: {settings.demo_events:,} sandbox events over {settings.demo_days} days into {settings.data_dir} "
              f"(warehouse: {settings.warehouse})")
    with steps.step("Loading Dagster and the sources' clients"):
        from dagster import DagsterInstance

        from resources.ingest.metrics_agent import MetricsAgent
        from resources.storage.warehouse import compare_with_truth, mart_counts, open_warehouse
        from sandbox.logs import LogWriter
        from sandbox.process import run_sandbox


    # This host's metrics, through the agent's own delivery (`python -m resources.ingest.metrics_agent`):
    # to the sidecar at CC_SIDECAR_URL when CC_EVENTS_API_TOKEN is set (and, while none answers,
    # into its outbox for `make ui`'s agent to send); always into the landing log otherwise.
    agent = MetricsAgent(settings)
    try:
        agent.tick()
    finally:
        agent.close()

    # Application and system logs being written and rotated, as the sandbox's services would.
    if not settings.log_paths:
        writer = LogWriter(settings.data_dir / "logs", seed=7, start=now - timedelta(hours=1))
        writer.write(400)
        writer.rotate(writer.files[0])
        writer.write(200)
        writer.close()

    # Dagster's per-step debug lines are for the UI; the demo's log gets warnings only.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with contextlib.ExitStack() as stack:
        with steps.step("Starting the sandbox sources (GitHub, Linear, Charlie, agents, cron, weather, CDC)"):
            cdc = _cdc_source(stack, settings)
            sandbox = stack.enter_context(run_sandbox(settings.data_dir / "sandbox", events=settings.demo_events,
                                                      days=settings.demo_days, end=now))
            # The sources' URL is configuration like any other: the definitions read it from here.
            os.environ["CC_SANDBOX_URL"] = sandbox.url
            # The partitions start at the world's first day: the lake is still empty here (`make ui`
            # later finds the same day in it, cc_assets/catalog.py).
            os.environ.setdefault("CC_PARTITIONS_START", days[0].isoformat())
            from cc_assets.definitions import defs

            instance = DagsterInstance.get()
        steps.say(f"  CDC source: {cdc}")
        t0 = time.perf_counter()
        with steps.step(f"Landing every source, {days[0]} .. {days[-1]} (ingest_job, one run)"):
            _execute(defs, "ingest_job", instance, run_config=quiet,
                     tags={"dagster/asset_partition_range_start": days[0].isoformat(),
                           "dagster/asset_partition_range_end": days[-1].isoformat()})
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with steps.step(f"Building and testing the dbt project on {settings.warehouse} (transform_job)"):
            transform = _execute(defs, "transform_job", instance, run_config=quiet)
        transform_s = time.perf_counter() - t0
        steps.say(f"  dbt: {dbt_summary(transform)}")
        truth_paths = (sandbox.truth_path, sandbox.agents_truth_path)
        with steps.step("An outage: the sandbox's weather API goes down, its pulls fail until the breaker opens"):
            outage = weather_outage(settings, sandbox)
        steps.say(f"  {outage}")
    t0 = time.perf_counter()
    with steps.step("Moving the storage tiers once (hot, warm, cold, archive, retention)"):
        tiers = move_tiers(defs, instance, quiet, days, now)
        if tiers is None:
            raise StepFailed("a tier job failed; see the run in `make ui`")
        # transform_job wrote the analysts' catalog before the tiers moved: once more, with them.
        from resources.storage.catalog import write_catalog

        write_catalog(settings)
    tiers_s = time.perf_counter() - t0
    # Yesterday's operations report and its week's (Monday to Sunday, to date while it runs), as
    # `reports_after_build_sensor` asks for them once the builds have covered a period.
    yesterday = days[-2].isoformat()
    report_week = (days[-2] - timedelta(days=days[-2].weekday())).isoformat()
    with steps.step(f"Writing the daily report for {yesterday} and the weekly one for the week of {report_week} "
                    "(HTML, PDF, XLSX)"):
        _execute(defs, "reports_daily_job", instance, run_config=quiet, partition_key=yesterday)
        _execute(defs, "reports_weekly_job", instance, run_config=quiet, partition_key=report_week)

    # The live state (what the sidecar shows between builds) against the build: the same world
    # replayed through a real sidecar as webhooks and pushes, then built (scripts/parity.py).
    parity = None
    if settings.warehouse == "duckdb":
        from scripts.parity import run as replay

        with steps.step("Replaying the world through the sidecar as webhooks; live state vs its build"):
            parity = replay(world=settings.data_dir, work=settings.data_dir / "parity", end=now)

    with steps.step("Evaluating the alert rules over what landed (cc_alerts; `make ui`'s sidecar does every 30 s)"):
        alerts = check_alerts(settings)
    with steps.step("Replaying the world's week hour by hour through the cron and Charlie task rules"):
        week = replay_week(settings, datetime.combine(days[0], datetime.min.time()), now)

    say = steps.say
    say()
    say("Landed rows per source:")
    landed = lake_rows(settings.lake_dir)
    for table, rows in landed.items():
        if rows:
            say(f"  raw/{table:<30} {rows:>10,}")
    empty = [table for table, rows in landed.items() if not rows]
    if empty:
        say(f"  ({len(empty)} tables empty: {', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''};"
            " the records webhooks carry land there under `make ui`)")
    # The summary reads the warehouse dbt built: the DuckDB file, or CC_PG_SCHEMA on Postgres.
    with open_warehouse(settings) as warehouse:
        counts = mart_counts(warehouse)
        report = compare_with_truth(warehouse, *truth_paths)
    on_postgres = settings.warehouse == "postgres"
    where = f"Postgres {settings.pg.host}:{settings.pg.port}/{settings.pg.dbname}, schema {settings.pg_schema}"
    say()
    say(f"Landed {days[0]} .. {days[-1]} in {ingest_s:.1f}s; dbt build + tests in {transform_s:.1f}s")
    say(f"Marts ({where if on_postgres else 'DuckDB'}):")
    for mart, rows in counts.items():
        say(f"  {mart:<32} {rows:>10,} rows")
    say(f"Storage tiers, moved once in {tiers_s:.1f}s (`make sql` to query them all):")
    for line in tiers:
        say(f"  {line}")
    say()
    say(f"Warehouse    {where if on_postgres else settings.duckdb_path}")
    say(f"Raw lake     {settings.lake_dir / 'raw'}  (Parquet, zstd, date=YYYY-MM-DD)")
    say(f"Dead letters {settings.lake_dir / 'dead_letter'}")
    say(f"Reports      {settings.reports_dir / 'daily' / yesterday / 'report.html'}  (+ report.pdf, report.xlsx, CSV, "
        "Parquet)")
    say(f"             {settings.reports_dir / 'weekly' / report_week / 'report.html'}  (README \"Reports\": e-mail, backfill)")
    say(f"Dagster home {os.environ.get('DAGSTER_HOME', settings.dagster_home)}")
    say(f"Alerts       {len(alerts)} open (GET /api/alerts under `make ui`; set CC_ALERT_URLS to be e-mailed, "
        "README \"Alerts\"):")
    for line in alert_lines(alerts):
        say(line)
    say("The week replayed hourly through the cron and Charlie task rules (a store of its own):")
    for line in week:
        say(line)
    say(f"Demo log     {steps.log_path}  (dbt's and Dagster's own output)")
    say()
    say("Next: `make ui` (Dagster UI on :3000), `make test`, `make sql` (every mart and tier, also during a build),")
    if on_postgres:
        say(f"      `psql {settings.pg.dbname} -h {settings.pg.host} -p {settings.pg.port} "
            f"-c 'select * from {settings.pg_schema}.fct_workflows limit 5'`")
    say(f"      `.venv/bin/duckdb -readonly {settings.catalog_file} -c 'from fct_workflows limit 5'`")
    say()
    say(f"Correlation vs the generator's ground truth: {report.matched:,} / {report.events_in_truth:,} events "
        f"({report.ratio:.2%}){'  exact' if report.exact else '  MISMATCH'}")
    for event_id, expected, got in report.mismatched_examples:
        say(f"  {event_id}: expected {expected}, got {got}")
    if parity is not None:
        say(f"Live state vs the build of the same deliveries: {parity.line()}"
            f"{'  exact' if parity.ok else '  MISMATCH'}")
        for mismatch in parity.mismatches[:5]:
            say(f"  {mismatch}")
    else:
        say("Live state vs the build: `make demo` on the embedded default replays the world (scripts/parity.py)")
    say(f"Done in {time.perf_counter() - started:.1f}s")
    return 0 if report.exact and (parity is None or parity.ok) else 2


if __name__ == "__main__":
    sys.exit(main())
