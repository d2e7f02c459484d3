"""Linear: issues with their state history, and comments, polled (GraphQL) or delivered by webhook.

An `Issue` or `Comment` create carries the record the poll lists, in a slightly different shape
(`creatorId`, `issueId`): it is reshaped and handed to the same normalizer, so both copies get the
same event ids. An `Issue` update that moves the issue to another state is the exception: the poll
counts that move from the issue's history entry, whose id the webhook does not carry. The update
becomes the same `linear.issue.state_changed` event (same builder, `linear_state_change`) under its
own id, `linear:issue:<issue id>:state_changed:<epoch ms of updatedAt>`, and dbt pairs it with the
poll's `linear:history:<id>` twin (`int_linear_state_changes_paired`) so the marts count it once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import SourceRecord, charlie_actor, optional_time, parse_time, payload_object, require
from cc_events.keys import CorrelationKey
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

LINEAR_PRIORITY = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


def linear_actor(user: Mapping[str, Any] | None, ctx: NormalizeContext) -> Actor:
    if not user or not user.get("id"):
        return Actor(id="linear:system", name="Linear", type="bot")
    instance = ctx.charlie_linear_users.get(user["id"])
    if instance:
        return charlie_actor(instance, ctx)
    return Actor(id=f"linear:{user['id']}", name=str(user.get("name") or user["id"]), type="human")


def _linear_issue_parts(record: Mapping[str, Any]):
    """What every event of one Linear issue shares: identifier, key, target, priority and tags."""
    identifier = str(record["identifier"]).upper()
    team = (record.get("team") or {}).get("key")
    priority = LINEAR_PRIORITY.get(int(record.get("priority") or 0), "none")
    target = Target("issue", identifier, str(record.get("title") or ""), str(record.get("url") or ""))
    return identifier, (CorrelationKey.linear(identifier),), target, priority, tuple(t for t in (team, priority) if t)


def linear_state_change(issue: Mapping[str, Any], entry: Mapping[str, Any], ctx: NormalizeContext,
                        event_id: str) -> NormalizedEvent:
    """One move of an issue to another workflow state, in the shape of a history entry
    (`createdAt`, `actor`, `fromState`, `toState`): the poll's history and the webhook's update
    both come through here, so the two copies differ only in what their source knows."""
    require(issue, "id", "identifier")
    require(entry, "createdAt")
    identifier, keys, target, _, tags = _linear_issue_parts(issue)
    to_state = entry.get("toState")
    if not isinstance(to_state, Mapping):
        raise InvalidRecord("state change without the state it moved to")
    return NormalizedEvent(
        event_id, parse_time(entry["createdAt"], "history.createdAt"), "linear", "linear.issue.state_changed",
        linear_actor(entry.get("actor"), ctx), target,
        {"identifier": identifier, "from": (entry.get("fromState") or {}).get("name"),
         "to": to_state.get("name"), "to_type": to_state.get("type")},
        keys, parent_event_id=f"linear:issue:{issue['id']}:created", tags=tags)


def linear_issue(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "identifier", "createdAt")
    identifier, keys, target, priority, tags = _linear_issue_parts(record)
    state = record.get("state") or {}
    created_id = f"linear:issue:{record['id']}:created"
    payload = {"identifier": identifier, "state": state.get("name"), "state_type": state.get("type"),
               "priority": priority, "assignee_id": (record.get("assignee") or {}).get("id")}
    events = [NormalizedEvent(created_id, parse_time(record["createdAt"], "createdAt"), "linear",
                              "linear.issue.created", linear_actor(record.get("creator"), ctx), target, payload,
                              keys, tags=tags)]
    for entry in ((record.get("history") or {}).get("nodes") or []):
        if not entry.get("toState"):
            continue  # history rows that do not move the state are not workflow events
        require(entry, "id", "createdAt")
        events.append(linear_state_change(record, entry, ctx, f"linear:history:{entry['id']}"))
    return events


def linear_comment(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A comment names its issue only: an issue its text mentions is not a link (as with GitHub issues)."""
    require(record, "id", "createdAt")
    issue = record.get("issue") or {}
    if not isinstance(issue, Mapping) or not issue.get("identifier"):
        raise InvalidRecord("comment without its issue")
    identifier = str(issue["identifier"]).upper()
    body = str(record.get("body") or "")
    created = parse_time(record["createdAt"], "createdAt")
    updated = optional_time(record.get("updatedAt"), "updatedAt")
    event = NormalizedEvent(
        f"linear:comment:{record['id']}", created, "linear", "linear.comment.created",
        linear_actor(record.get("user"), ctx),
        Target("comment", str(record["id"]), f"Comment on {identifier}", str(record.get("url") or "")),
        {"identifier": identifier, "body": body[:500], "edited": updated is not None and updated > created},
        (CorrelationKey.linear(identifier),),
        parent_event_id=f"linear:issue:{issue['id']}:created" if issue.get("id") else None,
        tags=(identifier.split("-", 1)[0],))
    return [event]


