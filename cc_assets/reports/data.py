"""What an operations report says: the period, its numbers and the previous period's, read from the
marts the way the sidecar reads them (the serving snapshot on DuckDB, `CC_PG_SCHEMA` on Postgres,
never the DuckDB file dbt writes), event volume through the history interface (warm, cold and
archive tiers), open alerts from the alert store.

    period = Period.of("weekly", "2026-11-16")          # Monday 16th .. Sunday 22nd
    data = collect(HistoryReader(settings), alert_store(settings), period, top_n=10)
    data.headlines["events"].value, data.headlines["events"].previous
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb
import psycopg

from cc_alerts.store import AlertStore, _alert, _iso
from resources.storage.history import HistoryReader

Kind = Literal["daily", "weekly", "monthly"]
KINDS: tuple[Kind, ...] = ("daily", "weekly", "monthly")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Period:
    """[start, end) in whole UTC days: a day, a Monday-to-Sunday week or a calendar month."""

    kind: Kind
    start: date
    end: date

    @classmethod
    def of(cls, kind: str, key: str | date) -> Period:
        day = key if isinstance(key, date) else date.fromisoformat(key)
        if kind == "daily":
            return cls("daily", day, day + timedelta(days=1))
        if kind == "weekly":
            monday = day - timedelta(days=day.weekday())
            return cls("weekly", monday, monday + timedelta(days=7))
        if kind == "monthly":
            first = day.replace(day=1)
            return cls("monthly", first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1]))
        raise ValueError(f"a report is daily, weekly or monthly, not {kind!r}")

    @classmethod
    def last_complete(cls, kind: str, moment: datetime) -> Period:
        """The latest period of `kind` that ended at or before `moment`."""
        return cls.of(kind, cls.of(kind, moment.date()).start - timedelta(days=1))

    @property
    def key(self) -> str:
        """The Dagster partition key: the period's first day."""
        return self.start.isoformat()

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]

    @property
    def grain(self) -> Literal["hour", "day"]:
        return "hour" if self.kind == "daily" else "day"

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time())

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time())

    def previous(self) -> Period:
        return Period.of(self.kind, self.start - timedelta(days=1))

    def buckets(self) -> list[datetime]:
        step = timedelta(hours=1) if self.grain == "hour" else timedelta(days=1)
        out, at = [], self.start_at
        while at < self.end_at:
            out.append(at)
            at += step
        return out

    @property
    def noun(self) -> str:
        return {"daily": "day", "weekly": "week", "monthly": "month"}[self.kind]

    @property
    def label(self) -> str:
        last = self.end - timedelta(days=1)
        if self.kind == "daily":
            return f"{self.start:%A} {self.start.day} {self.start:%B %Y}"
        if self.kind == "weekly":
            first = f"{self.start.day} {self.start:%B}" if self.start.month != last.month else str(self.start.day)
            if self.start.year != last.year:
                first += f" {self.start.year}"
            return f"week {self.start.isocalendar().week}, {first} to {last.day} {last:%B %Y}"
        return f"{self.start:%B %Y}"


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    value: float | None
    previous: float | None
    unit: Literal["count", "money", "hours", "percent"]
    better: Literal["up", "down"] | None  # which way is good news; None: neither

    @property
    def change(self) -> float | None:
        return None if self.value is None or self.previous is None else self.value - self.previous

    @property
    def change_pct(self) -> float | None:
        if self.change is None or not self.previous:
            return None
        return self.change / abs(self.previous) * 100


@dataclass
class ReportData:
    period: Period
    as_of: datetime | None  # the marts' build
    complete: bool  # False while the period is still going
    volume: list[dict]  # bucket, source, events (every bucket of every source seen)
    workflows: list[dict]  # bucket, started, completed
    cycle_times: list[dict]  # workflow_id, workflow_name, completed_at, cycle_time_hours
    cost_by_agent: list[dict]  # agent_name, session_count, tokens_total, cost_usd
    cost_by_workflow: list[dict]  # workflow_id, workflow_name, session_count, tokens_total, cost_usd
    cron: list[dict]  # job_name, runs, succeeded, failed, running
    ci: list[dict]  # bucket, succeeded, failed, other
    alerts: list[dict]  # open (or acknowledged) at the period's end
    headlines: dict[str, Headline] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # marts the serving snapshot has no table for yet
    tiers: list[str] = field(default_factory=list)  # which tier answered which days of the volume

    def tables(self) -> dict[str, list[dict]]:
        """The extracts, by name: what the CSV, XLSX and Parquet files hold."""
        return {
            "headlines": [{"metric": h.key, "label": h.label, "value": h.value, "previous": h.previous,
                           "change": h.change, "change_pct": None if h.change_pct is None else round(h.change_pct, 2)}
                          for h in self.headlines.values()],
            "event_volume": self.volume, "workflows": self.workflows, "cycle_times": self.cycle_times,
            "cost_by_agent": self.cost_by_agent, "cost_by_workflow": self.cost_by_workflow,
            "cron_runs": self.cron, "ci_runs": self.ci, "open_alerts": self.alerts,
        }


