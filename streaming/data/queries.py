"""The REST API's reads of the marts plus the live events: the overview, workflows (with paging),
events and Charlie instances, as the response models. Filters are bound parameters; the only SQL
text is the constant fragments below.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streaming.data.marts import MartsUnavailable, WarehouseUnreachable, iso, json_value, plain, utcnow, where
from streaming.data.serving import TTL, LiveView, Serving
from streaming.state.snapshot import completed_today, overview_cycle_times
from streaming.schemas import (
    Actor,
    Assignee,
    CiStatus,
    CronJobs,
    EventMetadata,
    EventOut,
    EventPage,
    EventTotals,
    GitHubRef,
    Health,
    InstanceList,
    InstanceOut,
    InstanceTotals,
    LiveTotals,
    Overview,
    Sessions,
    SystemStatus,
    Target,
    TradingBot,
    WorkflowOut,
    WorkflowPage,
    WorkflowRef,
    WorkflowTotals,
    Workload,
)

# --- /dashboard/overview -----------------------------------------------------------------------------

_EMPTY_OVERVIEW = {"as_of_at": None, "workflows_total": 0, "workflows_pending": 0, "workflows_active": 0,
                  "workflows_completed": 0, "workflows_canceled": 0, "workflows_failed": 0, "completed_today": 0,
                  "avg_cycle_time_hours": None, "median_cycle_time_hours": None, "events_total": 0,
                  "events_last_24h": 0, "instances_total": 0, "instances_healthy": 0}
_STATUSES = ("pending", "active", "completed", "canceled", "failed")


def _marts_or_live_only(data: Serving, sql: str, params: dict[str, Any] | None = None) -> list[dict]:
    """The marts' rows; none before the first build when the live state answers alone (without
    it, or with the warehouse unreachable, `MartsUnavailable` stands: the route's 503)."""
    try:
        return data.marts.query(sql, params)
    except MartsUnavailable as exc:
        if isinstance(exc, WarehouseUnreachable) or data.state is None or not data.state.ready:
            raise
        return []


def read_overview(data: Serving) -> Overview:
    """`dashboard_overview` of the last build, with the live workflow state applied: each workflow
    the live state recomputed counts by its live row instead of its built one (and a built one it
    absorbed no longer counts), new events add; before the first build, the live state alone."""
    rows = _marts_or_live_only(data, "select * from dashboard_overview")
    o = {k: plain(v) for k, v in rows[0].items()} if rows else dict(_EMPTY_OVERVIEW)
    live = data.live_view()
    now = utcnow()
    day_ago = now - timedelta(hours=24)
    totals = {status: o[f"workflows_{status}"] for status in _STATUSES}
    total, done_today = o["workflows_total"], o["completed_today"]
    avg_cycle, median_cycle = o["avg_cycle_time_hours"], o["median_cycle_time_hours"]
    state = live.state
    if state is not None:
        for old in state.hidden_rows.values():
            total -= 1
            totals[old["status"]] = totals.get(old["status"], 0) - 1
            done_today -= completed_today(_naive_or_none(old.get("completed_at")), now)
        for row in state.rows.values():
            total += 1
            totals[row["status"]] = totals.get(row["status"], 0) + 1
            done_today += completed_today(_naive_or_none(row.get("completed_at")), now)
        if state.rows:
            avg_cycle, median_cycle = overview_cycle_times(state.cycle_times())
    status, _ = read_system_status(data)
    new_workflows = len(live.new_workflow_ids)
    return Overview(
        as_of=iso(o["as_of_at"]), generated_at=iso(now),
        workflows=WorkflowTotals(
            total=total, pending=totals["pending"], active=totals["active"], completed=totals["completed"],
            canceled=totals["canceled"], failed=totals["failed"], completed_today=done_today,
            avg_cycle_time_hours=avg_cycle, median_cycle_time_hours=median_cycle),
        events=EventTotals(total=o["events_total"] + live.size,
                           last_24h=o["events_last_24h"] + sum(e["occurred_at"] > day_ago for e in live.events)),
        instances=InstanceTotals(total=o["instances_total"], healthy=o["instances_healthy"]),
        system_status=status,
        live=LiveTotals(events=live.size, new_workflows=new_workflows,
                        latest_event_at=iso(max((e["occurred_at"] for e in live.events), default=None))),
    )


