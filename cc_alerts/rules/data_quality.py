"""The seeds' "Data Quality Monitoring" table as rules: stale data (every 30 s, refresh), missing
data points (every minute, backfill), schema validation (dead letters as they happen), missed
webhooks, and duplicate detection (every 5 minutes).

Every rule reads what the platform already keeps, and only the recent part of it (cc_alerts/reads.py):
the lake's newest partitions and their footers, the landing log's tail, the circuit breakers'
files, dbt's last test results, and what the sidecar saw live (`ctx.facts`). `ctx.now` is the only
clock. A finding that stands for occurrences (dead letters, missed events, duplicates) counts those
new since the rule's previous evaluation, so an alert's `count` adds up to what happened.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cc_alerts.model import Action, Finding, subject
from cc_alerts.reads import (
    days,
    dbt_test_results,
    landed,
    landed_files,
    newest_part_files,
    part_files,
)
from cc_alerts.rules.base import Evaluation, Rule, RuleContext
from cc_events.delivered import DELIVERED_TABLES
from cc_events.registry import SOURCES
from resources.dbt_inputs import DBT_PROJECT_DIR
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM

SOURCE_NAMES = frozenset(s.name for s in SOURCES)
WEBHOOKS = "webhooks"  # deliveries are not a source of their own: they land other sources' records
# Sources polled on a slower cadence than "real time", by the threshold that holds for them.
SLOW_SOURCES = {"weather": "weather_s"}  # its schedule: every 2 hours (sensors/weather.py)
# Sources a day can be landed again for (their API still has the records, or the landing log does).
BACKFILLABLE = frozenset({"github", "linear", "charlie", "openclaw", "cron", "weather", "system", "logs"})
# Sources that push (webhooks, `/webhooks/charlie`) and are polled, with the entities both carry.
PUSHED_AND_POLLED = {
    source: tuple(entity for s, entity in DELIVERED_TABLES if s == source) for source in ("github", "linear", "charlie")
}
DBT_TARGET_DIR = DBT_PROJECT_DIR / "target"
PARTITIONS_LOOKED_AT = 7  # per table, newest first, for a source's newest landing


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 and seconds < 600 else "")
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _clock(at: datetime, now: datetime | None = None) -> str:
    return at.strftime("%H:%M:%S" if now is None or at.date() == now.date() else "%Y-%m-%d %H:%M:%S")


def _since_last_evaluation(rule: Rule, now: datetime) -> datetime:
    """The start of what this evaluation sees for the first time (the one before looked up to then)."""
    return now - timedelta(seconds=rule.cadence_s or 30.0)


def _duckdb(ctx: RuleContext):
    db = ctx.duckdb
    db.execute("set TimeZone = 'UTC'")
    return db


# --- stale data -----------------------------------------------------------------------------------

class _Unlanded:
    """When a log file was first seen holding lines the lake does not (per data folder): the log
    sensor lands only files that grew, so a quiet log is current, and a log written after a quiet
    hour is behind since that write, not since the last landing an hour ago."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, datetime] = {}

    def behind_since(self, key: str, behind: bool, now: datetime) -> datetime | None:
        with self._lock:
            if not behind:
                self._since.pop(key, None)
                return None
            return self._since.setdefault(key, now)


_UNLANDED_LOGS = _Unlanded()


def _source_tables(raw_dir: Path) -> dict[str, list[Path]]:
    """Each source's raw tables, with the delivered tables of its records (`raw/webhooks/<s>__<e>`)."""
    tables: dict[str, list[Path]] = defaultdict(list)
    try:
        sources = [d for d in raw_dir.iterdir() if d.is_dir()]
    except FileNotFoundError:
        return {}
    for source in sources:
        for table in (t for t in source.iterdir() if t.is_dir()):
            if source.name != WEBHOOKS:
                tables[source.name].append(table)
            elif "__" in table.name:
                tables[table.name.partition("__")[0]].append(table)
    return tables


def _newest_landing(tables: Iterable[Path]) -> tuple[bool, datetime | None]:
    """Whether the source ever landed a row (in its newest partitions), and its newest landing."""
    ever, newest = False, None
    for table in tables:
        for path in newest_part_files(table, PARTITIONS_LOOKED_AT):
            rows, at = landed(path)
            ever = ever or rows > 0
            if at is not None and (newest is None or at > newest):
                newest = at
            if rows:
                break  # older partitions were landed before this one
    return ever, newest


def _breaker_success(state_dir: Path, source: str) -> datetime | None:
    try:
        epoch = json.loads((state_dir / "circuits" / f"{source}.json").read_text()).get("last_success_at")
    except (OSError, ValueError, AttributeError):
        return None
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) if isinstance(epoch, int | float) else None


