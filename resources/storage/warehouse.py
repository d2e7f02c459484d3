"""Reading the warehouse dbt built (DuckDB or Postgres): mart sizes and the correlation check
against a ground truth, through one DuckDB connection whose default schema holds the marts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from resources.settings import Settings

MARTS = (
    "fct_workflow_events",
    "fct_workflows",
    "dim_charlie_instances",
    "fct_charlie_instance_workload",
    "dashboard_overview",
)


@dataclass(frozen=True)
class CorrelationReport:
    events_in_truth: int
    events_in_warehouse: int
    matched: int
    mismatched_examples: list[tuple[str, str | None, str | None]]

    @property
    def exact(self) -> bool:
        return self.matched == self.events_in_truth == self.events_in_warehouse

    @property
    def ratio(self) -> float:
        return self.matched / max(self.events_in_truth, 1)


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The marts of the warehouse in use, read-only, as the connection's default schema: the DuckDB
    file, or (CC_WAREHOUSE=postgres) schema CC_PG_SCHEMA attached through DuckDB's postgres
    extension, so one SQL text reads either."""
    if settings.warehouse != "postgres":
        with connect_read_only(settings.duckdb_path) as con:
            yield con
        return
    from resources.storage.catalog import load_postgres_extension, pg_conninfo, quote

    with duckdb.connect() as con:
        load_postgres_extension(con)
        con.execute(f"attach {quote(pg_conninfo(settings))} as warehouse (type postgres, read_only)")
        con.execute(f'use warehouse."{settings.pg_schema}"')
        yield con


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables "
                                      "where table_catalog = current_database() "
                                      "and table_schema = current_schema()").fetchall()}


def mart_counts(con: duckdb.DuckDBPyConnection | Path) -> dict[str, int]:
    """Rows per mart of `MARTS` that exists; `con` from `open_warehouse` (or a DuckDB file's path)."""
    if isinstance(con, Path):
        with connect_read_only(con) as opened:
            return mart_counts(opened)
    tables = _tables(con)
    return {m: con.execute(f'select count(*) from "{m}"').fetchone()[0] for m in MARTS if m in tables}  # noqa: S608 - names from MARTS


def compare_with_truth(con: duckdb.DuckDBPyConnection | Path, *truth_parquets: Path) -> CorrelationReport:
    """Every event's workflow in `fct_workflow_events` against the generator's ground truth."""
    # Only the sources the generator knows are judged: logs or CDC changes have no ground truth
    # (but a log line that wrongly merged two workflows still shows up in the truth's events).
    truth = ("with truth as (select event_id, workflow_id, source from read_parquet($truth, union_by_name = true)),"
             " fct_workflow_events as (select * from fct_workflow_events"
             " where source in (select distinct source from truth)) ")
    params = {"truth": [str(p) for p in truth_parquets]}
    if isinstance(con, Path):
        with connect_read_only(con) as opened:
            return compare_with_truth(opened, *truth_parquets)
    row = con.execute(
        truth + """
        select
            (select count(*) from truth),
            (select count(*) from fct_workflow_events),
            count(*) filter (where t.event_id is not null and f.event_id is not null
                             and t.workflow_id is not distinct from f.workflow_id)
        from truth t full outer join fct_workflow_events f on t.event_id = f.event_id
        """, params,
    ).fetchone()
    examples = con.execute(
        truth + """
        select coalesce(t.event_id, f.event_id), t.workflow_id, f.workflow_id
        from truth t full outer join fct_workflow_events f on t.event_id = f.event_id
        where t.event_id is null or f.event_id is null or t.workflow_id is distinct from f.workflow_id
        order by 1 limit 10
        """, params,
    ).fetchall()
    return CorrelationReport(row[0], row[1], row[2], examples)
