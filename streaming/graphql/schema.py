"""The GraphQL schema: the REST reads as queries, the rooms as subscriptions.

Every query field reads through the same functions as its REST route (`streaming/data/`), checks
the same grant (`context.require_route`) and takes the same arguments with the same bounds; the
answers are the REST models (`types.graphql_type`), so the JSON is the same. Subscriptions are
clients of the rooms hub (`subscriptions.room_messages`), beside `/ws` and Socket.IO.
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import strawberry
from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.scalars import JSON
from strawberry.types import Info

from streaming import alert_schemas, grants, schemas
from streaming.data.marts import MartsUnavailable
from streaming.data.metrics import read_metrics
from streaming.data.queries import Cursor, read_events, read_instances, read_overview, read_workflows
from streaming.data.reports import read_reports
from streaming.data.serving import TTL
from streaming.graphql.context import principal, require, require_route
from streaming.graphql.limits import QueryLimits
from streaming.graphql.subscriptions import refuse_rooms, room_messages
from streaming.graphql.types import (
    AlertSeverity,
    AlertState,
    ReportKind,
    Source,
    TimeRange,
    WorkflowStatus,
    graphql_type,
)
from streaming.params import parse_filters, parse_time, resolve_range
from streaming.rooms import ALL_WORKFLOWS
from streaming.routes.alerts import read_alerts
from streaming.routes.metrics import cache_plan

# The parser's and the aliases' limits: far above any real query, they stop a document that is
# megabytes of tokens or thousands of aliases before it is measured.
MAX_TOKENS, MAX_ALIASES = 5000, 100
# A dashboard asks the same few queries again and again: each is parsed and validated once.
CACHED_DOCUMENTS = 256

EventPage = graphql_type(schemas.EventPage)


def _bounded(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise GraphQLError(f"`{name}` must be from {lo} to {hi}, not {value}", extensions={"code": "BAD_USER_INPUT"})
    return value


def _text(name: str, value: str | None, longest: int) -> str | None:
    if value is not None and len(value) > longest:
        raise GraphQLError(f"`{name}` is at most {longest} characters", extensions={"code": "BAD_USER_INPUT"})
    return value


def _time(name: str, value: str | None) -> datetime | None:
    try:
        return parse_time(name, value) if value is not None else None
    except HTTPException as exc:
        raise GraphQLError(str(exc.detail), extensions={"code": "BAD_USER_INPUT"}) from exc


async def _read(compute: Callable[[], Any]) -> Any:
    """`compute()` in the thread pool, as the REST routes read; their 400 and 503 as GraphQL errors."""
    try:
        return await run_in_threadpool(compute)
    except HTTPException as exc:
        raise GraphQLError(str(exc.detail), extensions={"code": "BAD_USER_INPUT"}) from exc
    except MartsUnavailable as exc:
        raise GraphQLError(str(exc), extensions={"code": "UNAVAILABLE", "retryAfterSeconds": 30}) from exc


async def workflow_events(root: strawberry.Parent[Any], info: Info, limit: int = 20,
                          since: str | None = None) -> EventPage | None:
    """This workflow's events, as `/api/events?workflow=<id>` answers (one read for a whole page of
    workflows). Needs what that route needs: `events:all` or this workflow's room (else null, and
    an error naming it)."""
    require_route(info, "/api/events", workflow=root.id)
    key = (root.id, _time("since", since), _bounded("limit", limit, 1, 1000))
    try:
        return await info.context["loaders"].workflow_events.load(key)
    except MartsUnavailable as exc:
        raise GraphQLError(str(exc), extensions={"code": "UNAVAILABLE", "retryAfterSeconds": 30}) from exc


Workflow = graphql_type(schemas.WorkflowOut, {"events": strawberry.field(
    resolver=workflow_events, description=" ".join(workflow_events.__doc__.split()))})
Overview = graphql_type(schemas.Overview)
Metrics = graphql_type(schemas.Metrics)
WorkflowPage = graphql_type(schemas.WorkflowPage)
CharlieInstanceList = graphql_type(schemas.InstanceList)
CharlieCommandLog = graphql_type(schemas.CommandLog)
AlertList = graphql_type(alert_schemas.AlertList)
SystemStatus = graphql_type(schemas.SystemStatus)


@strawberry.type(description="One line of a report's headlines: a number, the previous period's, and the change")
class ReportHeadline:
    metric: str
    label: str
    value: float | None
    previous: float | None
    change: float | None
    change_pct: float | None


@strawberry.type(description="An operations report the report assets wrote (README, Reports)")
class Report:
    kind: str
    period: str = strawberry.field(description="The period's first day (YYYY-MM-DD)")
    files: list[str] = strawberry.field(description="Its files: report.html, report.pdf, report.xlsx, extracts")

    @strawberry.field(description="The report's folder on the sidecar's host")
    def path(self) -> str:
        return str(self.folder)  # type: ignore[attr-defined]  (`self` is a `streaming.data.reports.Report`)

    @strawberry.field(description="Its headlines, from its headlines.csv")
    async def headlines(self) -> list[ReportHeadline]:
        return await run_in_threadpool(self.read_headlines)  # type: ignore[attr-defined]


@strawberry.type(description="What a token may read over REST it may read here, with the same grants (README).")
class Query:
    @strawberry.field(description="As GET /dashboard/overview: the dashboard marts plus the events since the last build")
    async def overview(self, info: Info) -> Overview:
        require_route(info, "/dashboard/overview")
        data = info.context["serving"]
        kept = data.ready("graphql:overview")
        if kept is not None:
            return kept
        data.keep("graphql:overview", TTL["overview"], partial(read_overview, data))
        return await _read(lambda: data.cached("graphql:overview", TTL["overview"], partial(read_overview, data),
                                               live=True))

    @strawberry.field(description="As GET /dashboard/metrics: event volume, workflows, host metrics over a range")
    async def metrics(self, info: Info, time_range: TimeRange = TimeRange.H24,
                      start: Annotated[str | None, strawberry.argument(name="from")] = None,
                      end: Annotated[str | None, strawberry.argument(name="to")] = None,
                      filters: Annotated[JSON | None, strawberry.argument(
                          description='e.g. {"source": ["github"], "host": "web-1"}')] = None) -> Metrics:
        require_route(info, "/dashboard/metrics")
        data, span = info.context["serving"], time_range.value

        def compute():
            lo, hi = resolve_range(span, start, end)
            parsed = parse_filters(json.dumps(filters) if filters is not None else None)
            key, ttl = cache_plan(span, lo, hi, parsed)
            return data.cached("graphql:" + key, ttl, lambda: read_metrics(data, span, lo, hi, parsed), live=True)

        return await _read(compute)

    @strawberry.field(description="As GET /api/workflows: newest activity first, paged by offset or by cursor")
    async def workflows(self, info: Info, status: WorkflowStatus | None = None, assignee: str | None = None,
                        provider: Source | None = None, limit: int = 50, offset: int = 0,
                        cursor: str | None = None) -> WorkflowPage:
        require_route(info, "/api/workflows")
        _bounded("limit", limit, 1, 500), _bounded("offset", offset, 0, 1_000_000), _text("assignee", assignee, 200)
        after = None
        if cursor is not None:
            if offset:
                raise GraphQLError("page with either `cursor` or `offset`, not both", extensions={"code": "BAD_USER_INPUT"})
            try:
                after = Cursor.decode(_text("cursor", cursor, 1000))
            except ValueError as exc:
                raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT"}) from exc
        data = info.context["serving"]
        state, source = status.value if status else None, provider.value if provider else None
        key = json.dumps(["graphql:workflows", state, assignee, source, limit, offset, after.encode() if after else None])
        return await _read(lambda: data.cached(key, TTL["workflows"], lambda: read_workflows(
            data, state, assignee, source, limit, offset, after), live=True))

    @strawberry.field(description="As GET /api/events: events (oldest first), of one workflow and/or from a time on")
    async def events(self, info: Info, workflow: str | None = None, since: str | None = None,
                     limit: int = 100) -> EventPage:
        require_route(info, "/api/events", workflow=workflow)
        _text("workflow", workflow, 300), _bounded("limit", limit, 1, 1000)
        since_at, data = _time("since", since), info.context["serving"]
        key = json.dumps(["graphql:events", workflow, since_at.isoformat() if since_at else None, limit])
        return await _read(lambda: data.cached(key, TTL["events"], lambda: read_events(data, workflow, since_at, limit),
                                               live=True))

    @strawberry.field(description="As GET /api/charlie/instances: the Charlie instances with health and workload")
    async def charlie_instances(self, info: Info) -> CharlieInstanceList:
        require_route(info, "/api/charlie/instances")
        data = info.context["serving"]
        return await _read(lambda: data.cached("graphql:instances", TTL["instances"], partial(read_instances, data),
                                               live=True))

    @strawberry.field(description="As GET /api/charlie/commands: the command log, newest first")
    async def charlie_commands(self, info: Info, instance: str | None = None, limit: int = 50) -> CharlieCommandLog:
        require_route(info, "/api/charlie/commands")
        _text("instance", instance, 100), _bounded("limit", limit, 1, 500)
        store = info.context["serving"].store
        return await _read(lambda: schemas.CommandLog(
            commands=[schemas.CommandLogEntry(**r) for r in store.commands(instance, limit)]))

    @strawberry.field(description="As GET /api/alerts: alerts, the most recently seen first")
    async def alerts(self, info: Info, state: list[AlertState] | None = None,
                     severity: list[AlertSeverity] | None = None, rule: str | None = None,
                     subject: str | None = None, since: str | None = None, cursor: str | None = None,
                     limit: int = 50) -> AlertList:
        require_route(info, "/api/alerts")
        _text("rule", rule, 100), _text("subject", subject, 300), _text("cursor", cursor, 300)
        _bounded("limit", limit, 1, 500)
        store = info.context["sidecar"].alerts
        return await _read(lambda: read_alerts(store, [s.value for s in state] if state else None,
                                               [s.value for s in severity] if severity else None,
                                               rule, subject, since, cursor, limit))

    @strawberry.field(description="The operations reports written so far, newest period first (needs what the "
                                  "overview needs: `dashboard:overview`)")
    async def reports(self, info: Info, kind: ReportKind | None = None, limit: int = 20) -> list[Report]:
        require(info, grants.read(grants.DASHBOARD))
        _bounded("limit", limit, 1, 500)
        folder = info.context["settings"].reports_dir
        return await _read(lambda: read_reports(folder, kind.value if kind else None, limit))


@strawberry.type(description="A room's event, as /ws and Socket.IO push it: the message's type and room, and the event")
class EventMessage:
    type: str = strawberry.field(description="The message's type: the event's, or `<type>.updated` for a newer "
                                             "state of an event seen before")
    room: str
    timestamp: str | None
    event: graphql_type(schemas.EventOut)  # type: ignore[valid-type]


def _event(message: dict[str, Any]) -> EventMessage:
    payload = dict(message["payload"])
    workflow = payload.get("workflow")
    payload["workflow"] = {"id": workflow["id"]} if isinstance(workflow, dict) and workflow.get("id") else None
    return EventMessage(type=message["type"], room=message["room"], timestamp=message.get("timestamp"),
                        event=schemas.EventOut.model_validate({**payload, "isLive": True}))


async def _stream(info: Info, rooms: list[str], pick: Callable[[dict], Any | None],
                  first: str | None = None) -> AsyncIterator[Any]:
    async for message in room_messages(info.context["sidecar"], principal(info), rooms, first):
        value = pick(message)
        if value is not None:
            yield value


@strawberry.type(description="The rooms of /ws and Socket.IO, over graphql-transport-ws: the same messages, the "
                             "same `rooms` claim")
class Subscription:
    @strawberry.subscription(description="`workflow.updated`: each workflow's new state (room `workflows:all`), or "
                                         "one workflow's (`workflows:<id>`)")
    async def workflow_updates(self, info: Info, id: str | None = None) -> AsyncGenerator[Workflow, None]:
        room = f"workflows:{id}" if id else ALL_WORKFLOWS
        refuse_rooms(principal(info), [room])
        return _stream(info, [room], lambda m: schemas.WorkflowOut.model_validate(m["payload"])
                       if m["type"] == "workflow.updated" else None)

    @strawberry.subscription(description="New events (room `events:all`), or one workflow's (`workflows:<id>`)")
    async def new_events(self, info: Info, workflow: str | None = None) -> AsyncGenerator[EventMessage, None]:
        room = f"workflows:{workflow}" if workflow else "events:all"
        refuse_rooms(principal(info), [room])
        return _stream(info, [room], lambda m: _event(m) if m["type"] not in ("workflow.updated", "notice") else None)

    @strawberry.subscription(description="`system.status.update` (room `dashboard:overview`): the last one at once, "
                                         "then each change")
    async def system_status(self, info: Info) -> AsyncGenerator[SystemStatus, None]:
        refuse_rooms(principal(info), ["dashboard:overview"])
        sidecar = info.context["sidecar"]
        return _stream(info, ["dashboard:overview"], lambda m: schemas.SystemStatus.model_validate(m["payload"])
                       if m["type"] == "system.status.update" else None, sidecar.last_status)


class Schema(strawberry.Schema):
    """Logs what went wrong in the sidecar, not the caller's own errors: a refused token, a grant
    it lacks, a bad argument, a limit (each error of ours has an `extensions.code`)."""

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        super().process_errors([e for e in errors if not (e.extensions or {}).get("code")], execution_context)


schema = Schema(query=Query, subscription=Subscription, extensions=[
    partial(MaxTokensLimiter, max_token_count=MAX_TOKENS), partial(ParserCache, maxsize=CACHED_DOCUMENTS),
    partial(ValidationCache, maxsize=CACHED_DOCUMENTS), partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
    QueryLimits])
