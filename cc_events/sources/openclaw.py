"""OpenClaw agent sessions with their tokens and cost (docs/contract_sources.md), polled or
pushed to `POST /events` as `openclaw.session`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import charlie_actor, optional_time, parse_time, require
from cc_events.keys import CorrelationKey, unique
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

SESSION_STATUSES = ("running", "completed", "failed", "cancelled")


def agent_actor(agent: str, instance_id: str | None, ctx: NormalizeContext) -> Actor:
    """A Charlie instance when the agent (or the instance it names) is one the registry knows, else a bot."""
    for candidate in (instance_id, agent):
        if candidate and candidate in ctx.charlie_names:
            return charlie_actor(candidate, ctx)
    instance = ctx.charlie_github_logins.get(agent.lower())
    if instance:
        return charlie_actor(instance, ctx)
    return Actor(id=f"openclaw:{agent}", name=agent, type="bot")


def _number(record: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> int | float | None:
    value = record.get(name)
    return None if value in (None, "") else kind(value)


def openclaw_session(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "agent", "status", "started_at")
    status = str(record["status"])
    if status not in SESSION_STATUSES:
        raise InvalidRecord(f"status: not one of {', '.join(SESSION_STATUSES)}: {status!r}")
    ended_at = optional_time(record.get("ended_at"), "ended_at")
    if (ended_at is None) != (status == "running"):
        raise InvalidRecord(f"a {status} session {'without' if ended_at is None else 'with'} ended_at")
    sid, agent = str(record["id"]), str(record["agent"])
    repo = str(record["repo"]).lower() if record.get("repo") else None
    keys: list[CorrelationKey] = []
    if record.get("issue_key"):
        keys.extend(ctx.extractor.linear_keys(str(record["issue_key"])))
    if repo and record.get("pr_number") is not None:
        keys.append(CorrelationKey.github(repo, int(record["pr_number"])))
    title = str(record.get("title") or "")
    keys.extend(ctx.extractor.all_keys(title, repo=repo))
    actor = agent_actor(agent, record.get("instance_id"), ctx)
    target = Target("session", sid, title or sid, "")
    payload = {"tokens_input": _number(record, "tokens_input", int),
               "tokens_output": _number(record, "tokens_output", int),
               "cost_usd": _number(record, "cost_usd", float), "model": record.get("model"),
               "status": status, "agent": agent}
    tags = tuple(str(t) for t in (agent, record.get("model")) if t)
    started_id = f"openclaw:session:{sid}:started"
    events = [NormalizedEvent(started_id, parse_time(record["started_at"], "started_at"), "openclaw",
                              "openclaw.session.started", actor, target, payload, unique(keys), tags=tags)]
    if ended_at is not None:
        events.append(NormalizedEvent(f"openclaw:session:{sid}:ended", ended_at, "openclaw",
                                      f"openclaw.session.{status}", actor, target, payload, unique(keys),
                                      parent_event_id=started_id, tags=tags))
    return events


RAW_TABLES = (
    RawTable("openclaw", "sessions", (
        col("id", "str", required=True), col("agent", "str", required=True), col("instance_id", "str"),
        col("status", "str", required=True), col("model", "str"),
        col("started_at", "time", required=True), col("ended_at", "time"),
        col("updated_at", "time", required=True), col("tokens_input", "int"), col("tokens_output", "int"),
        col("cost_usd", "float"), col("issue_key", "str"), col("repo", "str"), col("pr_number", "int"),
        col("title", "str"),
    ), "OpenClaw agent sessions with tokens and cost, one snapshot per day they were updated."),
)


SOURCE = Source("openclaw", RAW_TABLES, normalizers={"sessions": openclaw_session},
                pushed_kinds={"openclaw.session": "sessions"})