COLUMNS: dict[str, list[str]] = {
    "headlines": ["metric", "label", "value", "previous", "change", "change_pct"],
    "event_volume": ["bucket", "source", "events"],
    "workflows": ["bucket", "started", "completed"],
    "cycle_times": ["workflow_id", "workflow_name", "completed_at", "cycle_time_hours"],
    "cost_by_agent": ["agent_name", "session_count", "tokens_total", "cost_usd"],
    "cost_by_workflow": ["workflow_id", "workflow_name", "session_count", "tokens_total", "cost_usd"],
    "cron_runs": ["job_name", "runs", "succeeded", "failed", "running"],
    "ci_runs": ["bucket", "succeeded", "failed", "other"],
    "open_alerts": ["id", "severity", "state", "rule", "subject", "message", "count", "first_seen", "last_seen"],
}


def _num(value: Any) -> float:
    return float(round(value, 4)) if isinstance(value, Decimal) else float(value or 0)


class _Marts:
    """Queries over the marts; a mart the serving snapshot does not have yet answers no rows and is
    named in the report rather than failing it."""

    def __init__(self, reader: HistoryReader) -> None:
        self.reader = reader
        self.missing: list[str] = []

    def rows(self, mart: str, query: str, params: dict[str, Any]) -> list[dict]:
        try:
            return self.reader.marts(query, {k: v for k, v in params.items() if f"%({k})s" in query})
        except (duckdb.CatalogException, psycopg.errors.UndefinedTable):
            if mart not in self.missing:
                self.missing.append(mart)
            return []


def _bucketed(period: Period, rows: list[dict], fields: list[str]) -> list[dict]:
    """One row per bucket of the period (zeros where the marts have none)."""
    found = {r["bucket"]: r for r in rows}
    return [{"bucket": b, **{f: int((found.get(b) or {}).get(f) or 0) for f in fields}} for b in period.buckets()]


def _volume(reader: HistoryReader, period: Period) -> tuple[list[dict], list[str]]:
    rows = reader.event_volume(period.start_at, period.end_at, grain=period.grain)
    counts: dict[tuple[datetime, str], int] = {}
    for r in rows:
        key = (r["bucket_start_at"], r["source"])
        counts[key] = counts.get(key, 0) + int(r["event_count"])
    sources = sorted({s for _, s in counts})
    volume = [{"bucket": b, "source": s, "events": counts.get((b, s), 0)} for b in period.buckets() for s in sources]
    tiers = [f"{'cold and archive' if s.tier == 'history' else s.tier} tier {s.start.date()} to "
             f"{(s.end - timedelta(days=1)).date()}" for s in reader.plan(period.start_at, period.end_at)]
    return volume, tiers


def _open_alerts(store: AlertStore | None, at: datetime) -> list[dict]:
    """Alerts open or acknowledged at `at`: seen first before it, not resolved by then."""
    if store is None:
        return []
    moment = _iso(at)
    rows = [_alert(r) for r in store._read(  # noqa: SLF001 - the store's own dialect-neutral read
        "select * from alerts where first_seen < ? and (resolved_at is null or resolved_at >= ?)", (moment, moment))]
    out = [{"id": a.id, "severity": a.severity,
            "state": "acknowledged" if a.acknowledged_at is not None and a.acknowledged_at < at else "open",
            "rule": a.rule, "subject": a.subject, "message": a.message, "count": a.count,
            "first_seen": a.first_seen, "last_seen": a.last_seen} for a in rows]
    return sorted(out, key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["first_seen"], a["id"]))


