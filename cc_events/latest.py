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


# The dimension tables a normalizer needs: which team keys are Linear keys, who is a Charlie.
CONTEXT_TABLES = (("linear", "teams"), ("charlie", "instances"))


def context_from_lake(lake: Any):
    """Linear teams and Charlie identities as last landed (`lake.read_all`: a `resources.lake.Lake`),
    for the batch normalizer and the sidecar alike."""

    def latest(source: str, entity: str) -> list[dict[str, Any]]:
        table = lake.read_all(("raw", source, entity))
        return [] if table is None else latest_copies(table.to_pylist())

    return NormalizeContext.build(*(latest(source, entity) for source, entity in CONTEXT_TABLES))
