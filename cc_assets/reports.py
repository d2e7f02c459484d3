"""The daily operations report: one folder of CSV and Markdown per day, for the people who receive
scheduled exports (`reports_schedule`, sensors/reports.py).

    $CC_DATA_DIR/reports/<yyyy-mm-dd>/
        report.md           the day on a page: headline numbers, volume per source, top workflows, agents
        summary.csv         metric,value
        event_volume.csv    day,source,events,tier: the day and the 29 before it
        top_workflows.csv   the 10 workflows with the most events that day
        agent_sessions.csv  sessions agents started that day, with their tokens and cost

Event volume is read through the history interface (`resources/storage/history.py`: the warm tables for
recent days, the archive and cold tiers for older ones), so a report of a day long gone reads the
same as yesterday's. Workflows and agent sessions come from the marts beside the warm tables.
A run writes the day's whole folder beside the old one and renames it into place: a re-run
replaces the day's files, never adds to them, and a reader never sees half of two runs.
"""

import csv
import io
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from cc_assets.partitions import daily_partitions, single_run_backfill
from cc_assets.tiers import ARCHIVE_KEY, COLD_KEY
from resources.platform import PlatformResource
from resources.storage.history import HistoryReader

REPORT_KEY = AssetKey(["reports", "operations"])
GROUP = "reports"
TRAILING_DAYS = 30
TOP_WORKFLOWS = 10


@dataclass
class Report:
    """One day's numbers, as the files show them."""

    day: date
    as_of: Any
    volume: list[dict]  # day, source, events, tier over the trailing window
    workflows: dict[str, int]
    top: list[dict]
    agents: list[dict] | None  # None: the marts have no daily agent sessions yet
    tiers: list[tuple[str, date, date]] = field(default_factory=list)  # tier, first and last day it was read for

    def per_source(self) -> list[dict]:
        day, totals, window = self.day.isoformat(), {}, {}
        for row in self.volume:
            window[row["source"]] = window.get(row["source"], 0) + row["events"]
            if row["day"] == day:
                totals[row["source"]] = totals.get(row["source"], 0) + row["events"]
        return [{"source": s, "events_day": totals.get(s, 0), f"events_{TRAILING_DAYS}d": window[s]}
                for s in sorted(window, key=lambda s: (-totals.get(s, 0), -window[s], s))]

    def summary(self) -> list[dict]:
        sources = self.per_source()
        rows = [("events_day", sum(r["events_day"] for r in sources)),
                (f"events_{TRAILING_DAYS}d", sum(r[f"events_{TRAILING_DAYS}d"] for r in sources)),
                ("workflows_started", self.workflows["started"]),
                ("workflows_completed", self.workflows["completed"])]
        if self.agents is not None:
            rows += [("agent_sessions", sum(a["session_count"] for a in self.agents)),
                     ("agent_cost_usd", _money(sum((Decimal(str(a["cost_usd"] or 0)) for a in self.agents),
                                                   Decimal(0))))]
        return [{"metric": k, "value": v} for k, v in rows]


def _money(value: Any) -> str:
    return f"{Decimal(str(value or 0)):.4f}"


def build_report(reader: HistoryReader, day: date) -> Report:
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    volume = [{"day": r["bucket_start_at"].date().isoformat(), "source": r["source"], "events": int(r["event_count"]),
               "tier": r["tier"]}
              for r in reader.event_volume(end - timedelta(days=TRAILING_DAYS), end, grain="day")]
    tiers = [(s.tier, s.start.date(), (s.end - timedelta(days=1)).date())
             for s in reader.plan(end - timedelta(days=TRAILING_DAYS), end)]
    window = {"start": start, "end": end}
    as_of = reader.marts("select max(as_of_at) as as_of_at from {schema}.dashboard_overview")[0]["as_of_at"]
    workflows = reader.marts(
        "select sum(case when first_event_at >= %(start)s and first_event_at < %(end)s then 1 else 0 end) as started,"
        " sum(case when completed_at >= %(start)s and completed_at < %(end)s then 1 else 0 end) as completed"
        " from {schema}.fct_workflows where last_event_at >= %(start)s", window)[0]
    top = reader.marts(
        "select e.workflow_id, w.workflow_name, w.status, w.assignee_name, count(*) as events_day,"
        " w.event_count as events_total"
        " from {schema}.fct_workflow_events e join {schema}.fct_workflows w on w.workflow_id = e.workflow_id"
        " where e.event_at >= %(start)s and e.event_at < %(end)s"
        " group by e.workflow_id, w.workflow_name, w.status, w.assignee_name, w.event_count"
        " order by events_day desc, e.workflow_id limit %(limit)s", {**window, "limit": TOP_WORKFLOWS})
    try:
        agents = reader.marts(
            "select agent_name, session_count, completed_session_count, failed_session_count,"
            " running_session_count, workflow_count, tokens_total, cost_usd"
            " from {schema}.fct_agent_sessions_daily where session_date = %(day)s"
            " order by cost_usd desc, agent_name", {"day": day})
    except (duckdb.CatalogException, psycopg.errors.UndefinedTable):
        agents = None  # marts built before fct_agent_sessions_daily existed: the report says so
    return Report(day, as_of, volume, {k: int(v or 0) for k, v in workflows.items()},
                  [{"rank": n, **r} for n, r in enumerate(top, 1)], agents, tiers)


