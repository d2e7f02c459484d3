"""Reading the DuckDB warehouse: mart sizes and the correlation check against a ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

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


def mart_counts(path: Path) -> dict[str, int]:
    with connect_read_only(path) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        return {m: con.execute(f'select count(*) from "{m}"').fetchone()[0] for m in MARTS if m in tables}  # noqa: S608 - names from MARTS


def compare_with_truth(path: Path, *truth_parquets: Path) -> CorrelationReport:
    """Every event's workflow in `fct_workflow_events` against the generator's ground truth."""
    # Only the sources the generator knows are judged: logs or CDC changes have no ground truth
    # (but a log line that wrongly merged two workflows still shows up in the truth's events).
    truth = ("with truth as (select event_id, workflow_id, source from read_parquet($truth, union_by_name = true)),"
             " fct_workflow_events as (select * from fct_workflow_events"
             " where source in (select distinct source from truth)) ")
    params = {"truth": [str(p) for p in truth_parquets]}
    with connect_read_only(path) as con:
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
