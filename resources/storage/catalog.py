"""The analysts' DuckDB catalog: every tier behind one in-memory DuckDB connection (`make sql`).

    marts.*            the serving snapshot of the dbt marts (+ the warm tables in the embedded
                       setup), attached read-only: it opens while dbt holds warehouse.duckdb
    warm.*             on Postgres (CC_WAREHOUSE=postgres): the warehouse attached read-only through
                       DuckDB's postgres extension, loaded from its pip wheel (no download)
    <mart name>        a view per mart (fct_workflows, fct_events, ...), from marts.* or warm.*
    events_history     every event in the cold and archive tiers (archive months, plus cold days
                       not archived yet), the same files the history interface reads
    event_volume_history  their hourly rollup (events per hour, source, type, actor type)
    cold_events, archive_events, landing_events, hot_events, raw_<source>__<entity>
                       each tier (and the landing lake) on its own
    tier_partitions    tier, partition, rows, bytes: what is where
    archive_manifests  one row per archived file, from the manifests

The lake may be a folder or S3 (`CC_LAKE_URL`): the tiers are read through pyarrow datasets, so
DuckDB needs no httpfs download.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from resources.settings import Settings
from resources.storage.hot import hot_store
from resources.storage.lake import EVENTS_SCHEMA
from resources.storage.serving import snapshot_path
from resources.storage.tiers import ROLLUP, TierStore

# Postgres' extension is named postgres_scanner inside; DuckDB derives the entry point from the
# file name, so the wheel's `postgres.duckdb_extension` is loaded through a link with that name.
_EXTENSION_NAME = "postgres_scanner.duckdb_extension"


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_postgres_extension(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb_extension_postgres

    found = sorted(Path(duckdb_extension_postgres.__file__).parent.glob("extensions/*/postgres.duckdb_extension"))
    if not found:
        raise RuntimeError("duckdb-extension-postgres is installed without its extension file")
    link_dir = Path(tempfile.gettempdir()) / f"cc-duckdb-ext-{duckdb.__version__}-{os.getuid()}"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / _EXTENSION_NAME
    if not link.exists():
        tmp = link_dir / f".{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(found[-1])
        os.replace(tmp, link)
    con.execute(f"load {quote(str(link))}")


def pg_conninfo(settings: Settings) -> str:
    pg = settings.pg
    parts = {"host": pg.host, "port": pg.port, "user": pg.user, "dbname": pg.dbname}
    if pg.password:
        parts["password"] = pg.password
    return " ".join(f"{k}={v}" for k, v in parts.items())


def tier_partitions(settings: Settings) -> pa.Table:
    """One row per partition per tier: tier, partition, rows, bytes."""
    tiers, landing = TierStore.from_settings(settings), TierStore.landing(settings)
    rows = []
    for info in landing.files("normalized", "events"):
        rows.append(("landing", info.path.rsplit("/", 2)[-2], pq.read_metadata(info.path).num_rows, info.size))
    for info in tiers.files("cold", "events"):
        with tiers.fs.open_input_file(info.path) as handle:
            rows.append(("cold", info.path.rsplit("/", 2)[-2], pq.read_metadata(handle).num_rows, info.size))
    for month in tiers.archive_months():
        entry = tiers.manifest(month)["files"][0]
        rows.append(("archive", f"month={month:%Y-%m}", entry["rows"], entry["bytes"]))
    names = ["tier", "partition", "rows", "bytes"]
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows],
                                schema=pa.schema([(n, pa.string() if n in ("tier", "partition") else pa.int64())
                                                  for n in names]))


def archive_manifests(tiers: TierStore) -> pa.Table:
    rows = []
    for month in tiers.archive_months():
        manifest = tiers.manifest(month)
        for entry in manifest["files"]:
            rows.append({"month": manifest["month"], "days": len(manifest["days"]), "created_at": manifest["created_at"],
                         **{k: entry[k] for k in ("path", "rows", "checksum", "bytes", "sha256", "min_event_at",
                                                  "max_event_at", "compression")}})
    return pa.Table.from_pylist(rows) if rows else pa.table({"month": pa.array([], pa.string())})


def open_catalog(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every tier as views (see the module doc)."""
    con = duckdb.connect()
    tiers, landing = TierStore.from_settings(settings), TierStore.landing(settings)
    mart_source: dict[str, str] = {}

    snapshot = snapshot_path(settings)
    if snapshot.exists():
        con.execute(f"attach {quote(str(snapshot))} as marts (read_only)")
        for (table,) in con.execute("select table_name from information_schema.tables "
                                    "where table_catalog = 'marts'").fetchall():
            mart_source[table] = f"marts.main.{table}"
    if settings.warehouse == "postgres":
        load_postgres_extension(con)
        con.execute(f"attach {quote(pg_conninfo(settings))} as warm (type postgres, read_only)")
        for (table,) in con.execute(
                "select table_name from information_schema.tables where table_catalog = 'warm' "
                "and table_schema = ?", [settings.pg_schema]).fetchall():
            mart_source[table] = f'warm."{settings.pg_schema}"."{table}"'
    for table, source in sorted(mart_source.items()):
        con.execute(f'create view "{table}" as select * from {source}')

    tiers.register(con, "events_history", tiers.history_files(), EVENTS_SCHEMA)
    tiers.register(con, "event_volume_history", tiers.history_files(table=ROLLUP))
    tiers.register(con, "cold_events", [i.path for i in tiers.files("cold", "events")], EVENTS_SCHEMA)
    tiers.register(con, "archive_events", [tiers.archive_path(m) for m in tiers.archive_months()], EVENTS_SCHEMA)
    landing.register(con, "landing_events", [i.path for i in landing.files("normalized", "events")], EVENTS_SCHEMA)
    for folder in sorted(p for p in (settings.lake_dir / "raw").glob("*/*") if p.is_dir()):
        files = [str(f) for f in sorted(folder.glob("date=*/*.parquet"))]
        if files:
            name = f"raw_{folder.parent.name}__{folder.name}"
            listed = ", ".join(quote(f) for f in files)
            con.execute(f"create view {name} as select * from read_parquet([{listed}], union_by_name = true)")

    store = hot_store(settings)
    try:
        hot_rows = [e for hour in store.hours()
                    for e in store.hour_events(datetime.strptime(hour, "%Y-%m-%dT%H"))]
    finally:
        store.close()
    con.register("hot_events", pa.Table.from_pylist(hot_rows) if hot_rows
                 else pa.table({"event_id": pa.array([], pa.string())}))
    con.register("tier_partitions", tier_partitions(settings))
    con.register("archive_manifests", archive_manifests(tiers))
    return con
