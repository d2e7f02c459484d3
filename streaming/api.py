"""The sidecar's REST API: dashboard reads, dashboards and widgets, workflows, events, Charlie commands.

Every route needs `Authorization: Bearer <HS256 JWT signed with CC_JWT_SECRET>`. Reads come from
the warm marts (`streaming/store.py`) plus the events seen since the last build, and carry
`Cache-Control: private, max-age=<the seeds' TTL>` and an `ETag` (a matching `If-None-Match` gets
304). Filters are bound parameters; the only SQL text is the constant fragments below.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from resources.settings import Settings
from resources.storage.history import HistoryReader
from streaming import grants
from streaming.auth import AuthError, Principal, verify_token
from streaming.live import LiveEvents
from streaming.store import HotHour, MartsUnavailable, Serving, json_value, plain, utcnow

# The seeds' TTLs (seconds): the REST spec's `caching:` for overview (30 s) and widget data (60 s);
# the cache service's workflows 60, events 30, instances 300; aggregations 30; entities 60.
TTL = {"overview": 30, "metrics": 30, "widget": 60, "workflows": 60, "events": 30, "instances": 300,
       "dashboards": 60}

SOURCES = ("github", "linear", "charlie", "openclaw", "cron", "weather", "logs")
Source = Literal["github", "linear", "charlie", "openclaw", "cron", "weather", "logs"]
WorkflowStatus = Literal["pending", "active", "completed", "canceled", "failed"]
WidgetType = Literal["overview", "system_status", "workflow_status", "event_volume", "system_metrics",
                     "charlie_workload", "recent_events", "workflows"]


# --- auth and plumbing ---------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An HS256 JWT signed with CC_JWT_SECRET (claims sub, exp).")
_serving_lock = threading.Lock()


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        settings = request.app.state.settings = Settings.from_env()
    return settings


# The two dependencies of every route are async: checking an HS256 token takes microseconds, and
# FastAPI would run a sync dependency in the thread pool, a handoff to another thread and back
# that costs each request a wait for the scheduler (milliseconds when a dbt build holds the cores).

async def principal(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    try:
        return verify_token(_settings(request).jwt_secret, credentials.credentials if credentials else None)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


async def authorize(request: Request, user: Annotated[Principal, Depends(principal)]) -> None:
    """403 unless the token's `rooms` / `scopes` grant this route (`streaming.grants`)."""
    route = request.scope.get("route")
    need = grants.need_of(request.method, getattr(route, "path_format", ""),
                          {k: request.query_params.getlist(k) for k in request.query_params})
    refused = grants.refusal(user, need)
    if refused:
        raise HTTPException(403, refused)


async def get_serving(request: Request) -> Serving:
    """The app's `Serving`, made on first use over `app.state.live` (the webhook routes' store)."""
    serving = getattr(request.app.state, "serving", None)
    return serving if serving is not None else await run_in_threadpool(_make_serving, request)


def _make_serving(request: Request) -> Serving:
    state = request.app.state
    with _serving_lock:
        serving = getattr(state, "serving", None)
        if serving is None:
            live = getattr(state, "live", None)
            if live is None:
                live = state.live = LiveEvents()
            serving = Serving.from_settings(_settings(request), live)
            serving.keep("overview", TTL["overview"], lambda: _overview_body(serving))
            state.serving = serving
    return serving


User = Annotated[Principal, Depends(principal)]
Data = Annotated[Serving, Depends(get_serving)]

router = APIRouter(dependencies=[Depends(authorize)],
                   responses={401: {"description": "Missing, invalid or expired bearer token"},
                              403: {"description": "The token's `rooms` or `scopes` claim does not grant this"},
                              503: {"description": "No marts to read yet (no build served), or the warehouse "
                                                   "is gone: retry after `Retry-After` seconds"}})

