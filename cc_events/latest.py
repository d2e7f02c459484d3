"""The latest copy of each record: one rule for every landed copy, the Python side of the dbt
macro `latest_copy_rank` (dbt_project/macros/latest_copy.sql).

A source record is landed many times (each snapshot, each re-run); the copy kept is the one
landed last (`_ingested_at`), then the later partition (`_partition_date`). A test renders the
macro over the same rows and checks both pick the same copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.delivered import DELIVERED_TABLES

_OLDEST = datetime.min


def _order(row: dict[str, Any]) -> tuple[datetime, date]:
    return (row.get("_ingested_at") or _OLDEST, row.get("_partition_date") or date.min)


def latest_copies(rows: Iterable[dict[str, Any]], key: str | Sequence[str] = "id") -> list[dict[str, Any]]:
    """One row per `key` value: the copy with the greatest (`_ingested_at`, `_partition_date`)."""
    columns = (key,) if isinstance(key, str) else tuple(key)
    kept: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in columns)
        if k not in kept or _order(row) > _order(kept[k]):
            kept[k] = row
    return list(kept.values())


# The tables a normalizer's context comes from: which team keys are Linear keys (the polled teams,
# and the teams of the Linear issues webhooks delivered), who is a Charlie.
TEAMS, INSTANCES = ("linear", "teams"), ("charlie", "instances")
DELIVERED_ISSUES = (DELIVERED_TABLES["linear", "issues"].source, DELIVERED_TABLES["linear", "issues"].entity)
CONTEXT_TABLES = (TEAMS, INSTANCES, DELIVERED_ISSUES)


def context_from_lake(lake: Any):
    """Linear teams and Charlie identities as last landed (`lake.read_all`: a `resources.lake.Lake`),
    for the batch normalizer and the sidecar alike.

    A Linear issue that a webhook delivered is Linear knowing its team: its team key counts from
    the moment the issue is landed, before the next poll of the teams lists the team."""

    def latest(table: tuple[str, str]) -> list[dict[str, Any]]:
        data = lake.read_all(("raw", *table))
        return [] if data is None else latest_copies(data.to_pylist())

    issues = lake.read_all(("raw", *DELIVERED_ISSUES), columns=["identifier", "team_key"])
    teams = [*latest(TEAMS), *delivered_teams([] if issues is None else issues.to_pylist())]
    return NormalizeContext.build(teams, latest(INSTANCES))


def delivered_teams(issues: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The teams delivered Linear issues name: their `team_key`, else their identifier's prefix."""
    keys = {issue.get("team_key") or str(issue.get("identifier") or "").partition("-")[0] for issue in issues}
    return [{"key": key} for key in sorted(keys) if key]