def _collect(reader: HistoryReader, store: AlertStore | None, period: Period, now: datetime) -> ReportData:
    marts = _Marts(reader)
    window = {"start": period.start_at, "end": period.end_at, "first": period.start, "after": period.end}
    grain = period.grain  # ours ("hour" or "day"), never input
    in_window = "%(start)s and {c} < %(end)s"
    volume, tiers = _volume(reader, period)
    started = marts.rows("fct_workflows",
                         f"select date_trunc('{grain}', first_event_at) as bucket, count(*) as started "  # noqa: S608
                         f"from {{schema}}.fct_workflows where first_event_at >= {in_window.format(c='first_event_at')} "
                         "group by 1", window)
    completed = marts.rows("fct_workflows",
                           f"select date_trunc('{grain}', completed_at) as bucket, count(*) as completed "  # noqa: S608
                           f"from {{schema}}.fct_workflows where completed_at >= {in_window.format(c='completed_at')} "
                           "group by 1", window)
    merged: dict[datetime, dict] = {}
    for r in started + completed:
        merged.setdefault(r["bucket"], {"bucket": r["bucket"]}).update(r)
    cycle_times = [{**r, "cycle_time_hours": None if r["cycle_time_hours"] is None else _num(r["cycle_time_hours"])}
                   for r in marts.rows(
                       "fct_workflows",
                       "select workflow_id, workflow_name, completed_at, cycle_time_hours from {schema}.fct_workflows"
                       f" where completed_at >= {in_window.format(c='completed_at')}"
                       " order by completed_at, workflow_id", window)]
    by_agent = marts.rows(
        "fct_agent_sessions_daily",
        "select agent_name, sum(session_count) as session_count, sum(tokens_total) as tokens_total,"
        " sum(cost_usd) as cost_usd from {schema}.fct_agent_sessions_daily"
        " where session_date >= %(first)s and session_date < %(after)s"
        " group by agent_name order by sum(cost_usd) desc, agent_name", window)
    by_workflow = marts.rows(
        "fct_workflow_session_costs_daily",
        "select c.workflow_id, max(w.workflow_name) as workflow_name, sum(c.session_count) as session_count,"
        " sum(c.tokens_total) as tokens_total, sum(c.cost_usd) as cost_usd"
        " from {schema}.fct_workflow_session_costs_daily c left join {schema}.fct_workflows w"
        " on w.workflow_id = c.workflow_id"
        " where c.session_date >= %(first)s and c.session_date < %(after)s"
        " group by c.workflow_id order by sum(c.cost_usd) desc, c.workflow_id", window)
    cron = marts.rows(
        "fct_cron_runs",
        "select job_name, count(*) as runs,"
        " sum(case when run_status = 'succeeded' then 1 else 0 end) as succeeded,"
        " sum(case when run_status = 'failed' then 1 else 0 end) as failed,"
        " sum(case when run_status = 'running' then 1 else 0 end) as running"
        f" from {{schema}}.fct_cron_runs where run_at >= {in_window.format(c='run_at')}"
        " group by job_name order by sum(case when run_status = 'failed' then 1 else 0 end) desc, job_name", window)
    ci = marts.rows(
        "fct_ci_runs",
        f"select date_trunc('{grain}', completed_at) as bucket,"  # noqa: S608
        " sum(case when outcome = 'succeeded' then 1 else 0 end) as succeeded,"
        " sum(case when outcome = 'failed' then 1 else 0 end) as failed,"
        " sum(case when outcome = 'other' then 1 else 0 end) as other"
        f" from {{schema}}.fct_ci_runs where completed_at >= {in_window.format(c='completed_at')} group by 1", window)
    as_of = marts.rows("dashboard_overview", "select max(as_of_at) as as_of_at from {schema}.dashboard_overview", {})
    ints = ("session_count", "tokens_total", "runs", "succeeded", "failed", "running")
    tidy = [[{k: _num(v) if k == "cost_usd" else int(v or 0) if k in ints else v for k, v in r.items()} for r in rows]
            for rows in (by_agent, by_workflow, cron)]
    return ReportData(
        period=period, as_of=as_of[0]["as_of_at"] if as_of else None, complete=period.end_at <= now,
        volume=volume, workflows=_bucketed(period, list(merged.values()), ["started", "completed"]),
        cycle_times=cycle_times, cost_by_agent=tidy[0], cost_by_workflow=tidy[1], cron=tidy[2],
        ci=_bucketed(period, ci, ["succeeded", "failed", "other"]),
        alerts=_open_alerts(store, min(period.end_at, now)), missing=marts.missing, tiers=tiers)


def totals(data: ReportData) -> dict[str, float | None]:
    cycle = [r["cycle_time_hours"] for r in data.cycle_times if r["cycle_time_hours"] is not None]
    ci_ok, ci_failed = sum(r["succeeded"] for r in data.ci), sum(r["failed"] for r in data.ci)
    return {
        "events": sum(r["events"] for r in data.volume),
        "workflows_started": sum(r["started"] for r in data.workflows),
        "workflows_completed": sum(r["completed"] for r in data.workflows),
        "median_cycle_time_hours": statistics.median(cycle) if cycle else None,
        "agent_cost_usd": round(sum(r["cost_usd"] for r in data.cost_by_agent), 4),
        "cron_failures": sum(r["failed"] for r in data.cron),
        "ci_success_rate": ci_ok / (ci_ok + ci_failed) * 100 if ci_ok + ci_failed else None,
        "open_alerts": len(data.alerts),
    }


HEADLINES: list[tuple[str, str, str, str | None]] = [  # key, label, unit, which way is good
    ("events", "Events", "count", None),
    ("workflows_started", "Workflows started", "count", None),
    ("workflows_completed", "Workflows completed", "count", "up"),
    ("median_cycle_time_hours", "Median cycle time", "hours", "down"),
    ("agent_cost_usd", "Agent cost", "money", "down"),
    ("cron_failures", "Cron failures", "count", "down"),
    ("ci_success_rate", "CI success rate", "percent", "up"),
    ("open_alerts", "Open alerts", "count", "down"),
]


def collect(reader: HistoryReader, store: AlertStore | None, period: Period,
            now: Callable[[], datetime] | datetime | None = None) -> ReportData:
    """The report's data for `period`, with each headline beside the previous period's."""
    moment = now() if callable(now) else now or datetime.now(UTC).replace(tzinfo=None)
    data = _collect(reader, store, period, moment)
    current, before = totals(data), totals(_collect(reader, store, period.previous(), moment))
    data.headlines = {key: Headline(key, label, current[key], before[key], unit, better)  # type: ignore[arg-type]
                      for key, label, unit, better in HEADLINES}
    return data
