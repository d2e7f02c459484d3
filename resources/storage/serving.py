"""The serving snapshot: the marts the sidecar reads, copied out of the DuckDB warehouse after a build.

dbt holds `warehouse.duckdb` open read-write for the whole build, and DuckDB then refuses every
other process, even read-only. So after each build the serving marts are copied into a separate
file, written under a temporary name and renamed over `serving/marts.duckdb`: readers that have
the old file open keep reading it, the next open sees the new one, and no reader ever waits for
a build. On Postgres the sidecar reads `CC_PG_SCHEMA` directly (MVCC readers never wait either).

The snapshot holds every mart (`mart_names()`: the dbt project's marts/ and warm/ models), not only
the ones the sidecar reads: the analysts' catalog (resources/storage/catalog.py) copies them from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from resources.dbt_inputs import DBT_PROJECT_DIR
from resources.settings import Settings

# name -> order, so the rows a request wants sit together (zone maps skip the rest).
SERVING_TABLES: dict[str, str | None] = {
    "dashboard_overview": None,
    "system_status_update": None,
    "fct_workflows": "last_event_at desc, workflow_id desc",
    "fct_workflow_events": "event_at, event_id",
    "fct_event_volume_1h": "bucket_start_at",
    "dim_charlie_instances": None,
    "fct_charlie_instance_workload": None,
    "fct_system_metrics_1m": "bucket_start_at",
    "fct_system_metrics_1h": "bucket_start_at",
    "fct_cron_job_health": None,
    # The page's charts over a range (`/dashboard/metrics`: `cron` and `sessions`), and the reports.
    "fct_cron_runs": "run_at",
    "fct_agent_sessions_1h": "bucket_start_at",
    "fct_trading_pnl_daily": None,
    # The operations reports (cc_assets/reports/): sessions per agent and per workflow by day,
    # cron runs (above), CI runs.
    "fct_agent_sessions_daily": "session_date",
    "fct_workflow_session_costs_daily": "session_date",
    "fct_ci_runs": "completed_at",
    # The warm tier's event facts and rollups (dbt_project/models/warm/), for the history interface.
    "fct_events": "event_at, event_id",
    "fct_event_volume_1m": "bucket_start_at",
    "fct_event_volume_1d": "bucket_start_at",
    # The key -> workflow map, so a live event lands in the workflow its keys already joined.
    "int_correlation_keys_linked": "correlation_key",
}


def mart_names() -> list[str]:
    """Every mart of the dbt project, read from its model folders: models/marts/** and models/warm/."""
    models = DBT_PROJECT_DIR / "models"
    return sorted({path.stem for folder in ("marts", "warm") for path in (models / folder).rglob("*.sql")})


# What the snapshot holds: the serving tables (sorted for the sidecar), then every other mart.
SNAPSHOT_TABLES: dict[str, str | None] = {**SERVING_TABLES,
                                          **{name: None for name in mart_names() if name not in SERVING_TABLES}}


def snapshot_path(settings: Settings) -> Path:
    return settings.data_dir / "serving" / "marts.duckdb"


@dataclass(frozen=True)
class SnapshotWritten:
    path: Path
    rows: dict[str, int]
    built_at: datetime


def export_snapshot(warehouse: Path, target: Path) -> SnapshotWritten:
    """Copy the marts of `warehouse` into `target`, replacing it atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    built_at = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        # ATTACH takes no parameters; the path is ours (settings), quoted as a literal.
        con.execute("attach '{}' as wh (read_only)".format(str(warehouse).replace("'", "''")))
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'wh'").fetchall()}
        for table, order in SNAPSHOT_TABLES.items():
            if table not in present:
                continue
            # Names come from SNAPSHOT_TABLES (ours and the dbt project's file names), never from input.
            sort = f" order by {order}" if order else ""
            con.execute(f"create table main.{table} as select * from wh.main.{table}{sort}")  # noqa: S608
            rows[table] = con.execute(f"select count(*) from main.{table}").fetchone()[0]  # noqa: S608
        con.execute("create table main.serving_snapshot as select ?::timestamp as built_at", [built_at])
        con.execute("detach wh")
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, target)
    return SnapshotWritten(target, rows, built_at)
