"""The warm tier: the warm dbt models (dbt_project/models/warm/) in the warehouse.

On Postgres each warm table is partitioned by day on its time column (`<table>_pYYYYMMDD`).
dbt cannot create a partitioned table, so `ensure_pg_partitions` creates the parent (matching
the model's columns) and the window's day partitions before dbt runs; dbt finds the table and
appends into it. Retention then drops a day's partitions instead of deleting rows. In the embedded
setup the same tables live in the DuckDB warehouse and retention deletes the day's rows.

A warm day is dropped only when its fingerprint (row count + checksum of event ids and times, the
same function as the cold tier's, `resources/storage/tiers.py`) equals its verified colder copy's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import duckdb
import psycopg
from psycopg import sql

from resources.settings import Settings
from resources.storage.tier_moves import MoveReport, colder_fingerprint
from resources.storage.tiers import FINGERPRINT_SQL, Fingerprint, TierStore

# table -> (time column, columns with their Postgres types), as the models select them.
WARM_TABLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "fct_events": ("event_at", [
        *[(c, "text") for c in ("event_id", "workflow_id", "source", "event_type", "actor_id", "actor_name",
                                "actor_type", "actor_instance_id", "target_type", "target_id", "target_title",
                                "target_url")],
        ("event_at", "timestamp"), ("ingested_at", "timestamp"),
    ]),
    **{name: ("bucket_start_at", [
        ("bucket_start_at", "timestamp"), ("source", "text"), ("event_type", "text"), ("actor_type", "text"),
        ("event_count", "bigint"), ("workflow_event_count", "bigint"),
    ]) for name in ("fct_event_volume_1m", "fct_event_volume_1d")},
}
EVENTS_TABLE = "fct_events"
LOCK_TIMEOUT = "30s"

PG_FINGERPRINT_SQL = (
    "select count(*), coalesce(sum(('x' || substr(md5(event_id || '|' || "
    "(extract(epoch from event_at) * 1000000)::bigint::text), 1, 15))::bit(60)::bigint), 0)::text "
    "from {} where event_at >= %s and event_at < %s"
)


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def ensure_pg_partitions(url: str, schema: str, days: Iterable[date]) -> list[str]:
    """Create the partitioned warm tables and the given days' partitions (idempotent)."""
    created = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        for table, (time_column, columns) in WARM_TABLES.items():
            cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns)
            conn.execute(sql.SQL("create table if not exists {} ({}) partition by range ({})").format(
                sql.Identifier(schema, table), cols, sql.Identifier(time_column)))
            for day in days:
                name = partition_name(table, day)
                exists = conn.execute("select to_regclass(%s)", (f"{schema}.{name}",)).fetchone()[0]
                if exists is None:
                    conn.execute(sql.SQL("create table {} partition of {} for values from ({}) to ({})").format(
                        sql.Identifier(schema, name), sql.Identifier(schema, table),
                        sql.Literal(day.isoformat()), sql.Literal((day + timedelta(days=1)).isoformat())))
                    created.append(name)
    return created


class WarmStore:
    """The warm tables of the configured warehouse: which days they hold, fingerprints, drops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = settings.warehouse == "postgres"

    def _duck(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.settings.duckdb_path), read_only=read_only)

    def days(self) -> list[date]:
        if self.postgres:
            with psycopg.connect(self.settings.pg_url) as conn:
                rows = conn.execute(
                    "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                    "join pg_class p on p.oid = i.inhparent join pg_namespace n on n.oid = p.relnamespace "
                    "where n.nspname = %s and p.relname = %s", (self.settings.pg_schema, EVENTS_TABLE)).fetchall()
            return sorted(date(int(r[0][-8:-4]), int(r[0][-4:-2]), int(r[0][-2:])) for r in rows)
        if not self.settings.duckdb_path.exists():
            return []
        with self._duck(read_only=True) as con:
            if not con.execute("select count(*) from information_schema.tables where table_name = ?",
                               [EVENTS_TABLE]).fetchone()[0]:
                return []
            return [r[0] for r in con.execute(
                f"select distinct cast(event_at as date) from {EVENTS_TABLE} order by 1").fetchall()]  # noqa: S608

    def fingerprint(self, day: date) -> Fingerprint:
        bounds = (day, day + timedelta(days=1))
        if self.postgres:
            with psycopg.connect(self.settings.pg_url) as conn:
                query = sql.SQL(PG_FINGERPRINT_SQL).format(sql.Identifier(self.settings.pg_schema, EVENTS_TABLE))
                rows, checksum = conn.execute(query, bounds).fetchone()
            return Fingerprint(int(rows), str(checksum))

        with self._duck(read_only=True) as con:
            rows, checksum = con.execute(
                f"select {FINGERPRINT_SQL} from {EVENTS_TABLE} "  # noqa: S608 - constants
                "where event_at >= ? and event_at < ?", list(bounds)).fetchone()
        return Fingerprint(int(rows), str(checksum))

    def drop_day(self, day: date) -> int:
        """Remove the day from every warm table in one step; returns bytes freed (Postgres) or 0.

        Dropping a partition waits for readers of the parent table; a reader holding it open for
        long (an analyst's session) makes this fail after LOCK_TIMEOUT instead of hanging, and
        the day is retried by the next run."""
        if self.postgres:
            schema = self.settings.pg_schema
            freed = 0
            with psycopg.connect(self.settings.pg_url) as conn:  # one transaction for all tables
                conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                for table in WARM_TABLES:
                    name = f"{schema}.{partition_name(table, day)}"
                    if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None:
                        continue
                    freed += conn.execute("select pg_total_relation_size(%s::regclass)", (name,)).fetchone()[0]
                    conn.execute(sql.SQL("drop table {}").format(
                        sql.Identifier(schema, partition_name(table, day))))
            return freed
        bounds = [day, day + timedelta(days=1)]
        with self._duck(read_only=False) as con:
            con.execute("begin")
            for table, (time_column, _) in WARM_TABLES.items():
                con.execute(f"delete from {table} where {time_column} >= ? and {time_column} < ?",  # noqa: S608
                            bounds)
            con.execute("commit")
        return 0


def apply_warm_retention(settings: Settings, tiers: TierStore, cutoff: date) -> MoveReport:
    """Drop warm days before `cutoff` whose cold (or archived) copy has the same fingerprint."""
    warm = WarmStore(settings)
    report = MoveReport()
    for day in warm.days():
        if day >= cutoff:
            continue
        mine = warm.fingerprint(day)
        colder = colder_fingerprint(tiers, day)
        if mine.rows == 0:  # an empty partition holds nothing to lose
            report.freed[day.isoformat()] = warm.drop_day(day)
        elif colder is None:
            report.kept[day.isoformat()] = "no verified cold or archive copy yet"
        elif colder != mine:
            report.kept[day.isoformat()] = f"warm {mine} differs from cold {colder}: re-run the day's tier partitions"
        else:
            try:
                report.freed[day.isoformat()] = warm.drop_day(day)
            except psycopg.errors.LockNotAvailable:
                report.kept[day.isoformat()] = f"a reader held the partition past {LOCK_TIMEOUT}: retried next run"
                continue
            report.moved[day.isoformat()] = mine.rows
    return report
