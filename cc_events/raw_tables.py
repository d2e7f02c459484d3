"""The raw lake tables: which flattened columns each source entity carries (docs/contract.md §4).

A record is flattened here once, so the lake, Postgres' `raw` schema and dbt's staging models all
see the same columns; a record that cannot be flattened is schema-invalid (`InvalidRecord`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cc_events.model import InvalidRecord
from cc_events.normalize import optional_time

ColumnType = Literal["str", "int", "float", "time", "json"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    path: tuple[str, ...]  # where in the record; () means "from the fetch context" (extra)
    required: bool = False


def col(name: str, type_: ColumnType, path: str | None = None, required: bool = False) -> Column:
    return Column(name, type_, tuple((path or name).split(".")) if path != "" else (), required)


def ctx_col(name: str, type_: ColumnType, required: bool = False) -> Column:
    return Column(name, type_, (), required)


@dataclass(frozen=True)
class RawTable:
    source: str
    entity: str
    columns: tuple[Column, ...]
    description: str

    @property
    def name(self) -> str:
        return f"{self.source}__{self.entity}"

    def flatten(self, record: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
        extra = extra or {}
        row: dict[str, Any] = {}
        for column in self.columns:
            value: Any = extra.get(column.name) if not column.path else _dig(record, column.path)
            if value in (None, ""):
                if column.required:
                    raise InvalidRecord(f"missing required field {'.'.join(column.path) or column.name}")
                row[column.name] = None
                continue
            row[column.name] = _convert(value, column)
        return row


def _dig(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`; a number steps into a list (`pull_requests.0.number`)."""
    value: Any = record
    for part in path:
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "str": lambda v, _: v if isinstance(v, str) else str(v),
    "int": lambda v, _: int(v),
    "float": lambda v, _: float(v),
    "time": lambda v, name: optional_time(v, name),
    # Nested values (a CDC row image) stay JSON text: the same on DuckDB, Postgres and Parquet.
    "json": lambda v, _: json.dumps(v, sort_keys=True, separators=(",", ":"), default=str),
}


def _convert(value: Any, column: Column) -> Any:
    try:
        return _CONVERTERS[column.type](value, column.name)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"{column.name}: cannot read {value!r} as {column.type}") from exc