def read_system_status(data: Serving) -> tuple[SystemStatus | None, datetime | None]:
    """The seeds' `system.status.update` payload: `system_status_update` of the last build, its
    cron jobs as the live state computes them (`fct_cron_job_totals` over the pushed cron runs too),
    and the moment it describes (the build's `as_of_at`, or now when live cron runs moved it).
    `/dashboard/overview`'s `systemStatus` and the pushed message are both this."""
    status_rows = _marts_or_live_only(data, "select * from system_status_update")
    state = data.state.snapshot if data.state is not None and data.state.ready else None
    s = {k: plain(v) for k, v in status_rows[0].items()} if status_rows else None
    live_cron = state.cron_totals if state is not None else None
    cron = live_cron if live_cron is not None else s
    if cron is None:
        return None, None
    s = s or {}
    status = SystemStatus(
        sessions=Sessions(active=s.get("sessions_active") or 0, total_cost=s.get("sessions_total_cost") or 0,
                          highest_cost=s.get("sessions_highest_cost") or 0),
        cron_jobs=CronJobs(total=cron.get("cron_jobs_total") or 0, healthy=cron.get("cron_jobs_healthy") or 0,
                           failed=cron.get("cron_jobs_failed") or 0),
        trading_bot=TradingBot(status=s.get("trading_bot_status") or "idle", daily_pnl=s.get("trading_daily_pnl") or 0))
    return status, (utcnow() if live_cron is not None else s.get("as_of_at"))


def _naive_or_none(ts: datetime | None) -> datetime | None:
    return None if ts is None else _naive(ts)


# --- /api/workflows ----------------------------------------------------------------------------------

_WORKFLOW_COLUMNS = ("workflow_id, workflow_name, status, status_source, assignee_id, assignee_name, assignee_type, "
                     "charlie_instance_id, priority, linear_issue_key, linear_team_key, github_repo, github_pr_number, "
                     "pr_count, sources, actors, actor_count, event_count, first_event_at, last_event_at, completed_at, "
                     "cycle_time_hours, session_count, session_cost_usd, last_ci_conclusion, last_ci_completed_at, "
                     "ci_run_count, ci_failed_run_count")


def _split(value: str | None) -> list[str]:
    return [s for s in (value or "").split(", ") if s]


def workflow_out(row: dict, live_count: int = 0, is_live: bool = False) -> WorkflowOut:
    """A `fct_workflows` row (built or computed live) as the API shows it."""
    return WorkflowOut(
        id=row["workflow_id"], name=row["workflow_name"], status=row["status"], status_source=row.get("status_source"),
        assignee=Assignee(id=row["assignee_id"], name=row["assignee_name"], type=row["assignee_type"])
        if row["assignee_id"] else None,
        charlie_instance_id=row["charlie_instance_id"], priority=row["priority"],
        linear_issue_key=row["linear_issue_key"], linear_team_key=row.get("linear_team_key"),
        github=GitHubRef(repo=row["github_repo"], pr_number=row["github_pr_number"]) if row["github_repo"] else None,
        pr_count=int(row.get("pr_count") or 0), sources=_split(row["sources"]), actors=_split(row.get("actors")),
        actor_count=int(row.get("actor_count") or 0),
        event_count=int(row["event_count"]), live_event_count=live_count,
        first_event_at=iso(row["first_event_at"]), last_event_at=iso(row["last_event_at"]),
        completed_at=iso(row["completed_at"]), cycle_time_hours=plain(row["cycle_time_hours"]),
        session_count=int(row.get("session_count") or 0), session_cost_usd=float(row.get("session_cost_usd") or 0),
        ci=CiStatus(last_conclusion=row.get("last_ci_conclusion"), last_completed_at=iso(row.get("last_ci_completed_at")),
                    run_count=int(row.get("ci_run_count") or 0), failed_run_count=int(row.get("ci_failed_run_count") or 0))
        if row.get("ci_run_count") else None,
        is_live=is_live)


