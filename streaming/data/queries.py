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

from streaming.data.marts import MartsUnavailable, iso, json_value, plain, utcnow, where
from streaming.data.serving import TTL, Serving
from streaming.schemas import (
    Actor,
    Assignee,
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

def read_overview(data: Serving) -> Overview:
    rows = data.marts.query("select * from dashboard_overview")
    if not rows:
        raise MartsUnavailable("dashboard_overview is empty")
    o = {k: plain(v) for k, v in rows[0].items()}
    status_rows = data.marts.query("select * from system_status_update")
    live = data.live_view()
    day_ago = utcnow() - timedelta(hours=24)
    new_workflows = len(live.new_workflow_ids)
    status = None
    if status_rows:
        s = {k: plain(v) for k, v in status_rows[0].items()}
        status = SystemStatus(
            sessions=Sessions(active=s["sessions_active"] or 0, total_cost=s["sessions_total_cost"] or 0,
                              highest_cost=s["sessions_highest_cost"] or 0),
            cron_jobs=CronJobs(total=s["cron_jobs_total"] or 0, healthy=s["cron_jobs_healthy"] or 0,
                               failed=s["cron_jobs_failed"] or 0),
            trading_bot=TradingBot(status=s["trading_bot_status"], daily_pnl=s["trading_daily_pnl"] or 0))
    return Overview(
        as_of=iso(o["as_of_at"]), generated_at=iso(utcnow()),
        workflows=WorkflowTotals(
            total=o["workflows_total"] + new_workflows, pending=o["workflows_pending"],
            active=o["workflows_active"] + new_workflows, completed=o["workflows_completed"],
            canceled=o["workflows_canceled"], failed=o["workflows_failed"], completed_today=o["completed_today"],
            avg_cycle_time_hours=o["avg_cycle_time_hours"], median_cycle_time_hours=o["median_cycle_time_hours"]),
        events=EventTotals(total=o["events_total"] + live.size,
                           last_24h=o["events_last_24h"] + sum(e["occurred_at"] > day_ago for e in live.events)),
        instances=InstanceTotals(total=o["instances_total"], healthy=o["instances_healthy"]),
        system_status=status,
        live=LiveTotals(events=live.size, new_workflows=new_workflows,
                        latest_event_at=iso(max((e["occurred_at"] for e in live.events), default=None))),
    )


# --- /api/workflows ----------------------------------------------------------------------------------

_WORKFLOW_COLUMNS = ("workflow_id, workflow_name, status, assignee_id, assignee_name, assignee_type, "
                     "charlie_instance_id, priority, linear_issue_key, github_repo, github_pr_number, sources, "
                     "event_count, first_event_at, last_event_at, completed_at, cycle_time_hours")


def _workflow(row: dict, live_count: int, last_live: datetime | None) -> WorkflowOut:
    last = row["last_event_at"]
    if last_live is not None and (last is None or last_live > last):
        last = last_live
    return WorkflowOut(
        id=row["workflow_id"], name=row["workflow_name"], status=row["status"],
        assignee=Assignee(id=row["assignee_id"], name=row["assignee_name"], type=row["assignee_type"])
        if row["assignee_id"] else None,
        charlie_instance_id=row["charlie_instance_id"], priority=row["priority"],
        linear_issue_key=row["linear_issue_key"],
        github=GitHubRef(repo=row["github_repo"], pr_number=row["github_pr_number"]) if row["github_repo"] else None,
        sources=[s for s in (row["sources"] or "").split(", ") if s],
        event_count=int(row["event_count"]) + live_count, live_event_count=live_count,
        first_event_at=iso(row["first_event_at"]), last_event_at=iso(last), completed_at=iso(row["completed_at"]),
        cycle_time_hours=plain(row["cycle_time_hours"]), is_live=False)


def _live_workflows(events: list[dict]) -> list[tuple[datetime, WorkflowOut]]:
    """Workflows no build has seen yet, from their live events, each with its last event's time; newest first."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        grouped[e["effective_workflow_id"]].append(e)
    out = []
    for workflow_id, evs in grouped.items():
        evs.sort(key=lambda e: e["occurred_at"])
        out.append((evs[-1]["occurred_at"], WorkflowOut(
            id=workflow_id, name=evs[-1].get("target_title") or workflow_id, status="active", assignee=None,
            charlie_instance_id=None, priority=None, linear_issue_key=None, github=None,
            sources=sorted({e["source"] for e in evs}), event_count=len(evs), live_event_count=len(evs),
            first_event_at=iso(evs[0]["occurred_at"]), last_event_at=iso(evs[-1]["occurred_at"]),
            completed_at=None, cycle_time_hours=None, is_live=True)))
    return sorted(out, key=lambda t: (t[0], t[1].id), reverse=True)


_EPOCH = datetime(1970, 1, 1)
# `<last_event_at as microseconds since 1970 UTC>:<marts|live>:<workflow_id>`. The document gives
# this pattern, and every text it matches is a place in the order (17 digits reach the year 5138),
# so no cursor the document allows is refused. No `$`: the id runs to the end, whatever it holds.
CURSOR_PATTERN = r"^[0-9]{1,17}:(marts|live):[\s\S]"


@dataclass(frozen=True)
class Cursor:
    """Where a page of /api/workflows ended: the last row's sort key (last_event_at, workflow_id),
    and whether that row was one of the live-only workflows listed before the marts' rows."""

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


def read_workflows(data: Serving, status: str | None, assignee: str | None, provider: str | None,
               limit: int, offset: int, cursor: Cursor | None = None) -> WorkflowPage:
    """A page of workflows: the live-only ones first (newest first), then the marts' rows by
    (last_event_at, workflow_id) descending. A `cursor` resumes after the row it names: among the
    live-only workflows when it was one of them, else with a keyset read of the marts
    (`where (last_event_at, workflow_id) < cursor`), which costs the same at any depth."""
    live = data.live_view()
    new_events = [e for e in live.events if e["effective_workflow_id"] in live.new_workflow_ids]
    live_only = [] if assignee or status not in (None, "active") else [
        (at, w) for at, w in _live_workflows(new_events) if provider is None or provider in w.sources]
    if cursor is None:
        live_left, wh_offset = live_only[offset:], max(0, offset - len(live_only))
    elif cursor.live:
        live_left, wh_offset = [t for t in live_only if (t[0], t[1].id) < (cursor.last_event_at, cursor.workflow_id)], 0
    else:
        live_left, wh_offset = [], 0
    taken = live_left[:limit]
    wh_limit = limit - len(taken)

    # One row more than the page shows, to know whether there is a next page.
    params: dict[str, Any] = {"limit": wh_limit + 1, "offset": wh_offset}
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
    # Event counts come with the rows (fct_workflows.event_count): no query per workflow. The total
    # is its own count: a `count(*) over ()` beside the page kept the engine from a top-N and sorted
    # every workflow for each page (150 ms a page at 250k workflows).
    count_params = dict(params)
    after = []
    if cursor is not None and not cursor.live:
        # The row comparison spelled out: the leading `<=` lets DuckDB skip row groups by their
        # min/max (the snapshot is stored in this order) and Postgres start its index scan there.
        after.append("last_event_at <= %(after_at)s"
                     " and (last_event_at < %(after_at)s or workflow_id < %(after_id)s)")
        params.update(after_at=cursor.last_event_at, after_id=cursor.workflow_id)
    rows = data.marts.query(
        f"select {_WORKFLOW_COLUMNS} from fct_workflows{where(conditions + after)}"
        " order by last_event_at desc, workflow_id desc limit %(limit)s offset %(offset)s", params)
    count_params = {k: v for k, v in count_params.items() if k not in ("limit", "offset")}
    wh_total = int(data.cached(json.dumps(["workflow_total", count_params], default=str), TTL["workflows"],
                               lambda: data.marts.query(f"select count(*) as n from fct_workflows{where(conditions)}",
                                                        count_params)[0]["n"]))
    last_live: dict[str, datetime] = {}
    for e in live.events:
        wid = e["effective_workflow_id"]
        if wid and (wid not in last_live or e["occurred_at"] > last_live[wid]):
            last_live[wid] = e["occurred_at"]
    page = [w for _, w in taken] + [
        _workflow(r, live.counts_by_workflow.get(r["workflow_id"], 0), last_live.get(r["workflow_id"]))
        for r in rows[:wh_limit]]
    has_more = len(live_left) > len(taken) or len(rows) > wh_limit
    next_cursor = None
    if has_more and rows[:wh_limit]:
        last = rows[wh_limit - 1]
        next_cursor = Cursor(last_event_at=_naive(last["last_event_at"]), workflow_id=last["workflow_id"]).encode()
    elif has_more:
        at, last_live_only = taken[-1]
        next_cursor = Cursor(last_event_at=at, workflow_id=last_live_only.id, live=True).encode()
    return WorkflowPage(workflows=page, total=wh_total + len(live_only), limit=limit,
                        offset=None if cursor else offset, has_more=has_more, next_cursor=next_cursor)


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
    rows = data.marts.query(
        "select event_id, workflow_id, source, event_type, actor_id, actor_name, actor_type, actor_instance_id,"
        " target_type, target_id, target_title, target_url, correlation_id, parent_event_id, correlation_keys,"
        f" tags, payload, event_at from fct_workflow_events{where(conditions)} order by {order} limit %(limit)s",
        params)
    events = [(r["event_at"], r["event_id"], _event(r, live=False)) for r in rows]
    for e in data.live_view().events:
        if workflow and e["effective_workflow_id"] != workflow:
            continue
        if since and e["occurred_at"] < since:
            continue
        events.append((e["occurred_at"], e["event_id"], _event(e, live=True)))
    events.sort(key=lambda t: (t[0], t[1]))
    events = events[:limit] if since else events[-limit:]
    out = [t[2] for t in events]
    return EventPage(events=out, next_since=out[-1].timestamp if out else None)


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