RAW_TABLES: dict[tuple[str, str], RawTable] = {
    (t.source, t.entity): t
    for t in (
        RawTable("github", "pull_requests", (
            col("id", "int", required=True), ctx_col("repo", "str", required=True),
            col("number", "int", required=True), col("title", "str"), col("state", "str"),
            col("user_login", "str", "user.login"), col("user_type", "str", "user.type"),
            col("head_ref", "str", "head.ref"), col("created_at", "time", required=True),
            col("updated_at", "time", required=True), col("closed_at", "time"), col("merged_at", "time"),
            col("html_url", "str"), col("head_sha", "str", "head.sha"),
        ), "GitHub pull requests, one snapshot per day they were updated."),
        RawTable("github", "issues", (
            col("id", "int", required=True), ctx_col("repo", "str", required=True),
            col("number", "int", required=True), col("title", "str"), col("state", "str"),
            col("user_login", "str", "user.login"), col("created_at", "time", required=True),
            col("updated_at", "time", required=True), col("closed_at", "time"), col("html_url", "str"),
        ), "GitHub issues (pull requests excluded), one snapshot per day they were updated."),
        RawTable("github", "commits", (
            col("sha", "str", required=True), ctx_col("repo", "str", required=True),
            ctx_col("pull_number", "int"), col("message", "str", "commit.message"),
            col("author_login", "str", "author.login"),
            col("authored_at", "time", "commit.author.date", required=True), col("html_url", "str"),
        ), "GitHub commits: the default branch by author date, and each updated pull request's commits."),
        RawTable("github", "reviews", (
            col("id", "int", required=True), ctx_col("repo", "str", required=True),
            ctx_col("pull_number", "int", required=True), col("user_login", "str", "user.login"),
            col("state", "str"), col("submitted_at", "time", required=True), col("html_url", "str"),
        ), "GitHub pull request reviews, fetched with their pull request."),
        RawTable("github", "workflow_runs", (
            col("id", "int", required=True), ctx_col("repo", "str", required=True),
            col("run_attempt", "int"), col("workflow_name", "str", "name"), col("event", "str"),
            col("status", "str", required=True), col("conclusion", "str"), col("head_branch", "str"),
            col("head_sha", "str"), col("run_number", "int"), col("pr_number", "int", "pull_requests.0.number"),
            col("actor_login", "str", "actor.login"), col("created_at", "time", required=True),
            col("updated_at", "time", required=True), col("run_started_at", "time"), col("html_url", "str"),
        ), "GitHub Actions workflow runs (CI), latest attempt, one snapshot per day they were updated."),
        RawTable("github", "check_runs", (
            col("id", "int", required=True), ctx_col("repo", "str", required=True),
            ctx_col("pull_number", "int", required=True), col("check_name", "str", "name"),
            col("head_sha", "str"), col("status", "str", required=True), col("conclusion", "str"),
            col("started_at", "time"), col("completed_at", "time"), col("app_slug", "str", "app.slug"),
            col("html_url", "str"),
        ), "GitHub check runs (CI jobs) on each updated pull request's head commit, fetched with the PR."),
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
        RawTable("openclaw", "sessions", (
            col("id", "str", required=True), col("agent", "str", required=True), col("instance_id", "str"),
            col("status", "str", required=True), col("model", "str"),
            col("started_at", "time", required=True), col("ended_at", "time"),
            col("updated_at", "time", required=True), col("tokens_input", "int"), col("tokens_output", "int"),
            col("cost_usd", "float"), col("issue_key", "str"), col("repo", "str"), col("pr_number", "int"),
            col("title", "str"),
        ), "OpenClaw agent sessions with tokens and cost, one snapshot per day they were updated."),
        RawTable("cron", "events", (
            col("seq", "int", required=True), col("id", "str", required=True), col("job", "str", required=True),
            col("host", "str"), col("run_event", "str", "event", required=True),
            col("run_id", "str", required=True), col("occurred_at", "time", "at", required=True),
            col("duration_ms", "int"), col("exit_code", "int"), col("message", "str"),
        ), "Cron job run events (started, succeeded, failed) in the order the runner logged them."),
        RawTable("weather", "opportunities", (
            col("id", "str", required=True), col("market", "str"), col("city", "str"), col("contract", "str"),
            col("forecast_high_f", "float"), col("market_implied_high_f", "float"), col("edge_pct", "float"),
            col("confidence", "float"), col("suggested_stake_usd", "float"), col("status", "str"),
            col("detected_at", "time", required=True), col("updated_at", "time", required=True),
        ), "Weather-market arbitrage opportunities, one snapshot per day they were updated."),
        RawTable("system", "metrics", (
            col("id", "str", required=True), col("host", "str", required=True),
            col("sampled_at", "time", required=True), col("cpu_percent", "float"), col("cpu_count", "int"),
            col("load_1m", "float"), col("load_5m", "float"), col("load_15m", "float"),
            col("memory_total_bytes", "int"), col("memory_used_bytes", "int"), col("memory_percent", "float"),
            col("disk_total_bytes", "int"), col("disk_used_bytes", "int"), col("disk_percent", "float"),
            col("net_bytes_sent", "int"), col("net_bytes_recv", "int"), col("process_count", "int"),
        ), "Host metrics from the metrics agent (psutil), one row per sample (every 30 s per host)."),
        RawTable("postgres_cdc", "changes", (
            col("commit_lsn", "str", required=True), col("seq", "int", required=True), col("lsn", "str"),
            col("xid", "int"), col("committed_at", "time", required=True), col("schema_name", "str", "schema"),
            col("table_name", "str", "table"), col("op", "str", required=True), col("before", "json"),
            col("after", "json"), col("reason", "str"),
        ), "Business database changes by logical replication, in commit order (before/after images)."),
        RawTable("logs", "lines", (
            col("id", "str", required=True), col("path", "str"), col("inode", "int", required=True),
            col("file_gen", "str"), col("offset", "int", required=True), col("line_no", "int"),
            col("received_at", "time", required=True), col("logged_at", "time", "ts"), col("format", "str"),
            col("level", "str"), col("service", "str"), col("host", "str"), col("message", "str"),
            col("problem", "str"),
        ), "Log lines tailed from files (JSON lines, syslog, plain), one row per line; corrupt ones flagged."),
        RawTable("webhooks", "deliveries", (
            col("id", "str", required=True), col("source", "str", required=True),
            col("delivery_id", "str", required=True), col("event", "str", required=True), col("action", "str"),
            col("status", "str"), col("reason", "str"), col("repo", "str"),
            col("received_at", "time", "_received_at", required=True),
        ), "Webhook and pushed deliveries the streaming sidecar acknowledged, one row per delivery (payload in _raw)."),
    )
}
