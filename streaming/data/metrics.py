"""`/dashboard/metrics` read from the tiers: which tier answers which part of a window, and the counts.

A window is cut into spans (`event_spans`): the cold and archive tiers (`resources/storage/history.py`)
for the days before the warm window that they hold, the hot tier for the hours of a window of the
last hour, the marts for everything else; each span's events are counted from its tier, and the
live events this sidecar has seen are merged in by id, so an event is counted once. Host metrics
are the marts' rollups plus the live samples of the minutes no build has rolled up yet.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from typing import Any, Literal

from resources.storage.history import HistoryReader
from streaming.data.marts import iso, plain, utcnow, where
from streaming.data.serving import HotHour, Serving
from streaming.schemas import (
    CountBy,
    EventBucket,
    CronBucket,
    CronMetrics,
    EventMetrics,
    Metrics,
    MetricsQuery,
    SessionBucket,
    SessionMetrics,
    SystemBucket,
    Tier,
    TierSpan,
    WorkflowMetrics,
)

PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
FILTER_KEYS = {"source": "source", "eventType": "event_type", "actorType": "actor_type", "host": "host"}
EVENT_FILTERS = ("source", "eventType", "actorType")
# Which filters narrow which block. An event has a source, a type and an actor type, and so does a
# workflow, through its events (it counts when one of its events matches, as that event would in
# `events`); a host sample has only a host, and events and workflows have none. A filter a block
# cannot take leaves it whole and is named in `query.filtersNotApplied`, not refused: one filter
# bar serves a whole dashboard (`{"source": "github", "host": "web-1"}`).
BLOCK_FILTERS = {"events": EVENT_FILTERS, "workflows": EVENT_FILTERS, "system": ("host",),
                 "sessions": (), "cron": ("host",)}
# A window that starts at most this long ago (the 1h preset) counts its events from the hot tier.
HOT_WINDOW = PRESETS["1h"]


def grain_of(lo: datetime, hi: datetime) -> Literal["minute", "hour", "day"]:
    span = hi - lo
    return "minute" if span <= timedelta(hours=6) else "hour" if span <= timedelta(days=7) else "day"


def truncate(ts: datetime, grain: str) -> datetime:
    if grain == "day":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(second=0, microsecond=0)



Span = tuple[Tier, datetime, datetime, HotHour | None]


def not_applied(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each block, the given filters it cannot take (`BLOCK_FILTERS`); blocks that took them all are left out."""
    out = {block: [key for key in filters if key not in keys] for block, keys in BLOCK_FILTERS.items()}
    return {block: keys for block, keys in out.items() if keys}


def in_hot_window(time_range: str, lo: datetime) -> bool:
    return time_range == "1h" or lo >= utcnow() - HOT_WINDOW


def event_spans(data: Serving, lo: datetime, hi: datetime,
                 hot_window: bool) -> tuple[list[Span], HistoryReader | None]:
    """[lo, hi) (lo on the hour) cut into the parts each tier answers, oldest first: before the warm
    window (`today - CC_WARM_DAYS`) the days the cold and archive tiers hold; in a window of the
    last hour the hours the hot tier holds; the marts everything else (they hold every event the
    landing lake has, so a day no colder tier holds yet is still counted)."""
    spans: list[Span] = []
    cursor, reader = lo, None
    if data.settings is not None:
        reader = HistoryReader(data.settings, today=utcnow().date())
        split = min(max(reader.warm_from, lo), hi)
        held = reader.held_days(lo, split) if lo < split else set()
        while cursor < split:
            step = min(datetime.combine(cursor.date() + timedelta(days=1), time()), split)
            spans.append(("history" if cursor.date() in held else "warm", cursor, step, None))
            cursor = step
    now = utcnow()
    while hot_window and cursor < hi and cursor <= now:
        step = min(cursor + timedelta(hours=1), hi)
        hour = data.hot_hour(cursor)
        spans.append(("hot" if hour is not None else "warm", cursor, step, hour))
        cursor = step
    if cursor < hi:
        spans.append(("warm", cursor, hi, None))
    return spans, reader


def merged_tiers(spans: list[tuple[Tier, datetime, datetime, HotHour | None]]) -> list[TierSpan]:
    out: list[TierSpan] = []
    for tier, start, end, _ in spans:
        if out and out[-1].tier == tier:
            out[-1].end = iso(end)
        else:
            out.append(TierSpan(tier=tier, start=iso(start), end=iso(end)))
    return out



