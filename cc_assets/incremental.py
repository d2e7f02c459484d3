"""Incremental raw assets: durable per-scope cursors, the window a run fetches, the merge with what landed.

An entity pulled by update time keeps one cursor per scope (a repo, a workspace) in the cursor
store; a run fetches from the cursor (less the overlap), merges into the partitions already
landed, and moves the cursor only after every partition is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cc_assets.partitions import Window
from cc_events.raw_tables import RawTable
from resources.storage.cursors import CursorStore
from resources.storage.lake import Lake, raw_schema


@dataclass(frozen=True)
class Incremental:
    """An entity pulled by update time, with one durable cursor per scope (a repo, a workspace).

    A run whose window holds a scope's cursor fetches that scope from the cursor (less the
    overlap) and merges into the partitions already landed, replacing records by `key`; after
    the partitions are written the cursor moves to the newest `column` landed. A crash before
    that refetches from the old cursor and the merge drops the repeats: nothing lost, nothing twice.
    """

    scope: Callable[[dict], str | None]  # a landed row's cursor scope; None: no cursor (refetched whole)
    column: str
    key: tuple[str, ...]


CURSOR_PREFIX = "incremental/"


def repo_scope(entity: str) -> Callable[[dict], str | None]:
    return lambda row: f"github/{entity}/{row['repo']}" if row.get("pull_number") is None else None


def source_cursors(cursors: Mapping[str, object], source: str, entity: str | None = None) -> dict[str, datetime]:
    """The incremental cursors of a source (or of one of its entities), by scope."""
    wanted = f"{source}/{entity}" if entity else source
    found = {}
    for key, value in cursors.items():
        scope = key.removeprefix(CURSOR_PREFIX)
        if key.startswith(CURSOR_PREFIX) and (scope == wanted or scope.startswith(wanted + "/")):
            found[scope] = datetime.fromisoformat(str(value))
    return found


def incremental_since(table: RawTable, cursors: Mapping[str, object], window: Window,
                      overlap: timedelta) -> dict[str, datetime]:
    """Per scope, where this run fetches from: only cursors inside the window count (a backfill of
    older days, or a window that starts after the cursor, fetches its whole window)."""
    since = {}
    for scope, mark in source_cursors(cursors, table.source, table.entity).items():
        start = mark - overlap
        if window.start <= start < window.end:
            since[scope] = start
    return since


def kept_rows(lake: Lake, table: RawTable, key: tuple[str, ...], day: date,
              fetched: set[tuple]) -> Iterator[list[dict]]:
    """The rows already landed on `day` that this run did not fetch again, a batch at a time
    (their lineage is the run's: they are written again with it)."""
    names = [f.name for f in raw_schema(table) if f.name not in ("_partition_date", "_ingested_at")]
    for rows in lake.iter_rows(("raw", table.source, table.entity), day, columns=names):
        yield [row for row in rows if tuple(row[k] for k in key) not in fetched]


def note_mark(incremental: Incremental, row: dict, marks: dict[str, datetime]) -> None:
    """Keep in `marks` the newest `incremental.column` seen per scope, `row` included."""
    scope = incremental.scope(row)
    value = row.get(incremental.column)
    if scope and value is not None and (scope not in marks or value > marks[scope]):
        marks[scope] = value


def advance_cursors(store: CursorStore, marks: Mapping[str, datetime]) -> dict:
    """Move each scope's cursor to the newest landed record (`note_mark`); a cursor never moves back."""
    current = store.all()
    moved = {}
    for scope, mark in marks.items():
        old = current.get(CURSOR_PREFIX + scope)
        if old is None or datetime.fromisoformat(old) < mark:
            moved[CURSOR_PREFIX + scope] = mark.isoformat()
    if moved:
        store.set_many(moved)
    return moved