# What the routes with a body answer besides their own codes: FastAPI's 400 for a body that is not
# JSON at all (a JSON body that breaks the schema is a 422).
BAD_BODY = {400: {"description": "The body is not JSON"}}
NOT_OWNER = {403: {"description": "Not the dashboard's owner, or the token's `scopes` claim lacks `dashboards`"}}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _encode(payload: Any) -> tuple[bytes, str]:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(by_alias=True).encode()
    else:
        body = json.dumps(payload, separators=(",", ":"), default=_default).encode()
    return body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def cached_response(request: Request, encoded: tuple[bytes, str], max_age: int, status: int = 200) -> Response:
    body, etag = encoded
    headers = {"Cache-Control": f"private, max-age={max_age}", "ETag": etag}
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or etag in {t.strip().removeprefix("W/") for t in wanted.split(",")}):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def no_store(payload: Any, status: int = 200) -> Response:
    body, _ = _encode(payload)
    return Response(body, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"})


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat() + "Z"


def marts_unavailable(request: Request, exc: MartsUnavailable) -> Response:
    """The app's handler for every route: no marts to read yet (or the warehouse is gone) is a 503."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# --- /dashboard/overview -----------------------------------------------------------------------------

class WorkflowTotals(ApiModel):
    total: int
    pending: int
    active: int
    completed: int
    canceled: int
    failed: int
    completed_today: int = Field(alias="completedToday")
    avg_cycle_time_hours: float | None = Field(alias="avgCycleTimeHours")
    median_cycle_time_hours: float | None = Field(alias="medianCycleTimeHours")


class EventTotals(ApiModel):
    total: int
    last_24h: int = Field(alias="last24h")


class InstanceTotals(ApiModel):
    total: int
    healthy: int


class Sessions(ApiModel):
    active: int
    total_cost: float
    highest_cost: float


class CronJobs(ApiModel):
    total: int
    healthy: int
    failed: int


class TradingBot(ApiModel):
    status: str
    daily_pnl: float


class SystemStatus(ApiModel):
    """The payload of the seeds' `system.status.update` message, keys as the seeds spell them."""

    sessions: Sessions
    cron_jobs: CronJobs
    trading_bot: TradingBot


class LiveTotals(ApiModel):
    events: int = Field(description="Events seen since the last build (already counted above).")
    new_workflows: int = Field(alias="newWorkflows")
    latest_event_at: str | None = Field(alias="latestEventAt")


class Overview(ApiModel):
    as_of: str | None = Field(alias="asOf", description="The moment the marts describe (the last build).")
    generated_at: str = Field(alias="generatedAt")
    workflows: WorkflowTotals
    events: EventTotals
    instances: InstanceTotals
    system_status: SystemStatus | None = Field(alias="systemStatus")
    live: LiveTotals


def _overview(data: Serving) -> Overview:
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


def _overview_body(data: Serving) -> tuple[bytes, str]:
    return _encode(_overview(data))


@router.get("/dashboard/overview", response_model=Overview, tags=["dashboard"],
            summary="Executive overview: the one-row dashboard marts plus events seen since the last build")
async def dashboard_overview(request: Request, data: Data) -> Response:
    # The most read route: its body is kept encoded and fresh by Serving's keeper thread (a new
    # build, new live events, the TTL running out), so a read sends bytes on the event loop and
    # neither computes nor waits for a thread.
    encoded = data.ready("overview")
    if encoded is None:  # the first read, or live events newer than the keeper's last look
        encoded = await run_in_threadpool(data.cached, "overview", TTL["overview"], lambda: _overview_body(data),
                                          live=True)
    return cached_response(request, encoded, TTL["overview"])


# --- /dashboard/metrics ------------------------------------------------------------------------------

PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
MAX_CUSTOM_SPAN = timedelta(days=366)
FILTER_KEYS = {"source": "source", "eventType": "event_type", "actorType": "actor_type", "host": "host"}
EVENT_FILTERS = ("source", "eventType", "actorType")
# A window that starts at most this long ago (the 1h preset) counts its events from the hot tier.
HOT_WINDOW = PRESETS["1h"]
Tier = Literal["hot", "warm", "history"]


class TierSpan(ApiModel):
    tier: Tier = Field(description="hot: the hot tier (Redis or the embedded hot folder) merged with the events "
                                   "this sidecar has seen; warm: the marts; history: the cold and archive tiers.")
    start: str = Field(alias="from")
    end: str = Field(alias="to")


class MetricsQuery(ApiModel):
    time_range: str = Field(alias="timeRange")
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    grain: Literal["minute", "hour", "day"]
    filters: dict[str, list[str]]
    tiers: list[TierSpan] = Field(description="Which tier counted the events of which part of the window.")


class CountBy(ApiModel):
    key: str
    count: int


class EventBucket(ApiModel):
    start: str
    count: int


class EventMetrics(ApiModel):
    total: int
    live: int = Field(description="Of the total, events this sidecar has seen that the tier answering their "
                                  "hour does not have yet (since the last build, or the hot tier's last refresh).")
    by_tier: list[CountBy] = Field(alias="byTier", description="Of the total less `live`, events per tier read.")
    by_source: list[CountBy] = Field(alias="bySource")
    by_type: list[CountBy] = Field(alias="byType")
    by_actor_type: list[CountBy] = Field(alias="byActorType")
    series: list[EventBucket]


class WorkflowMetrics(ApiModel):
    started: int
    completed: int


class SystemBucket(ApiModel):
    start: str
    hosts: int
    avg_cpu_percent: float | None = Field(alias="avgCpuPercent")
    max_cpu_percent: float | None = Field(alias="maxCpuPercent")
    avg_memory_percent: float | None = Field(alias="avgMemoryPercent")
    max_disk_percent: float | None = Field(alias="maxDiskPercent")


class Metrics(ApiModel):
    query: MetricsQuery
    generated_at: str = Field(alias="generatedAt")
    events: EventMetrics
    workflows: WorkflowMetrics
    system: list[SystemBucket]


# The query parameters that take a time: the document says `date-time` (RFC 3339), and every
# RFC 3339 time is read (lower-case `t`/`z` too); anything else is a 400 that says so.
ISO_TIME = {"format": "date-time"}


def _parse_time(name: str, value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(400, f"`{name}` is not an ISO 8601 time: {value!r}") from exc
    if ts.tzinfo is None:
        return ts
    try:
        return ts.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # within a day of year 1 or 9999 with an offset: the range's end is as good
        return datetime.min if ts.year == 1 else datetime.max


def resolve_range(time_range: str, start: str | None, end: str | None,
                  now: datetime | None = None) -> tuple[datetime, datetime]:
    """The [from, to) window of a `timeRange`; HTTP 400 with the reason for anything else."""
    if time_range == "custom":
        if start is None or end is None:
            raise HTTPException(400, "timeRange=custom needs both `from` and `to` (ISO 8601)")
        lo, hi = _parse_time("from", start), _parse_time("to", end)
        if lo >= hi:
            raise HTTPException(400, "`from` must be before `to`")
        if hi - lo > MAX_CUSTOM_SPAN:
            raise HTTPException(400, f"a custom range spans at most {MAX_CUSTOM_SPAN.days} days")
        return lo, hi
    if time_range not in PRESETS:
        raise HTTPException(400, f"timeRange must be one of 1h, 24h, 7d, 30d, custom; not {time_range!r}")
    if start is not None or end is not None:  # `to=` (empty) too: it is not "no `to`"
        raise HTTPException(400, "`from` and `to` go with timeRange=custom only")
    hi = now or utcnow()
    return hi - PRESETS[time_range], hi


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """`filters` is a JSON object (the seeds' `type: object`): source, eventType, actorType, host."""
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"`filters` is not JSON: {exc}") from exc
    except RecursionError as exc:  # a few kilobytes of brackets exhaust the parser's stack
        raise HTTPException(400, "`filters` is nested too deeply: it is an object of strings or lists of strings") from exc
    if not isinstance(value, dict):
        raise HTTPException(400, "`filters` must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, item in value.items():
        if key not in FILTER_KEYS:
            raise HTTPException(400, f"unknown filter {key!r}; known: {', '.join(FILTER_KEYS)}")
        items = item if isinstance(item, list) else [item]
        if not items or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in items):
            raise HTTPException(400, f"filter {key!r} takes a string or a list of strings")
        out[key] = items
    return out


def _grain(lo: datetime, hi: datetime) -> Literal["minute", "hour", "day"]:
    span = hi - lo
    return "minute" if span <= timedelta(hours=6) else "hour" if span <= timedelta(days=7) else "day"


def _truncate(ts: datetime, grain: str) -> datetime:
    if grain == "day":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(second=0, microsecond=0)


def _where(conditions: list[str]) -> str:
    return (" where " + " and ".join(conditions)) if conditions else ""


Span = tuple[Tier, datetime, datetime, HotHour | None]


def _hot_window(time_range: str, lo: datetime) -> bool:
    return time_range == "1h" or lo >= utcnow() - HOT_WINDOW


def _event_spans(data: Serving, lo: datetime, hi: datetime,
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


def _merged(spans: list[tuple[Tier, datetime, datetime, HotHour | None]]) -> list[TierSpan]:
    out: list[TierSpan] = []
    for tier, start, end, _ in spans:
        if out and out[-1].tier == tier:
            out[-1].end = iso(end)
        else:
            out.append(TierSpan(tier=tier, start=iso(start), end=iso(end)))
    return out


def _metrics(data: Serving, time_range: str, lo: datetime, hi: datetime, filters: dict[str, list[str]]) -> Metrics:
    marts = data.marts
    grain = _grain(lo, hi)
    # Events: hourly rollup buckets that start inside the window (so the window is hour-grained).
    event_grain = "day" if grain == "day" else "hour"
    lo_h = _truncate(lo, "hour")
    spans, reader = _event_spans(data, lo_h, hi, _hot_window(time_range, lo))
    by_source, by_type, by_actor, series, by_tier = Counter(), Counter(), Counter(), Counter(), Counter()

    def count(tier: str | None, bucket: datetime, source: str, event_type: str, actor_type: str | None,
              n: int) -> None:
        by_source[source] += n
        by_type[event_type] += n
        by_actor[actor_type or "unknown"] += n
        series[_truncate(bucket, event_grain)] += n
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
                             " from fct_event_volume_1h" + _where(conditions), params):
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
            bucket = _truncate(e["occurred_at"], "hour")
            if bucket in hot and e["event_id"] not in hot[bucket].event_ids and e["occurred_at"] < hi and wanted(
                    e["source"], e["event_type"], e.get("actor_type")):
                live_n += 1
                count(None, bucket, e["source"], e["event_type"], e.get("actor_type"), 1)

    # Live events the marts do not have yet, in the parts the hot tier does not answer.
    for e in data.live_view().events:
        if not (lo_h <= e["occurred_at"] < hi) or _truncate(e["occurred_at"], "hour") in hot:
            continue
        if not wanted(e["source"], e["event_type"], e.get("actor_type")):
            continue
        live_n += 1
        count(None, e["occurred_at"], e["source"], e["event_type"], e.get("actor_type"), 1)

    wf = marts.query(
        "select sum(case when first_event_at >= %(lo)s and first_event_at < %(hi)s then 1 else 0 end) as started,"
        " sum(case when completed_at >= %(lo)s and completed_at < %(hi)s then 1 else 0 end) as completed"
        " from fct_workflows where last_event_at >= %(lo)s", {"lo": lo, "hi": hi})[0]

    table = "fct_system_metrics_1m" if grain == "minute" else "fct_system_metrics_1h"
    sys_params: dict[str, Any] = {"lo": _truncate(lo, "minute" if grain == "minute" else "hour"), "hi": hi}
    sys_conditions = ["bucket_start_at >= %(lo)s", "bucket_start_at < %(hi)s"]
    if "host" in filters:
        sys_params["host"] = filters["host"]
        sys_conditions.append(marts.in_list("host", "host"))
    system_rows = marts.query(
        "select bucket_start_at, host, avg_cpu_percent, max_cpu_percent, avg_memory_percent, max_disk_percent"
        f" from {table}" + _where(sys_conditions), sys_params)  # noqa: S608 - table is one of two constants
    buckets: dict[datetime, list[dict]] = defaultdict(list)
    for r in system_rows:
        buckets[_truncate(r["bucket_start_at"], grain)].append({k: plain(v) for k, v in r.items()})
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
                           tiers=_merged(spans)),
        generated_at=iso(utcnow()),
        events=EventMetrics(total=sum(by_source.values()), live=live_n, by_tier=ranked(by_tier),
                            by_source=ranked(by_source),
                            by_type=ranked(by_type, 50), by_actor_type=ranked(by_actor),
                            series=[EventBucket(start=iso(k), count=v) for k, v in sorted(series.items())]),
        workflows=WorkflowMetrics(started=int(wf["started"] or 0), completed=int(wf["completed"] or 0)),
        system=system,
    )