def with_live_samples(data: Serving, rows: list[dict], table_grain: str, lo: datetime, hi: datetime,
                      hosts: list[str] | None) -> list[dict]:
    """The rollup rows of [lo, hi) with the host samples no build has rolled up yet added in.

    A (host, minute) that the last build's 1-minute rollup holds is the build's: the live samples
    of that minute are not added (the build has them, or, for the minute it was cut in, will
    have them at the next build). Every other live sample joins the row of its host and bucket,
    weighted by the row's `sample_count`, or makes a new row, so each sample counts once."""
    samples = [s for s in data.samples.between(lo, hi) if hosts is None or s.host in hosts]
    if not samples:
        return rows
    if table_grain == "minute":
        built = {(r["host"], r["bucket_start_at"]) for r in rows}
    else:
        first = truncate(samples[0].sampled_at, "minute")
        built = {(r["host"], r["bucket_start_at"]) for r in data.marts.query(
            "select host, bucket_start_at from fct_system_metrics_1m"
            " where bucket_start_at >= %(lo)s and bucket_start_at < %(hi)s", {"lo": first, "hi": hi})}
    added: dict[tuple[str, datetime], list] = defaultdict(list)
    for s in samples:
        if (s.host, truncate(s.sampled_at, "minute")) not in built:
            added[(s.host, truncate(s.sampled_at, table_grain))].append(s)
    if not added:
        return rows
    by_key = {(r["host"], r["bucket_start_at"]): r for r in rows}
    for (host, start), live in added.items():
        row = by_key.get((host, start)) or {"host": host, "bucket_start_at": start, "sample_count": 0,
                                             "avg_cpu_percent": None, "max_cpu_percent": None,
                                             "avg_memory_percent": None, "max_disk_percent": None}
        n = int(row["sample_count"] or 0)

        def mean(avg: float | None, values: list[float | None], n: int = n) -> float | None:
            known = [v for v in values if v is not None]
            weight = n if avg is not None else 0
            total = weight + len(known)
            return round(((avg or 0) * weight + sum(known)) / total, 2) if total else None

        def top(current: float | None, values: list[float | None]) -> float | None:
            return max((v for v in [current, *values] if v is not None), default=None)

        cpu = [s.cpu_percent for s in live]
        by_key[(host, start)] = {
            "host": host, "bucket_start_at": start, "sample_count": n + len(live),
            "avg_cpu_percent": mean(row["avg_cpu_percent"], cpu), "max_cpu_percent": top(row["max_cpu_percent"], cpu),
            "avg_memory_percent": mean(row["avg_memory_percent"], [s.memory_percent for s in live]),
            "max_disk_percent": top(row["max_disk_percent"], [s.disk_percent for s in live])}
    return sorted(by_key.values(), key=lambda r: (r["bucket_start_at"], r["host"]))


def built(data: Serving, table: str) -> bool:
    """Whether the marts hold `table`: a snapshot written before it existed (an upgrade, until the
    next build) answers its block empty rather than failing the whole response."""
    rows = data.marts.query("select count(*) as n from information_schema.tables where table_name = %(t)s",
                            {"t": table})
    return bool(rows and rows[0]["n"])