def _logs_unlanded(settings: Any, newest: datetime | None) -> bool:
    """A log file the logs sensor tails changed after the lake's newest landing of logs."""
    for pattern in settings.log_patterns:
        for path in glob.glob(pattern):
            try:
                changed = datetime.fromtimestamp(os.stat(path).st_mtime, UTC).replace(tzinfo=None)
            except OSError:
                continue
            if newest is None or changed > newest:
                return True
    return False


def evaluate_stale_data(ctx: RuleContext) -> Evaluation:
    now, settings = ctx.now, ctx.settings
    live = {s: at for s, at in ctx.facts.last_received().items() if s in SOURCE_NAMES and s != WEBHOOKS}
    tables = _source_tables(Path(settings.lake_dir) / "raw")
    findings = []
    for source in sorted(set(tables) | set(live)):
        ever, lake_at = _newest_landing(tables.get(source, []))
        if not ever and source not in live:
            continue  # never landed anything: nothing to be stale
        signs = {"lake landing": lake_at, "live delivery": live.get(source),
                 "source answered": _breaker_success(settings.state_dir, source)}
        if source == "logs":
            behind = _UNLANDED_LOGS.behind_since(str(settings.lake_dir), _logs_unlanded(settings, lake_at), now)
            signs["log files unchanged"] = now if behind is None else max(behind, lake_at or behind)
        newest = max((at for at in signs.values() if at is not None), default=None)
        if newest is None:
            continue
        limit_name = SLOW_SOURCES.get(source, "realtime_s")
        limit = ctx.threshold(STALE_DATA, limit_name)
        age = (now - newest).total_seconds()
        if age <= limit:
            continue
        seen = ", ".join(f"{what} {_clock(at, now)}" for what, at in signs.items() if at is not None)
        findings.append(Finding(
            STALE_DATA.name, subject("source", source), STALE_DATA.severity,
            f"{source}: no new data for {_ago(age)} (expected within {_ago(limit)}, `{limit_name}`); "
            f"newest signs: {seen} UTC. A refresh of {source} was requested.",
            links={"lake": f"{settings.lake_dir}/raw/{source}"}, action=Action("refresh", source)))
    return Evaluation(findings)


STALE_DATA = Rule(
    "stale_data",
    "a source's newest data (lake landing, live delivery, or the source answering its probe) is "
    "older than its cadence allows; webhooks and sources that never landed are not judged",
    30.0, "warning", {"realtime_s": 300.0, "weather_s": 8100.0}, "refresh requested (the source's job)",
    "sidecar", evaluate_stale_data)


# --- missing data points --------------------------------------------------------------------------

def _gaps(points: list[datetime], start: datetime | None, allowed_s: float) -> list[tuple[datetime, float]]:
    """(start, seconds) of each gap longer than `allowed_s` from `start` through the points."""
    marks = ([start] if start is not None else []) + sorted(points)
    return [(a, (b - a).total_seconds()) for a, b in zip(marks, marks[1:], strict=False)
            if (b - a).total_seconds() > allowed_s]