def _csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _money(v) if k == "cost_usd" else v for k, v in row.items()})
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: Report) -> str:
    day = report.day.isoformat()
    first = (report.day - timedelta(days=TRAILING_DAYS - 1)).isoformat()
    read = "; ".join(f"{'cold and archive' if tier == 'history' else tier} tier {first} to {last}"
                     for tier, first, last in report.tiers)
    as_of = f"{report.as_of:%Y-%m-%d %H:%M}" if isinstance(report.as_of, datetime) else report.as_of
    labels = {"events_day": "Events on the day", f"events_{TRAILING_DAYS}d": f"Events, {first} to {day}",
              "workflows_started": "Workflows started", "workflows_completed": "Workflows completed",
              "agent_sessions": "Agent sessions started", "agent_cost_usd": "Agent session cost (USD)"}
    parts = [
        f"# Operations report, {day}",
        f"Data as of {as_of} UTC (the last dbt build). Event volume read from the {read}.",
        _table(["", "value"], [[labels[r["metric"]], r["value"]] for r in report.summary()]),
        "## Events per source",
        _table(["source", day, f"last {TRAILING_DAYS} days"],
               [[r["source"], r["events_day"], r[f"events_{TRAILING_DAYS}d"]] for r in report.per_source()]),
        f"## Top {TOP_WORKFLOWS} workflows by events on the day",
        _table(["#", "workflow", "name", "status", "assignee", "events that day", "events in total"],
               [[r["rank"], r["workflow_id"], r["workflow_name"], r["status"], r["assignee_name"], r["events_day"],
                 r["events_total"]] for r in report.top]) if report.top else "No workflow had events that day.",
        "## Agent sessions started on the day",
    ]
    if report.agents is None:
        parts.append("Not in the marts yet (no `fct_agent_sessions_daily`): run a dbt build.")
    elif not report.agents:
        parts.append("No agent session started that day.")
    else:
        parts.append(_table(["agent", "sessions", "completed", "failed", "running", "workflows", "tokens", "cost (USD)"],
                            [[a["agent_name"], a["session_count"], a["completed_session_count"],
                              a["failed_session_count"], a["running_session_count"], a["workflow_count"],
                              a["tokens_total"], _money(a["cost_usd"])] for a in report.agents]))
    return "\n\n".join(parts) + "\n"


CSV_COLUMNS = {
    "summary.csv": ["metric", "value"],
    "event_volume.csv": ["day", "source", "events", "tier"],
    "top_workflows.csv": ["rank", "workflow_id", "workflow_name", "status", "assignee_name", "events_day",
                          "events_total"],
    "agent_sessions.csv": ["agent_name", "session_count", "completed_session_count", "failed_session_count",
                           "running_session_count", "workflow_count", "tokens_total", "cost_usd"],
}


def render(report: Report) -> tuple[dict[str, str], dict[str, int]]:
    """The day's files, and the rows of each CSV."""
    tables = {"summary.csv": report.summary(), "event_volume.csv": report.volume, "top_workflows.csv": report.top,
              "agent_sessions.csv": report.agents or []}
    files = {"report.md": markdown(report)} | {name: _csv(rows, CSV_COLUMNS[name]) for name, rows in tables.items()}
    return files, {name: len(rows) for name, rows in tables.items()}


def write_folder(root: Path, name: str, files: dict[str, str]) -> Path:
    """Make `root/name` hold exactly `files`: written into a hidden folder beside it, then renamed
    into place (the old folder moved aside for the instant between the two renames, then removed)."""
    root.mkdir(parents=True, exist_ok=True)
    target, tmp = root / name, root / f".{name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        for file, text in files.items():
            with (tmp / file).open("w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        old = root / f".{name}.{uuid.uuid4().hex}.old"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target


@asset(key=REPORT_KEY, deps=[AssetKey("fct_event_volume_1d"), COLD_KEY, ARCHIVE_KEY, AssetKey("fct_workflows"),
                             AssetKey("fct_workflow_events"), AssetKey("fct_agent_sessions_daily")],
       partitions_def=daily_partitions, backfill_policy=single_run_backfill, group_name=GROUP,
       kinds={"csv", "markdown"},
       description="Daily operations report in $CC_DATA_DIR/reports/<day>/ (CSV + Markdown): event volume per "
                   "source for the day and the trailing 30 days through the history interface, workflows "
                   "started and completed, top workflows by events, agent session cost.")
def operations_report(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    reader = HistoryReader(settings)
    written: dict[str, dict] = {}
    preview = ""
    for key in context.partition_keys:
        report = build_report(reader, date.fromisoformat(key))
        files, rows = render(report)
        folder = write_folder(settings.reports_dir, key, files)
        written[key] = {"folder": str(folder), "rows": rows,
                        "summary": {r["metric"]: r["value"] for r in report.summary()}}
        preview = files["report.md"]
        context.log.info(f"report for {key} in {folder}")
    last = written[context.partition_keys[-1]]
    return MaterializeResult(metadata={
        "folder": MetadataValue.path(last["folder"]),
        "files": MetadataValue.json({k: [str(Path(v["folder"]) / f) for f in ("report.md", *CSV_COLUMNS)]
                                     for k, v in written.items()}),
        "rows": MetadataValue.json({k: v["rows"] for k, v in written.items()}),
        **{f"rows/{name}": n for name, n in last["rows"].items()},
        "summary": MetadataValue.json(last["summary"]),
        "preview": MetadataValue.md(preview),
    })


report_assets = [operations_report]