def _matches(row: dict, status: str | None, assignee: str | None, provider: str | None) -> bool:
    """The SQL filters of `read_workflows`, for a live row."""
    if status and row["status"] != status:
        return False
    if assignee and assignee not in (row["assignee_id"], row["assignee_name"], row["charlie_instance_id"]):
        return False
    return not provider or provider in _split(row["sources"])


_EPOCH = datetime(1970, 1, 1)
# `<last_event_at as microseconds since 1970 UTC>:<marts|live>:<workflow_id>`. The document gives
# this pattern, and every text it matches is a place in the order (17 digits reach the year 5138),
# so no cursor the document allows is refused. No `$`: the id runs to the end, whatever it holds.
CURSOR_PATTERN = r"^[0-9]{1,17}:(marts|live):[\s\S]"


@dataclass(frozen=True)
class Cursor:
    """Where a page of /api/workflows ended: the last row's sort key (last_event_at, workflow_id),
    and whether that row's state was computed live (informational: both kinds share one order)."""

    last_event_at: datetime
    workflow_id: str
    live: bool = False

    def encode(self) -> str:
        micros = (self.last_event_at - _EPOCH) // timedelta(microseconds=1)
        return f"{max(micros, 0)}:{'live' if self.live else 'marts'}:{self.workflow_id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """The place a cursor names; ValueError for a text that does not match `CURSOR_PATTERN`."""
        if not re.match(CURSOR_PATTERN, raw):
            raise ValueError("`cursor` is not a `nextCursor` of /api/workflows: pass one back unchanged, "
                             "or page with `offset`")
        micros, tier, workflow_id = raw.split(":", 2)
        return cls(last_event_at=_EPOCH + timedelta(microseconds=int(micros)), workflow_id=workflow_id,
                   live=tier == "live")


def _order_key(row: dict) -> tuple[datetime, str]:
    return _naive(row["last_event_at"]), row["workflow_id"]


def read_workflows(data: Serving, status: str | None, assignee: str | None, provider: str | None,
               limit: int, offset: int, cursor: Cursor | None = None) -> WorkflowPage:
    """A page of workflows by (last_event_at, workflow_id) descending: the marts' rows, except
    those the live state replaced, merged with the live state's rows. A `cursor` resumes after the
    row it names with a keyset read of the marts (`where (last_event_at, workflow_id) < cursor`),
    which costs the same at any depth."""
    live = data.live_view()
    state = live.state
    live_rows = [r for r in state.rows.values() if _matches(r, status, assignee, provider)] if state else []
    hidden = sorted(state.hidden) if state else []
    if cursor is not None:
        after = (cursor.last_event_at, cursor.workflow_id)
        live_rows = [r for r in live_rows if _order_key(r) < after]
    live_rows.sort(key=_order_key, reverse=True)

    params: dict[str, Any] = {}
    conditions = []
    if status:
        conditions.append("status = %(status)s")
        params["status"] = status
    if assignee:
        conditions.append("(assignee_id = %(assignee)s or assignee_name = %(assignee)s"
                          " or charlie_instance_id = %(assignee)s)")
        params["assignee"] = assignee
    if provider:
        # `sources` is the workflow's sorted source list joined by ', '; provider is one of SOURCES.
        conditions.append("(', ' || sources || ', ') like %(provider_like)s")
        params["provider_like"] = f"%, {provider}, %"
    count_params = dict(params)
    page_conditions = list(conditions)
    if hidden:
        page_conditions.append("not " + data.marts.in_list("workflow_id", "hidden"))
        params["hidden"] = hidden
    if cursor is not None:
        # The row comparison spelled out: the leading `<=` lets DuckDB skip row groups by their
        # min/max (the snapshot is stored in this order) and Postgres start its index scan there.
        page_conditions.append("last_event_at <= %(after_at)s"
                               " and (last_event_at < %(after_at)s or workflow_id < %(after_id)s)")
        params.update(after_at=cursor.last_event_at, after_id=cursor.workflow_id)
    # With live rows in the order, an offset counts over both: the marts' first offset + limit rows
    # are enough to merge with them. Without, the offset is the marts' own.
    skip = 0 if live_rows or cursor is not None else offset
    take = limit + 1 + (offset if live_rows and cursor is None else 0)
    params.update(limit=take, offset=skip)
    try:
        rows = data.marts.query(
            f"select {_WORKFLOW_COLUMNS} from fct_workflows{where(page_conditions)}"
            " order by last_event_at desc, workflow_id desc limit %(limit)s offset %(offset)s", params)
        # Event counts come with the rows (fct_workflows.event_count): no query per workflow. The
        # total is its own count: a `count(*) over ()` beside the page kept the engine from a top-N
        # and sorted every workflow for each page (150 ms a page at 250k workflows).
        wh_total = int(data.cached(json.dumps(["workflow_total", count_params], default=str), TTL["workflows"],
                                   lambda: data.marts.query(f"select count(*) as n from fct_workflows{where(conditions)}",
                                                            count_params)[0]["n"]))
    except MartsUnavailable:
        if state is None:
            raise
        rows, wh_total = [], 0
    hidden_matching = sum(1 for r in (state.hidden_rows.values() if state else ()) if _matches(r, status, assignee, provider))
    merged = sorted([(r, True) for r in live_rows] + [(r, False) for r in rows],
                    key=lambda t: _order_key(t[0]), reverse=True)
    start = offset if live_rows and cursor is None else 0
    window = merged[start:start + limit + 1]
    shown = window[:limit]
    has_more = len(window) > limit
    counts = state.live_counts if state else {}
    page = [workflow_out(r, counts.get(r["workflow_id"], 0), is_live) for r, is_live in shown]
    next_cursor = None
    if has_more and shown:
        last, is_live = shown[-1]
        at, workflow_id = _order_key(last)
        next_cursor = Cursor(last_event_at=at, workflow_id=workflow_id, live=is_live).encode()
    return WorkflowPage(workflows=page, total=wh_total - hidden_matching + len(
        [r for r in state.rows.values() if _matches(r, status, assignee, provider)] if state else []),
        limit=limit, offset=None if cursor else offset, has_more=has_more, next_cursor=next_cursor)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts



# --- /api/events -------------------------------------------------------------------------------------

def _keys(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(k) for k in value]
    return [k for k in (value or "").split(", ") if k]


def _event(e: dict, live: bool) -> EventOut:
    workflow_id = e.get("effective_workflow_id") if live else e.get("workflow_id")
    return EventOut(
        id=e["event_id"], timestamp=iso(e["occurred_at"] if live else e["event_at"]), source=e["source"],
        type=e["event_type"],
        actor=Actor(id=e.get("actor_id"), name=e.get("actor_name"), type=e.get("actor_type"),
                    instance=e.get("actor_instance") if live else e.get("actor_instance_id")),
        target=Target(type=e.get("target_type"), id=e.get("target_id"), title=e.get("target_title"),
                      url=e.get("target_url")),
        workflow=WorkflowRef(id=workflow_id) if workflow_id else None,
        payload=json_value(e.get("payload"), {}),
        metadata=EventMetadata(correlation_id=e.get("correlation_id"), parent_event_id=e.get("parent_event_id"),
                               tags=json_value(e.get("tags"), []), correlation_keys=_keys(e.get("correlation_keys"))),
        is_live=live)


_EVENT_COLUMNS = ("event_id, workflow_id, source, event_type, actor_id, actor_name, actor_type, actor_instance_id,"
                  " target_type, target_id, target_title, target_url, correlation_id, parent_event_id, correlation_keys,"
                  " tags, payload, event_at")


def _with_live(rows: list[dict], view: LiveView, workflow: str | None, since: datetime | None, limit: int) -> EventPage:
    """The marts' `rows` with the live events merged in: a live copy of an event the marts have (a
    PR edited, an issue moved) replaces the built one (one event, in its newest state); then the
    first `limit` from `since`, or the latest `limit`, oldest first."""
    newer = {e["event_id"] for e in view.updated}
    events = [(r["event_at"], r["event_id"], _event(r, live=False)) for r in rows if r["event_id"] not in newer]
    for e in [*view.events, *view.updated]:
        if workflow and e["effective_workflow_id"] != workflow:
            continue
        if since and e["occurred_at"] < since:
            continue
        events.append((e["occurred_at"], e["event_id"], _event(e, live=True)))
    events.sort(key=lambda t: (t[0], t[1]))
    events = events[:limit] if since else events[-limit:]
    out = [t[2] for t in events]
    return EventPage(events=out, next_since=out[-1].timestamp if out else None)


def read_events(data: Serving, workflow: str | None, since: datetime | None, limit: int) -> EventPage:
    params: dict[str, Any] = {"limit": limit}
    conditions = []
    if workflow:
        conditions.append("workflow_id = %(workflow)s")
        params["workflow"] = workflow
    if since:
        conditions.append("event_at >= %(since)s")
        params["since"] = since
    # With `since`: the first `limit` events from there (read forward); without: the latest `limit`.
    order = "event_at, event_id" if since else "event_at desc, event_id desc"
    rows = _marts_or_live_only(
        data, f"select {_EVENT_COLUMNS} from fct_workflow_events{where(conditions)} order by {order} limit %(limit)s",
        params)
    return _with_live(rows, data.live_view(), workflow, since, limit)


def read_workflow_events(data: Serving, workflows: list[str], since: datetime | None, limit: int) -> dict[str, EventPage]:
    """`read_events` of each of `workflows` (what /api/events?workflow=X answers for each X), in one
    query: a page of workflows with their events is one read of the marts, not one per workflow."""
    if not workflows:
        return {}
    params: dict[str, Any] = {"limit": limit, "workflows": list(workflows)}
    conditions = [data.marts.in_list("workflow_id", "workflows")]
    if since:
        conditions.append("event_at >= %(since)s")
        params["since"] = since
    order = "event_at, event_id" if since else "event_at desc, event_id desc"
    rows = _marts_or_live_only(
        data,
        f"with ranked as (select {_EVENT_COLUMNS}, row_number() over (partition by workflow_id order by {order}) as n"
        f" from fct_workflow_events{where(conditions)}) select * from ranked where n <= %(limit)s", params)
    by_workflow: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_workflow[row["workflow_id"]].append(row)
    view = data.live_view()
    return {w: _with_live(by_workflow.get(w, []), view, w, since, limit) for w in workflows}


# --- /api/charlie/instances -------------------------------------------------------------------------

def read_instances(data: Serving) -> InstanceList:
    rows = data.marts.query(
        "select i.charlie_instance_id, i.instance_name, i.instance_type, i.instance_status, i.github_login,"
        " i.version, i.health_status, i.is_healthy, i.queue_depth, i.uptime_seconds, i.health_checked_at,"
        " i.event_count, i.last_event_at, w.active_workflows, w.completed_today, w.completed_total,"
        " w.events_last_24h"
        " from dim_charlie_instances i left join fct_charlie_instance_workload w"
        " on i.charlie_instance_id = w.charlie_instance_id order by i.charlie_instance_id")
    live = Counter(e.get("actor_instance") for e in data.live_view().events)
    return InstanceList(instances=[InstanceOut(
        id=r["charlie_instance_id"], name=r["instance_name"], type=r["instance_type"], status=r["instance_status"],
        github_login=r["github_login"], version=r["version"],
        health=Health(status=r["health_status"], is_healthy=bool(r["is_healthy"]), queue_depth=r["queue_depth"],
                      uptime_seconds=r["uptime_seconds"], checked_at=iso(r["health_checked_at"])),
        workload=Workload(active_workflows=r["active_workflows"] or 0, completed_today=r["completed_today"] or 0,
                          completed_total=r["completed_total"] or 0, events_last_24h=r["events_last_24h"] or 0),
        event_count=int(r["event_count"] or 0) + live.get(r["charlie_instance_id"], 0),
        live_event_count=live.get(r["charlie_instance_id"], 0), last_event_at=iso(r["last_event_at"]),
    ) for r in rows])