def read_sessions(data: Serving, lo: datetime, hi: datetime, grain: str) -> SessionMetrics:
    """Agent sessions started in [lo, hi), from the hourly mart: per bucket and per agent."""
    if not built(data, "fct_agent_sessions_1h"):
        return SessionMetrics(sessions=0, cost_usd=0, by_agent=[], series=[])
    bucket_grain = "day" if grain == "day" else "hour"
    rows = data.marts.query(
        "select bucket_start_at, agent_name, session_count, failed_session_count, cost_usd"
        " from fct_agent_sessions_1h where bucket_start_at >= %(lo)s and bucket_start_at < %(hi)s",
        {"lo": truncate(lo, "hour"), "hi": hi})
    series: dict[datetime, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    by_agent: Counter = Counter()
    for r in rows:
        acc = series[truncate(plain(r["bucket_start_at"]), bucket_grain)]
        acc[0] += int(r["session_count"])
        acc[1] += int(r["failed_session_count"] or 0)
        acc[2] += float(r["cost_usd"] or 0)
        by_agent[r["agent_name"]] += int(r["session_count"])
    buckets = [SessionBucket(start=iso(k), sessions=v[0], failed=v[1], cost_usd=round(v[2], 4))
               for k, v in sorted(series.items())]
    return SessionMetrics(sessions=sum(b.sessions for b in buckets),
                          cost_usd=round(sum(v[2] for v in series.values()), 4),
                          by_agent=[CountBy(key=k, count=v) for k, v in
                                    sorted(by_agent.items(), key=lambda kv: (-kv[1], kv[0]))],
                          series=buckets)


def read_cron(data: Serving, lo: datetime, hi: datetime, grain: str, hosts: list[str] | None) -> CronMetrics:
    """Cron runs in [lo, hi) by `run_at`, per bucket and status (`host` filters)."""
    if not built(data, "fct_cron_runs"):
        return CronMetrics(runs=0, failed=0, series=[])
    params: dict[str, Any] = {"lo": lo, "hi": hi}
    conditions = ["run_at >= %(lo)s", "run_at < %(hi)s"]
    if hosts is not None:
        params["host"] = hosts
        conditions.append(data.marts.in_list("host", "host"))
    rows = data.marts.query("select run_at, run_status from fct_cron_runs" + where(conditions), params)
    series: dict[datetime, Counter] = defaultdict(Counter)
    for r in rows:
        series[truncate(plain(r["run_at"]), grain)][r["run_status"]] += 1
    buckets = [CronBucket(start=iso(k), succeeded=c["succeeded"], failed=c["failed"], running=c["running"])
               for k, c in sorted(series.items())]
    return CronMetrics(runs=len(rows), failed=sum(b.failed for b in buckets), series=buckets)


def read_metrics(data: Serving, time_range: str, lo: datetime, hi: datetime, filters: dict[str, list[str]]) -> Metrics:
    marts = data.marts
    grain = grain_of(lo, hi)
    # Events: hourly rollup buckets that start inside the window (so the window is hour-grained).
    event_grain = "day" if grain == "day" else "hour"
    lo_h = truncate(lo, "hour")
    spans, reader = event_spans(data, lo_h, hi, in_hot_window(time_range, lo))
    by_source, by_type, by_actor, series, by_tier = Counter(), Counter(), Counter(), Counter(), Counter()

    def count(tier: str | None, bucket: datetime, source: str, event_type: str, actor_type: str | None,
              n: int) -> None:
        by_source[source] += n
        by_type[event_type] += n
        by_actor[actor_type or "unknown"] += n
        series[truncate(bucket, event_grain)] += n
        if tier is not None:
            by_tier[tier] += n

    def wanted(source: str | None, event_type: str | None, actor_type: str | None) -> bool:
        values = {"source": source, "eventType": event_type, "actorType": actor_type}
        return all(values[key] in filters[key] for key in EVENT_FILTERS if key in filters)

    # The marts: one query over the parts they answer, each part's bounds a bound parameter.
    warm: list[tuple[datetime, datetime]] = []
    for tier, start, end, _ in spans:
        if tier == "warm" and warm and warm[-1][1] == start:
            warm[-1] = (warm[-1][0], end)
        elif tier == "warm":
            warm.append((start, end))
    if warm:
        params: dict[str, Any] = {}
        ranges = []
        for n, (start, end) in enumerate(warm):
            params[f"lo{n}"], params[f"hi{n}"] = start, end
            ranges.append(f"(bucket_start_at >= %(lo{n})s and bucket_start_at < %(hi{n})s)")
        conditions = ["(" + " or ".join(ranges) + ")"]
        for key in EVENT_FILTERS:
            if key in filters:
                params[key] = filters[key]
                conditions.append(marts.in_list(FILTER_KEYS[key], key))
        for r in marts.query("select bucket_start_at, source, event_type, actor_type, event_count"
                             " from fct_event_volume_1h" + where(conditions), params):
            count("warm", r["bucket_start_at"], r["source"], r["event_type"], r["actor_type"], int(r["event_count"]))

    # The cold and archive tiers, through the history interface, on the days they hold.
    history = [(start, end) for tier, start, end, _ in spans if tier == "history"]
    if history and reader is not None:
        days = {start.date() for start, _ in history}
        for r in reader.event_counts(history[0][0], history[-1][1], grain=event_grain, days=days,
                                     filters={FILTER_KEYS[k]: v for k, v in filters.items() if k in EVENT_FILTERS}):
            count("history", r["bucket_start_at"], r["source"], r["event_type"], r["actor_type"],
                  int(r["event_count"]))

    # The hot tier's hours, each merged with every event this sidecar has seen in it (by id, so an
    # event both have counts once; what the hot tier lacks yet counts as live).
    live_n = 0
    hot = {start: hour for tier, start, _, hour in spans if tier == "hot"}
    for start, hour in hot.items():
        for (source, event_type, actor_type), n in hour.counts.items():
            if wanted(source, event_type, actor_type):
                count("hot", start, source, event_type, actor_type, n)
    if hot:
        for e in data.seen_since(min(hot)):
            bucket = truncate(e["occurred_at"], "hour")
            if bucket in hot and e["event_id"] not in hot[bucket].event_ids and e["occurred_at"] < hi and wanted(
                    e["source"], e["event_type"], e.get("actor_type")):
                live_n += 1
                count(None, bucket, e["source"], e["event_type"], e.get("actor_type"), 1)

    # Live events the marts do not have yet, in the parts the hot tier does not answer.
    for e in data.live_view().events:
        if not (lo_h <= e["occurred_at"] < hi) or truncate(e["occurred_at"], "hour") in hot:
            continue
        if not wanted(e["source"], e["event_type"], e.get("actor_type")):
            continue
        live_n += 1
        count(None, e["occurred_at"], e["source"], e["event_type"], e.get("actor_type"), 1)

    # Workflows started or completed in the window; with event filters, those with an event (at any
    # time: the filter says what the workflow is, e.g. one with GitHub in it) that the filters match.
    wf_params: dict[str, Any] = {"lo": lo, "hi": hi}
    wf_conditions = ["last_event_at >= %(lo)s"]
    event_conditions = []
    for key in EVENT_FILTERS:
        if key in filters:
            wf_params[key] = filters[key]
            event_conditions.append(marts.in_list("e." + FILTER_KEYS[key], key))
    if event_conditions:
        wf_conditions.append("exists (select 1 from fct_workflow_events e where e.workflow_id = w.workflow_id and "
                             + " and ".join(event_conditions) + ")")
    wf = marts.query(
        "select sum(case when first_event_at >= %(lo)s and first_event_at < %(hi)s then 1 else 0 end) as started,"
        " sum(case when completed_at >= %(lo)s and completed_at < %(hi)s then 1 else 0 end) as completed"
        " from fct_workflows w" + where(wf_conditions), wf_params)[0]

    table_grain = "minute" if grain == "minute" else "hour"
    table = "fct_system_metrics_1m" if table_grain == "minute" else "fct_system_metrics_1h"
    sys_params: dict[str, Any] = {"lo": truncate(lo, table_grain), "hi": hi}
    sys_conditions = ["bucket_start_at >= %(lo)s", "bucket_start_at < %(hi)s"]
    if "host" in filters:
        sys_params["host"] = filters["host"]
        sys_conditions.append(marts.in_list("host", "host"))
    system_rows = marts.query(
        "select bucket_start_at, host, sample_count, avg_cpu_percent, max_cpu_percent, avg_memory_percent,"
        f" max_disk_percent from {table}" + where(sys_conditions), sys_params)  # noqa: S608 - one of two constants
    system_rows = with_live_samples(data, [{k: plain(v) for k, v in r.items()} for r in system_rows], table_grain,
                                    sys_params["lo"], hi, filters.get("host"))
    buckets: dict[datetime, list[dict]] = defaultdict(list)
    for r in system_rows:
        buckets[truncate(r["bucket_start_at"], grain)].append(r)
    system = []
    for start, rows in sorted(buckets.items()):
        def avg(col: str, rows: list[dict] = rows) -> float | None:
            values = [r[col] for r in rows if r[col] is not None]
            return round(sum(values) / len(values), 2) if values else None

        def top(col: str, rows: list[dict] = rows) -> float | None:
            return max((r[col] for r in rows if r[col] is not None), default=None)

        system.append(SystemBucket(start=iso(start), hosts=len({r["host"] for r in rows}),
                                   avg_cpu_percent=avg("avg_cpu_percent"), max_cpu_percent=top("max_cpu_percent"),
                                   avg_memory_percent=avg("avg_memory_percent"),
                                   max_disk_percent=top("max_disk_percent")))

    def ranked(counter: Counter, limit: int | None = None) -> list[CountBy]:
        return [CountBy(key=k, count=v) for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]

    return Metrics(
        query=MetricsQuery(time_range=time_range, start=iso(lo), end=iso(hi), grain=grain, filters=filters,
                           filters_not_applied=not_applied(filters), tiers=merged_tiers(spans)),
        generated_at=iso(utcnow()),
        events=EventMetrics(total=sum(by_source.values()), live=live_n, by_tier=ranked(by_tier),
                            by_source=ranked(by_source),
                            by_type=ranked(by_type, 50), by_actor_type=ranked(by_actor),
                            series=[EventBucket(start=iso(k), count=v) for k, v in sorted(series.items())]),
        workflows=WorkflowMetrics(started=int(wf["started"] or 0), completed=int(wf["completed"] or 0)),
        system=system,
        sessions=read_sessions(data, lo, hi, grain),
        cron=read_cron(data, lo, hi, grain, filters.get("host")),
    )