def _metrics_cached(data: Serving, time_range: str, start: str | None, end: str | None,
                    filters: str | None) -> tuple[bytes, str]:
    lo, hi = resolve_range(time_range, start, end)
    parsed = parse_filters(filters)
    # Presets slide with the clock: cache them by the minute they end in.
    key = json.dumps(["metrics", time_range, iso(lo) if time_range == "custom" else None,
                      iso(hi) if time_range == "custom" else iso(_truncate(hi, "minute")), parsed], sort_keys=True)
    # The hot tier changes apart from the marts (hot_job, every 5 minutes): recount it soon.
    ttl = Serving.HOT_REFRESH_S if _hot_window(time_range, lo) else TTL["metrics"]
    return data.cached(key, ttl, lambda: _encode(_metrics(data, time_range, lo, hi, parsed)), live=True)


_FILTER_VALUE = {"type": "string", "minLength": 1, "maxLength": 200}
# `filters` is JSON in a query parameter: declared with its media type and schema (FastAPI would
# only say "a string"), so the document says which filters are valid.
FILTERS_PARAMETER = {
    "name": "filters", "in": "query", "required": False,
    "description": 'A JSON object, e.g. {"source": ["github"], "host": "web-1"}: each key a string or a '
                   "non-empty list of strings.",
    "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {key: {"anyOf": [_FILTER_VALUE, {"type": "array", "items": _FILTER_VALUE, "minItems": 1}]}
                       for key in FILTER_KEYS}}}},
}