# --- webhooks ------------------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1)


# A Linear comment's URL: https://linear.app/<org>/issue/ENG-12/<slug>#comment-<id>.
_LINEAR_ISSUE_URL = re.compile(r"/issue/([A-Za-z][A-Za-z0-9]*-\d+)(?:[/#?]|$)")


def _linear_issue(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """An issue as the poll sees it: the webhook names its creator and its cycle by `creatorId`
    and `cycleId` only, and the `actor` of a create is the creator (with the name the poll's
    `creator` has)."""
    data = payload_object(payload, "data")
    if not isinstance(data.get("cycle"), Mapping) and data.get("cycleId"):
        data = {**data, "cycle": {"id": data["cycleId"]}}
    if isinstance(data.get("creator"), Mapping) or not data.get("creatorId"):
        return data
    actor = payload.get("actor")
    same = isinstance(actor, Mapping) and actor.get("id") == data["creatorId"]
    return {**data, "creator": {"id": data["creatorId"], "name": actor.get("name") if same else None}}


def _linear_comment(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A `Comment` webhook's comment in the shape the poll's `comments` query returns it; None
    for a comment on something other than an issue (a project update, a document)."""
    data = payload_object(payload, "data")
    issue = data.get("issue") if isinstance(data.get("issue"), Mapping) else {}
    issue_id = issue.get("id") or data.get("issueId")
    if not issue_id:
        return None
    identifier = issue.get("identifier")
    if not identifier:  # older payloads carry issueId only; the comment's URL names the issue
        found = _LINEAR_ISSUE_URL.search(str(data.get("url") or payload.get("url") or ""))
        identifier = found.group(1) if found else None
    user = data.get("user") if isinstance(data.get("user"), Mapping) else None
    if user is None and data.get("userId"):
        user = {"id": data["userId"]}
    return {"id": data.get("id"), "body": data.get("body"), "createdAt": data.get("createdAt"),
            "updatedAt": data.get("updatedAt"), "user": user, "issue": {"id": issue_id, "identifier": identifier}}


def _carried(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    """The issue or comment a delivery carries, in the shape the poll lands it."""
    if event == "Issue":
        return [("linear", "issues", _linear_issue(payload), {})]
    if event == "Comment":
        comment = _linear_comment(payload)
        return [] if comment is None else [("linear", "comments", comment, {})]
    return []


def linear_records(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    """Creates only: an update is a state change (`linear_issue_update`) or nothing the poll
    counts either, and a remove has no event in the poll (its earlier events stay)."""
    return _carried(event, payload) if payload.get("action") == "create" else []


def linear_snapshots(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    """An update's issue or comment in its new state: what the next poll would land, for staging
    (an issue moved to Done, reassigned, reprioritized). Its event, if any, is `linear_issue_update`."""
    return _carried(event, payload) if payload.get("action") == "update" else []


def linear_issue_update(event: str, payload: Mapping[str, Any], ctx: NormalizeContext) -> list[NormalizedEvent]:
    """An `Issue` update whose `updatedFrom` has a `stateId`: the move, as the poll's history
    entry for it would normalize (`from` stays unknown: `updatedFrom` has the old state's id only)."""
    if event != "Issue" or payload.get("action") != "update":
        return []
    before = payload.get("updatedFrom")
    if not isinstance(before, Mapping) or "stateId" not in before:
        return []  # assignee, priority, title…: the poll has no event for those either
    issue = payload_object(payload, "data")
    state = payload_object(issue, "state")
    if not issue.get("id"):
        raise InvalidRecord("Issue update without data.id")
    at = parse_time(issue.get("updatedAt") or payload.get("createdAt"), "data.updatedAt")
    actor = payload.get("actor")
    # The poll's history names a user or nobody (an integration, an automation): so do we.
    if not isinstance(actor, Mapping) or actor.get("type") not in (None, "user"):
        actor = None
    entry = {"createdAt": at, "actor": actor, "fromState": {"id": before["stateId"]}, "toState": state}
    stamp = (at - _EPOCH) // timedelta(milliseconds=1)
    return [linear_state_change(issue, entry, ctx, f"linear:issue:{issue['id']}:state_changed:{stamp}")]


RAW_TABLES = (
    RawTable("linear", "issues", (
        col("id", "str", required=True), col("identifier", "str", required=True),
        col("team_key", "str", "team.key"), col("title", "str"), col("priority", "int"),
        col("state_name", "str", "state.name"), col("state_type", "str", "state.type"),
        col("assignee_id", "str", "assignee.id"), col("assignee_name", "str", "assignee.name"),
        col("creator_id", "str", "creator.id"), col("created_at", "time", "createdAt", required=True),
        col("updated_at", "time", "updatedAt", required=True), col("started_at", "time", "startedAt"),
        col("completed_at", "time", "completedAt"), col("canceled_at", "time", "canceledAt"),
        col("url", "str"), col("cycle_id", "str", "cycle.id"), col("cycle_number", "int", "cycle.number"),
    ), "Linear issues with their state history, one snapshot per day they were updated."),
    RawTable("linear", "comments", (
        col("id", "str", required=True), col("issue_id", "str", "issue.id"),
        col("issue_identifier", "str", "issue.identifier", required=True), col("user_id", "str", "user.id"),
        col("user_name", "str", "user.name"), col("body", "str"),
        col("created_at", "time", "createdAt", required=True), col("updated_at", "time", "updatedAt", required=True),
    ), "Linear issue comments, one snapshot per day they were updated."),
    RawTable("linear", "cycles", (
        col("id", "str", required=True), col("team_id", "str", "team.id"), col("team_key", "str", "team.key"),
        col("number", "int", required=True), col("name", "str"),
        col("starts_at", "time", "startsAt", required=True), col("ends_at", "time", "endsAt", required=True),
        col("completed_at", "time", "completedAt"), col("created_at", "time", "createdAt"),
        col("updated_at", "time", "updatedAt"),
    ), "Linear cycles (sprints) of every followed team, daily snapshot."),
    RawTable("linear", "teams", (
        col("id", "str", required=True), col("key", "str", required=True), col("name", "str"),
    ), "Linear teams (their keys are what makes TEAM-123 a correlation key), daily snapshot."),
    RawTable("linear", "users", (
        col("id", "str", required=True), col("name", "str"), col("email", "str"),
    ), "Linear users, daily snapshot."),
)


SOURCE = Source(
    "linear", RAW_TABLES, normalizers={"issues": linear_issue, "comments": linear_comment},
    webhook_records=linear_records, webhook_events=linear_issue_update,
    webhook_snapshots=linear_snapshots, webhook_entities=("issues", "comments"),
)
