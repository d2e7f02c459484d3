"""Charlie: its instances (whose GitHub logins and Linear users make other sources' actors
Charlie), their health, and their activity, polled or pushed to `POST /webhooks/charlie`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import charlie_actor, parse_time, require
from cc_events.keys import CorrelationKey, unique
from cc_events.model import NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source


def charlie_activity(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "instance_id", "type", "timestamp")
    instance = str(record["instance_id"])
    keys: list[CorrelationKey] = []
    if record.get("issue_key"):
        keys.extend(ctx.extractor.linear_keys(str(record["issue_key"])))
    repo = record.get("repo")
    if repo and record.get("pr_number") is not None:
        keys.append(CorrelationKey.github(str(repo), int(record["pr_number"])))
    if record.get("correlation_id"):
        keys.append(CorrelationKey.corr(str(record["correlation_id"])))
    message = record.get("message")
    keys.extend(ctx.extractor.all_keys(message, repo=str(repo).lower() if repo else None))
    kind = str(record["type"])
    event = NormalizedEvent(
        f"charlie:activity:{record['id']}", parse_time(record["timestamp"], "timestamp"), "charlie",
        f"charlie.{kind}", charlie_actor(instance, ctx),
        Target("task", str(record.get("correlation_id") or record.get("issue_key") or record["id"]),
               str(message or kind), ""),
        {k: record.get(k) for k in ("type", "issue_key", "repo", "pr_number", "message")},
        unique(keys), correlation_id=record.get("correlation_id"), tags=(instance, kind))
    return [event]


RAW_TABLES = (
    RawTable("charlie", "instances", (
        col("id", "str", required=True), col("name", "str"), col("instance_type", "str", "type"),
        col("status", "str"), col("github_login", "str"), col("linear_user_id", "str"),
        col("version", "str"), col("created_at", "time"),
    ), "Registered Charlie bot instances, daily snapshot."),
    RawTable("charlie", "health", (
        col("instance_id", "str", required=True), col("status", "str", required=True),
        col("checked_at", "time", required=True), col("uptime_seconds", "int"),
        col("queue_depth", "int"), col("version", "str"),
    ), "Charlie instance health checks."),
    RawTable("charlie", "activity", (
        col("id", "str", required=True), col("instance_id", "str", required=True),
        col("activity_type", "str", "type", required=True), col("occurred_at", "time", "timestamp", required=True),
        col("issue_key", "str"), col("repo", "str"), col("pr_number", "int"),
        col("correlation_id", "str"), col("message", "str"),
    ), "Charlie activity events (tasks, PRs, comments, heartbeats)."),
)


SOURCE = Source("charlie", RAW_TABLES, normalizers={"activity": charlie_activity},
                pushed_kinds={"charlie.activity": "activity"})