@router.get("/dashboard/metrics", response_model=Metrics, tags=["dashboard"],
            summary="Event volume, workflow throughput and host metrics over a time range",
            responses={400: {"description": "`from`/`to` without timeRange=custom (or custom without both), "
                                            "`from` not before `to`, a custom range over 366 days, or `filters` "
                                            "that are not the JSON object described"}},
            openapi_extra={"parameters": [FILTERS_PARAMETER]})
def dashboard_metrics(
    request: Request, data: Data,
    time_range: Annotated[Literal["1h", "24h", "7d", "30d", "custom"], Query(alias="timeRange")] = "24h",
    start: Annotated[str | None, Query(alias="from", description="With timeRange=custom",
                                       json_schema_extra=ISO_TIME)] = None,
    end: Annotated[str | None, Query(alias="to", description="Exclusive; with timeRange=custom",
                                     json_schema_extra=ISO_TIME)] = None,
    filters: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Response:
    encoded = _metrics_cached(data, time_range, start, end, filters)
    return cached_response(request, encoded, TTL["metrics"])


# --- /api/workflows ----------------------------------------------------------------------------------

class Assignee(ApiModel):
    id: str | None
    name: str | None
    type: str | None


class GitHubRef(ApiModel):
    repo: str | None
    pr_number: int | None = Field(alias="prNumber")


class WorkflowOut(ApiModel):
    id: str
    name: str
    status: str
    assignee: Assignee | None
    charlie_instance_id: str | None = Field(alias="charlieInstanceId")
    priority: str | None
    linear_issue_key: str | None = Field(alias="linearIssueKey")
    github: GitHubRef | None
    sources: list[str]
    event_count: int = Field(alias="eventCount", description="Events in the marts plus live ones.")
    live_event_count: int = Field(alias="liveEventCount")
    first_event_at: str | None = Field(alias="firstEventAt")
    last_event_at: str | None = Field(alias="lastEventAt")
    completed_at: str | None = Field(alias="completedAt")
    cycle_time_hours: float | None = Field(alias="cycleTimeHours")
    is_live: bool = Field(alias="isLive", description="Seen only since the last build.")


class WorkflowPage(ApiModel):
    workflows: list[WorkflowOut]
    total: int = Field(description="Every workflow the filters match, not only those after the cursor.")
    limit: int
    offset: int | None = Field(description="The `offset` asked for; null when the page was read by `cursor`.")
    has_more: bool = Field(alias="hasMore")
    next_cursor: str | None = Field(alias="nextCursor",
                                    description="Pass as `cursor` for the next page; null on the last one.")


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
        """The place a cursor names; HTTP 400 for a text that does not match `CURSOR_PATTERN`."""
        if not re.match(CURSOR_PATTERN, raw):
            raise HTTPException(400, "`cursor` is not a `nextCursor` of /api/workflows: pass one back unchanged, "
                                     "or page with `offset`")
        micros, tier, workflow_id = raw.split(":", 2)
        return cls(last_event_at=_EPOCH + timedelta(microseconds=int(micros)), workflow_id=workflow_id,
                   live=tier == "live")


def _workflows(data: Serving, status: str | None, assignee: str | None, provider: str | None,
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
        f"select {_WORKFLOW_COLUMNS} from fct_workflows{_where(conditions + after)}"
        " order by last_event_at desc, workflow_id desc limit %(limit)s offset %(offset)s", params)
    count_params = {k: v for k, v in count_params.items() if k not in ("limit", "offset")}
    wh_total = int(data.cached(json.dumps(["workflow_total", count_params], default=str), TTL["workflows"],
                               lambda: data.marts.query(f"select count(*) as n from fct_workflows{_where(conditions)}",
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


@router.get("/api/workflows", response_model=WorkflowPage, tags=["workflows"],
            summary="Workflows, newest activity first, with their event counts (live events included)",
            responses={400: {"description": "A `cursor` with an `offset` other than 0"}})
def list_workflows(
    request: Request, data: Data,
    status: Annotated[WorkflowStatus | None, Query()] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="Assignee id or name, or a Charlie instance id")] = None,
    provider: Annotated[Source | None, Query(description="A source the workflow has events from")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=CURSOR_PATTERN,
                                        description="A page's `nextCursor`: the next page, as fast at any depth "
                                        "(offset pages get slower the deeper they are). Any text of this pattern "
                                        "is a place in the order: the workflows after it")] = None,
) -> Response:
    after = None
    if cursor is not None:
        if offset:
            raise HTTPException(400, "page with either `cursor` or `offset`, not both")
        after = Cursor.decode(cursor)
    key = json.dumps(["workflows", status, assignee, provider, limit, offset, after.encode() if after else None])
    encoded = data.cached(key, TTL["workflows"],
                          lambda: _encode(_workflows(data, status, assignee, provider, limit, offset, after)),
                          live=True)
    return cached_response(request, encoded, TTL["workflows"])


# --- /api/events -------------------------------------------------------------------------------------

class Actor(ApiModel):
    id: str | None
    name: str | None
    type: str | None
    instance: str | None


class Target(ApiModel):
    type: str | None
    id: str | None
    title: str | None
    url: str | None


class WorkflowRef(ApiModel):
    id: str


class EventMetadata(ApiModel):
    correlation_id: str | None = Field(alias="correlationId")
    parent_event_id: str | None = Field(alias="parentEventId")
    tags: list[str]
    correlation_keys: list[str] = Field(alias="correlationKeys")


class EventOut(ApiModel):
    """The seeds' NormalizedEvent."""

    id: str
    timestamp: str
    source: str
    type: str
    actor: Actor
    target: Target
    workflow: WorkflowRef | None
    payload: Any
    metadata: EventMetadata
    is_live: bool = Field(alias="isLive", description="Seen since the last build, not yet in the marts.")


class EventPage(ApiModel):
    events: list[EventOut]
    next_since: str | None = Field(alias="nextSince", description="Pass as `since` to read on from the last event.")


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


def _events(data: Serving, workflow: str | None, since: datetime | None, limit: int) -> EventPage:
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
        f" tags, payload, event_at from fct_workflow_events{_where(conditions)} order by {order} limit %(limit)s",
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


@router.get("/api/events", response_model=EventPage, tags=["events"],
            summary="Events (oldest first), of one workflow and/or from a time on; live events included",
            responses={400: {"description": "`since` is not an ISO 8601 time"}})
def list_events(
    request: Request, data: Data,
    workflow: Annotated[str | None, Query(max_length=300, description="A workflow id, e.g. linear:ENG-12")] = None,
    since: Annotated[str | None, Query(description="Events at or after it", json_schema_extra=ISO_TIME)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    # Read as text: as a `datetime` parameter it took numbers too (`since=0.5`, seconds from 1970).
    since_at = _parse_time("since", since) if since is not None else None
    key = json.dumps(["events", workflow, iso(since_at), limit])
    encoded = data.cached(key, TTL["events"], lambda: _encode(_events(data, workflow, since_at, limit)), live=True)
    return cached_response(request, encoded, TTL["events"])


# --- /api/charlie ------------------------------------------------------------------------------------

class Health(ApiModel):
    status: str | None
    is_healthy: bool = Field(alias="isHealthy")
    queue_depth: int | None = Field(alias="queueDepth")
    uptime_seconds: int | None = Field(alias="uptimeSeconds")
    checked_at: str | None = Field(alias="checkedAt")


class Workload(ApiModel):
    active_workflows: int = Field(alias="activeWorkflows")
    completed_today: int = Field(alias="completedToday")
    completed_total: int = Field(alias="completedTotal")
    events_last_24h: int = Field(alias="eventsLast24h")


class InstanceOut(ApiModel):
    id: str
    name: str | None
    type: str | None
    status: str | None
    github_login: str | None = Field(alias="githubLogin")
    version: str | None
    health: Health
    workload: Workload
    event_count: int = Field(alias="eventCount")
    live_event_count: int = Field(alias="liveEventCount")
    last_event_at: str | None = Field(alias="lastEventAt")


class InstanceList(ApiModel):
    instances: list[InstanceOut]


def _instances(data: Serving) -> InstanceList:
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


@router.get("/api/charlie/instances", response_model=InstanceList, tags=["charlie"],
            summary="Charlie instances with health and workload")
def charlie_instances(request: Request, data: Data) -> Response:
    encoded = data.cached("instances", TTL["instances"], lambda: _encode(_instances(data)), live=True)
    return cached_response(request, encoded, TTL["instances"])


_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    instance_id: str = Field(alias="instanceId", pattern=_ID)


class PauseCommand(_Command):
    command: Literal["pause"]
    reason: str | None = Field(default=None, max_length=500)


class ResumeCommand(_Command):
    command: Literal["resume"]


class RestartCommand(_Command):
    command: Literal["restart"]


class CancelTaskCommand(_Command):
    command: Literal["cancel_task"]
    task_id: str = Field(alias="taskId", pattern=_ID)


class AssignIssueCommand(_Command):
    command: Literal["assign_issue"]
    issue_key: str = Field(alias="issueKey", pattern=r"^[A-Z][A-Z0-9]{0,9}-[0-9]{1,7}$")


CharlieCommand = Annotated[PauseCommand | ResumeCommand | RestartCommand | CancelTaskCommand | AssignIssueCommand,
                           Field(discriminator="command")]


class CommandResult(ApiModel):
    command_id: str = Field(alias="commandId")
    instance_id: str = Field(alias="instanceId")
    command: str
    status: Literal["accepted", "rejected", "failed"]
    http_status: int | None = Field(alias="httpStatus", description="The instance API's answer.")
    result: Any = Field(description="The instance API's JSON body.")
    error: str | None = None


class CommandLogEntry(ApiModel):
    id: str
    instance_id: str = Field(alias="instanceId")
    command: str
    args: dict[str, Any]
    requested_by: str = Field(alias="requestedBy")
    requested_at: str = Field(alias="requestedAt")
    status: str
    http_status: int | None = Field(alias="httpStatus")
    response: Any
    error: str | None
    finished_at: str | None = Field(alias="finishedAt")


class CommandLog(ApiModel):
    commands: list[CommandLogEntry]


def _instance_known(data: Serving, instance_id: str) -> bool:
    return bool(data.marts.query("select 1 as found from dim_charlie_instances where charlie_instance_id = %(id)s",
                                 {"id": instance_id}))


@router.post("/api/charlie/command", response_model=CommandResult, status_code=202, tags=["charlie"],
             summary="Send a validated command to a Charlie instance's API, and log it",
             responses={**BAD_BODY, 404: {"description": "Unknown instance"},
                        409: {"description": "The instance refused it"},
                        502: {"description": "The instance's API did not answer"}})
def charlie_command(request: Request, data: Data, user: User,
                    command: Annotated[CharlieCommand, Body()]) -> Response:
    known = _instance_known(data, command.instance_id)
    if not known:
        raise HTTPException(404, f"no Charlie instance {command.instance_id!r}")
    settings = _settings(request)
    command_id = str(uuid.uuid4())
    args = command.model_dump(by_alias=True, exclude={"instance_id", "command"}, exclude_none=True)
    data.store.log_command(command_id, command.instance_id, command.command, args, user.sub)
    headers = {"Idempotency-Key": command_id}
    if settings.charlie_api_token:
        headers["Authorization"] = f"Bearer {settings.charlie_api_token}"
    url = f"{settings.charlie_base_url}/instances/{command.instance_id}/commands"
    http_status, result, error = None, None, None
    import httpx  # here, not at the top: its import (rich, click for its CLI) slowed every sidecar start

    try:
        # Not retried: a command is not idempotent on every instance; the key lets one dedupe.
        reply = httpx.post(url, json={"id": command_id, "command": command.command, "args": args,
                                      "requested_by": user.sub}, headers=headers, timeout=settings.http_timeout_s)
        http_status = reply.status_code
        try:
            result = reply.json()
        except ValueError:
            result = reply.text[:2000]
        status = "accepted" if reply.is_success else "rejected" if reply.is_client_error else "failed"
        if not reply.is_success:
            error = f"the instance API answered {reply.status_code}"
    except httpx.HTTPError as exc:
        status, error = "failed", f"the instance API did not answer: {type(exc).__name__}: {exc}"
    data.store.finish_command(command_id, status, http_status, result, error)
    out = CommandResult(command_id=command_id, instance_id=command.instance_id, command=command.command,
                        status=status, http_status=http_status, result=result, error=error)
    return no_store(out, 202 if status == "accepted" else 409 if status == "rejected" else 502)


@router.get("/api/charlie/commands", response_model=CommandLog, tags=["charlie"],
            summary="The command log, newest first")
def charlie_commands(data: Data, instance: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    return no_store(CommandLog(commands=[CommandLogEntry(**r) for r in data.store.commands(instance, limit)]))


# --- dashboards and widgets --------------------------------------------------------------------------

class WidgetIn(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: WidgetType
    title: str = Field(min_length=1, max_length=255)
    config: dict[str, Any] = Field(default_factory=dict)
    position: dict[str, Any] = Field(default_factory=dict)


class WidgetUpdate(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    title: str | None = Field(default=None, min_length=1, max_length=255)
    config: dict[str, Any] | None = None
    position: dict[str, Any] | None = None


class WidgetOut(ApiModel):
    id: str
    dashboard_id: str = Field(alias="dashboardId")
    type: str
    title: str
    config: dict[str, Any]
    position: dict[str, Any]
    created_at: str = Field(alias="createdAt")


class DashboardIn(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=255)
    config: dict[str, Any] = Field(default_factory=dict)
    widgets: list[WidgetIn] = Field(default_factory=list, max_length=100)


class DashboardUpdate(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    config: dict[str, Any] | None = None


class DashboardSummary(ApiModel):
    id: str
    name: str
    config: dict[str, Any]
    owner_id: str = Field(alias="ownerId")
    widget_count: int = Field(alias="widgetCount")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")


class DashboardOut(ApiModel):
    id: str
    name: str
    config: dict[str, Any]
    owner_id: str = Field(alias="ownerId")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    widgets: list[WidgetOut]


class DashboardList(ApiModel):
    dashboards: list[DashboardSummary]


class WidgetData(ApiModel):
    widget_id: str = Field(alias="widgetId")
    type: str
    title: str
    generated_at: str = Field(alias="generatedAt")
    data: Any


def _dashboard_out(d: dict) -> DashboardOut:
    return DashboardOut(**{**d, "widgets": [WidgetOut(**w) for w in d["widgets"]]})


def _owned(data: Serving, dashboard_id: str, user: Principal) -> dict:
    found = data.store.dashboard(dashboard_id)
    if found is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    if found["owner_id"] != user.sub:
        raise HTTPException(403, "only the dashboard's owner may change it")
    return found


@router.get("/dashboard/dashboards", response_model=DashboardList, tags=["dashboards"], summary="All dashboards")
def list_dashboards(request: Request, data: Data) -> Response:
    out = DashboardList(dashboards=[DashboardSummary(**d) for d in data.store.dashboards()])
    return cached_response(request, _encode(out), 0)


@router.post("/dashboard/dashboards", response_model=DashboardOut, status_code=201, tags=["dashboards"],
             summary="Create a dashboard (owned by the token's subject), with its widgets", responses=BAD_BODY)
def create_dashboard(data: Data, user: User, body: DashboardIn) -> Response:
    created = data.store.create_dashboard(body.name, body.config, user.sub,
                                          [w.model_dump() for w in body.widgets])
    return no_store(_dashboard_out(created), 201)


@router.get("/dashboard/dashboards/{dashboard_id}", response_model=DashboardOut, tags=["dashboards"],
            summary="A dashboard with its widgets", responses={404: {"description": "Unknown dashboard"}})
def get_dashboard(request: Request, data: Data, dashboard_id: Annotated[str, Path(max_length=64)]) -> Response:
    found = data.store.dashboard(dashboard_id)
    if found is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    # Revalidated on every use (max-age 0): an edit shows at once, an unchanged one costs a 304.
    return cached_response(request, _encode(_dashboard_out(found)), 0)


@router.put("/dashboard/dashboards/{dashboard_id}", response_model=DashboardOut, tags=["dashboards"],
            summary="Rename or reconfigure a dashboard (its owner only)",
            responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def update_dashboard(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)],
                     body: DashboardUpdate) -> Response:
    _owned(data, dashboard_id, user)
    updated = data.store.update_dashboard(dashboard_id, body.name, body.config)
    if updated is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    return no_store(_dashboard_out(updated))


@router.delete("/dashboard/dashboards/{dashboard_id}", status_code=204, tags=["dashboards"],
               summary="Delete a dashboard and its widgets (its owner only)",
               responses={**NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def delete_dashboard(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)]) -> Response:
    _owned(data, dashboard_id, user)
    data.store.delete_dashboard(dashboard_id)
    return Response(status_code=204)


@router.post("/dashboard/dashboards/{dashboard_id}/widgets", response_model=WidgetOut, status_code=201,
             tags=["dashboards"], summary="Add a widget to a dashboard (its owner only)",
             responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def add_widget(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)], body: WidgetIn) -> Response:
    _owned(data, dashboard_id, user)
    widget = data.store.add_widget(dashboard_id, body.model_dump())
    if widget is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    return no_store(WidgetOut(**widget), 201)


def _owned_widget(data: Serving, widget_id: str, user: Principal) -> dict:
    widget = data.store.widget(widget_id)
    if widget is None:
        raise HTTPException(404, f"no widget {widget_id!r}")
    _owned(data, widget["dashboard_id"], user)
    return widget


@router.put("/dashboard/widgets/{widget_id}", response_model=WidgetOut, tags=["dashboards"],
            summary="Change a widget's title, config or position (the dashboard's owner only)",
            responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown widget"}})
def update_widget(data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)],
                  body: WidgetUpdate) -> Response:
    _owned_widget(data, widget_id, user)
    updated = data.store.update_widget(widget_id, body.model_dump(exclude_none=True))
    return no_store(WidgetOut(**updated))  # type: ignore[arg-type]


@router.delete("/dashboard/widgets/{widget_id}", status_code=204, tags=["dashboards"],
               summary="Remove a widget (the dashboard's owner only)",
               responses={**NOT_OWNER, 404: {"description": "Unknown widget"}})
def delete_widget(data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)]) -> Response:
    _owned_widget(data, widget_id, user)
    data.store.delete_widget(widget_id)
    return Response(status_code=204)


def _widget_data(data: Serving, widget: dict) -> Any:
    config, kind = widget["config"], widget["type"]
    if kind in ("overview", "system_status", "workflow_status"):
        overview = _overview(data)
        if kind == "overview":
            return overview.model_dump(by_alias=True)
        if kind == "system_status":
            return overview.system_status.model_dump(by_alias=True) if overview.system_status else None
        return overview.workflows.model_dump(by_alias=True)
    if kind in ("event_volume", "system_metrics"):
        time_range = str(config.get("timeRange") or "24h")
        lo, hi = resolve_range(time_range, config.get("from"), config.get("to"))
        metrics = _metrics(data, time_range, lo, hi, parse_filters(json.dumps(config["filters"]))
                           if config.get("filters") else {})
        if kind == "event_volume":
            return metrics.events.model_dump(by_alias=True)
        return [b.model_dump(by_alias=True) for b in metrics.system]
    if kind == "charlie_workload":
        return _instances(data).model_dump(by_alias=True)["instances"]
    if kind == "recent_events":
        limit = min(max(int(config.get("limit") or 20), 1), 1000)
        return _events(data, config.get("workflow"), None, limit).model_dump(by_alias=True)["events"]
    if kind == "workflows":
        limit = min(max(int(config.get("limit") or 10), 1), 500)
        return _workflows(data, config.get("status"), config.get("assignee"), config.get("provider"),
                          limit, 0).model_dump(by_alias=True)
    raise HTTPException(500, f"widget type {kind!r} has no data")


@router.get("/dashboard/widgets/{widget_id}/data", response_model=WidgetData, tags=["dashboard"],
            summary="The data a widget shows, from its type and config",
            responses={404: {"description": "Unknown widget"},
                       400: {"description": "The widget's config names a bad range or filter"}})
def widget_data(request: Request, data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)]) -> Response:
    widget = data.store.widget(widget_id)
    if widget is None:
        raise HTTPException(404, f"no widget {widget_id!r}")
    refused = grants.refusal(user, grants.widget_need(widget["type"], widget["config"] or {}))
    if refused:
        raise HTTPException(403, refused)

    def compute() -> tuple[bytes, str]:
        return _encode(WidgetData(widget_id=widget["id"], type=widget["type"], title=widget["title"],
                                  generated_at=iso(utcnow()), data=_widget_data(data, widget)))

    # Keyed by the widget's definition too, so an edited widget is recomputed at once.
    key = json.dumps(["widget", widget["id"], widget["type"], widget["config"]], sort_keys=True, default=str)
    encoded = data.cached(key, TTL["widget"], compute, live=True)
    return cached_response(request, encoded, TTL["widget"])