def _host_findings(ctx: RuleContext) -> list[Finding]:
    now, settings, db = ctx.now, ctx.settings, _duckdb(ctx)
    interval = ctx.threshold(MISSING_POINTS, "metrics_interval_s")
    allowed = interval * ctx.threshold(MISSING_POINTS, "gap_factor")
    window = timedelta(seconds=ctx.threshold(MISSING_POINTS, "window_s"))
    lag = timedelta(seconds=ctx.threshold(MISSING_POINTS, "landing_lag_s"))
    since = now - window
    lake_files = part_files(settings.lake_dir, ("raw", "system", "metrics"), days(now - timedelta(days=1), now))
    samples: list[tuple[str, str, datetime, str]] = []  # host, id, sampled_at, where
    if lake_files:
        samples += [(*row, "lake") for row in db.execute(
            "select host, id, sampled_at from read_parquet(?, union_by_name = true) where host is not null",
            [lake_files]).fetchall()]
    with landed_files(settings, METRICS_STREAM, days(since, now)) as log_files:
        if log_files:
            samples += [(*row, "log") for row in db.execute(
                "select host, id, cast(try_cast(sampled_at as timestamptz) as timestamp) as sampled from read_json(?,"
                " format = 'newline_delimited', columns = {host: 'VARCHAR', id: 'VARCHAR', sampled_at: 'VARCHAR'},"
                " ignore_errors = true) where host is not null and sampled is not null", [log_files]).fetchall()]
    by_host: dict[str, dict[str, Any]] = defaultdict(lambda: {"sent": {}, "lake": set(), "before": False})
    for host, sample_id, at, where in samples:
        series = by_host[host]
        if at < since:
            series["before"] = True
            continue
        series["sent"][sample_id] = at
        if where == "lake":
            series["lake"].add(sample_id)
    findings = []
    for host, series in sorted(by_host.items()):
        sent = sorted(series["sent"].values())
        gaps = _gaps(sent, since if series["before"] else None, allowed)
        last = sent[-1] if sent else since
        silent = (now - last).total_seconds() > allowed
        unlanded = sorted(at for sid, at in series["sent"].items() if sid not in series["lake"] and at <= now - lag)
        if not gaps and not silent and not unlanded:
            continue
        parts, action = [], None
        if silent:
            parts.append(f"host {host} has sent no metrics for {'over ' if not sent else ''}"
                         f"{_ago((now - last).total_seconds())}")
        if gaps:
            longest = max(gaps, key=lambda g: g[1])
            points = sum(max(1, int(seconds // interval) - 1) for _, seconds in gaps)
            parts.append(f"{'its' if silent else f'host {host}:'} {len(gaps)} gap(s) in the last "
                         f"{_ago(window.total_seconds())}, the longest {_ago(longest[1])} from {_clock(longest[0])} "
                         f"UTC (about {points} sample(s) missing)")
        if parts:
            parts[-1] += f"; expected every {_ago(interval)}"
        if unlanded:
            parts.append(f"{len(unlanded)} sample(s) it sent ({_clock(unlanded[0])}..{_clock(unlanded[-1])} UTC) are in "
                         "the landing log but not in the lake: a backfill of system metrics was requested")
            action = Action("backfill", "system", unlanded[0].date().isoformat(), unlanded[-1].date().isoformat())
        findings.append(Finding(MISSING_POINTS.name, subject("host", host), MISSING_POINTS.severity,
                                "; ".join(parts) + ".", links={"lake": f"{settings.lake_dir}/raw/system/metrics"},
                                action=action))
    return findings


def _charlie_findings(ctx: RuleContext) -> list[Finding]:
    """Each registered Charlie instance's health is landed every 30 s: a health sample older than
    the gap allowed (plus the landing's own lag) is a missing point. The source keeps no history
    of health, so there is nothing to backfill."""
    now, settings, db = ctx.now, ctx.settings, _duckdb(ctx)
    interval = ctx.threshold(MISSING_POINTS, "health_interval_s")
    allowed = interval * ctx.threshold(MISSING_POINTS, "gap_factor") + ctx.threshold(MISSING_POINTS, "landing_lag_s")
    lake = Path(settings.lake_dir) / "raw" / "charlie"
    registry = newest_part_files(lake / "instances", 1)
    if not registry:
        return []
    instances = [r[0] for r in db.execute("select distinct id from read_parquet(?) where id is not null",
                                          [[str(registry[0])]]).fetchall()]
    health = [str(p) for p in newest_part_files(lake / "health", 2)]
    last = dict(db.execute("select instance_id, max(_ingested_at) from read_parquet(?, union_by_name = true)"
                           " group by 1", [health]).fetchall()) if health else {}
    findings = []
    for instance in sorted(instances):
        at = last.get(instance)
        age = None if at is None else (now - at).total_seconds()
        if age is not None and age <= allowed:
            continue
        told = "never" if at is None else f"last at {_clock(at)} UTC, {_ago(age)} ago"
        findings.append(Finding(
            MISSING_POINTS.name, subject("instance", instance), MISSING_POINTS.severity,
            f"Charlie instance {instance}: no health sample landed for over {_ago(allowed)} ({told}); "
            f"expected every {_ago(interval)}.", links={"lake": f"{settings.lake_dir}/raw/charlie/health"}))
    return findings


def _volume_findings(ctx: RuleContext) -> list[Finding]:
    """An hour of a source's events far below its usual hour: below `volume_ratio` of the median of
    the 24 hours before, when that median is at least `volume_min_median` and the same hour a day
    earlier was not as low (a source quiet every night is not missing anything at night)."""
    now, settings, db = ctx.now, ctx.settings, _duckdb(ctx)
    ratio = ctx.threshold(MISSING_POINTS, "volume_ratio")
    floor = ctx.threshold(MISSING_POINTS, "volume_min_median")
    end = (now - timedelta(seconds=ctx.threshold(MISSING_POINTS, "volume_lag_s"))).replace(minute=0, second=0,
                                                                                         microsecond=0)
    start = end - timedelta(hours=25)
    files = part_files(settings.lake_dir, ("normalized", "events"), days(start, now))
    if not files:
        return []
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * 25)
    for source, hour, n in db.execute(
            "select source, date_trunc('hour', event_at) as hour, count(distinct event_id) from read_parquet(?,"
            " union_by_name = true) where event_at >= ? and event_at < ? group by all", [files, start, end]).fetchall():
        counts[source][int((hour - start).total_seconds() // 3600)] += n
    findings = []
    for source, hours in sorted(counts.items()):
        last, before, same_hour_yesterday = hours[24], hours[:24], hours[0]
        usual = statistics.median(before)
        if usual < floor or last >= ratio * usual or same_hour_yesterday < ratio * usual:
            continue
        hour_start = end - timedelta(hours=1)
        action = Action("backfill", source, hour_start.date().isoformat(), hour_start.date().isoformat()) \
            if source in BACKFILLABLE else None
        findings.append(Finding(
            MISSING_POINTS.name, subject("source", source), MISSING_POINTS.severity,
            f"{source}: {last} event(s) between {hour_start:%H:%M} and {end:%H:%M} UTC, against a usual "
            f"{usual:g} per hour (median of the 24 hours before; below {ratio:.0%} of it)"
            + (f"; a backfill of {source} for {hour_start.date()} was requested." if action else "."),
            links={"lake": f"{settings.lake_dir}/normalized/events"}, action=action))
    return findings


def evaluate_missing_points(ctx: RuleContext) -> Evaluation:
    return Evaluation([*_host_findings(ctx), *_charlie_findings(ctx), *_volume_findings(ctx)])


MISSING_POINTS = Rule(
    "missing_points",
    "gaps in series that should be regular: each host's metrics (30 s), each Charlie instance's "
    "health (30 s), a source's hourly event volume far below its usual hour",
    60.0, "warning",
    {"metrics_interval_s": 30.0, "health_interval_s": 30.0, "gap_factor": 2.0, "landing_lag_s": 120.0,
     "window_s": 3600.0, "volume_ratio": 0.2, "volume_min_median": 10.0, "volume_lag_s": 600.0},
    "backfill requested where the data exists to land again (host metrics in the landing log, a polled "
    "source's hour)", "sidecar", evaluate_missing_points)


# --- duplicates -----------------------------------------------------------------------------------

def _lake_copies(ctx: RuleContext, since: datetime) -> dict[str, int]:
    """Extra copies of recent events across the recent partitions of normalized/events. Only
    recent events: an updated record lands again in its new day's partition, and the older copy
    of its old events there is the routine case the latest-copy rule exists for."""
    files = part_files(ctx.settings.lake_dir, ("normalized", "events"), days(since - timedelta(days=1), ctx.now))
    if not files:
        return {}
    return dict(_duckdb(ctx).execute(
        "select source, sum(n - 1) from (select source, event_id, count(*) as n from read_parquet(?,"
        " union_by_name = true) where event_at >= ? group by all having count(*) > 1) group by 1",
        [files, since]).fetchall())


def evaluate_duplicates(ctx: RuleContext) -> Evaluation:
    now = ctx.now
    since = now - timedelta(seconds=ctx.threshold(DUPLICATES, "window_s"))
    limit = ctx.threshold(DUPLICATES, "count")
    redelivered = ctx.facts.duplicates_since(since)
    copies = _lake_copies(ctx, since)
    findings = []
    for source in sorted(set(redelivered) | set(copies)):
        pushed, landed_twice = redelivered.get(source, 0), int(copies.get(source, 0))
        if pushed + landed_twice < limit:
            continue
        parts = [f"{pushed} redelivered webhook(s) or samples suppressed"] if pushed else []
        parts += [f"{landed_twice} extra copies of events landed in the lake, kept once"] if landed_twice else []
        findings.append(Finding(
            DUPLICATES.name, subject("source", source), DUPLICATES.severity,
            f"{source}: {pushed + landed_twice} duplicates in the last {_ago((now - since).total_seconds())}: "
            + "; ".join(parts) + ". Nothing counted twice, but the sender or a landing is repeating itself.",
            count=pushed + landed_twice))
    for node, result in sorted(dbt_test_results(DBT_TARGET_DIR).items()):
        name = node.split(".")[2] if node.count(".") >= 2 else node
        if not name.startswith("unique") or result["status"] not in ("fail", "error"):
            continue
        failures = result.get("failures")
        what = f"{failures} duplicated value(s)" if result["status"] == "fail" else f"error: {result.get('message')}"
        findings.append(Finding(
            DUPLICATES.name, subject("test", name), DUPLICATES.severity,
            f"dbt test {name} failed in the build at {result['at']:%Y-%m-%d %H:%M} UTC: {what}; "
            "copies survived the latest-copy rule into the models.",
            links={"run_results": result["path"]}))
    return Evaluation(findings)


DUPLICATES = Rule(
    "duplicates",
    "duplicates suppressed in the last 5 min (redelivered webhooks and samples, copies of events in the "
    "lake) above the threshold; dbt `unique` tests failing in the last build",
    300.0, "warning", {"count": 10.0, "window_s": 300.0}, "none (already deduplicated)", "sidecar",
    evaluate_duplicates)


RULES: list[Rule] = [STALE_DATA, MISSING_POINTS, DUPLICATES]
