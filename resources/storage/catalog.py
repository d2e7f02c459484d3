"""The analysts' DuckDB catalog: every tier and every mart behind one DuckDB database.

Two forms of the same relations:

- `write_catalog`: the file `$CC_DATA_DIR/catalog.duckdb` (`CC_CATALOG_PATH`), which `make sql`
  opens in the DuckDB shell and a BI tool (DBeaver, ...) opens by its path. Written after every
  build (the `serving/catalog` asset) and by `make sql` when the lake or the snapshot changed since,
  under a temporary name renamed over the old file, so no build ever locks it and readers see the
  last complete catalog (one that has the old file open keeps reading it).
- `open_catalog`: an in-memory connection, for code and for `make sql` when the cold and archive
  tiers live on S3 (read through pyarrow: DuckDB cannot download httpfs here).

    <mart name>        every mart of the dbt project (fct_workflows, dim_cycles, fct_events, ...):
                       tables copied from the serving snapshot (it opens while dbt holds
                       warehouse.duckdb), on Postgres from CC_PG_SCHEMA through DuckDB's postgres
                       extension, loaded from its pip wheel (no download)
    events_history     every event in the cold and archive tiers (archive months, plus cold days
                       not archived yet), the same files the history interface reads
    event_volume_history  their hourly rollup (events per hour, source, type, actor type)
    cold_events, archive_events, landing_events, raw_<source>__<entity>
                       each tier (and the landing lake) on its own: views over the Parquet files
                       by absolute path, so the file works from any directory
    hot_events, tier_partitions, archive_manifests
                       tables (computed in Python): the live hot hours, what is where (tier,
                       partition, rows, bytes), one row per archived file
    catalog_info       when the file was written, from which snapshot, and what it leaves out

On an S3 lake the file holds the marts, the landing lake, the hourly rollup (`event_volume_history`,
copied: small) and the tables above; `events_history`, `cold_events` and `archive_events` stay out
of it (a year of events), and `make sql` opens the in-memory form instead, which reads them all.
The in-memory form attaches the snapshot as `marts` (and Postgres as `warm`), views on top.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from resources.settings import Settings
from resources.storage.history import ROLLUP_SCHEMA
from resources.storage.hot import hot_store
from resources.storage.lake import EVENTS_SCHEMA
from resources.storage.serving import SNAPSHOT_TABLES, snapshot_path
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


@dataclass(frozen=True)
class LakeRelation:
    name: str
    store: TierStore
    paths: list[str]
    empty: pa.Schema


def lake_relations(settings: Settings) -> list[LakeRelation]:
    """The relations over Parquet files: the tiers, the landing lake and its raw tables."""
    tiers, landing = TierStore.from_settings(settings), TierStore.landing(settings)
    relations = [
        LakeRelation("events_history", tiers, tiers.history_files(), EVENTS_SCHEMA),
        LakeRelation("event_volume_history", tiers, tiers.history_files(table=ROLLUP), ROLLUP_SCHEMA),
        LakeRelation("cold_events", tiers, [i.path for i in tiers.files("cold", "events")], EVENTS_SCHEMA),
        LakeRelation("archive_events", tiers, [tiers.archive_path(m) for m in tiers.archive_months()], EVENTS_SCHEMA),
        LakeRelation("landing_events", landing, [i.path for i in landing.files("normalized", "events")],
                     EVENTS_SCHEMA),
    ]
    for folder in sorted(p for p in (settings.lake_dir / "raw").glob("*/*") if p.is_dir()):
        files = [str(f) for f in sorted(folder.glob("date=*/*.parquet"))]
        if files:
            relations.append(LakeRelation(f"raw_{folder.parent.name}__{folder.name}", landing, files, pa.schema([])))
    return relations


def hot_events(settings: Settings) -> pa.Table:
    store = hot_store(settings)
    try:
        rows = [e for hour in store.hours() for e in store.hour_events(datetime.strptime(hour, "%Y-%m-%dT%H"))]
    finally:
        store.close()
    return pa.Table.from_pylist(rows) if rows else pa.table({"event_id": pa.array([], pa.string())})


def _parquet_view(paths: list[str]) -> str:
    listed = ", ".join(quote(p) for p in paths)
    return f"select * from read_parquet([{listed}], union_by_name = true)"


def open_catalog(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every tier as views (see the module doc)."""
    con = duckdb.connect()
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

    for rel in lake_relations(settings):
        rel.store.register(con, rel.name, rel.paths, rel.empty)
    con.register("hot_events", hot_events(settings))
    con.register("tier_partitions", tier_partitions(settings))
    con.register("archive_manifests", archive_manifests(TierStore.from_settings(settings)))
    return con


# --- the catalog file ------------------------------------------------------------------------------

def _stat(path: str | Path) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def fingerprint(settings: Settings, relations: list[LakeRelation] | None = None) -> str:
    """What the catalog file was built from: the snapshot (or the Postgres warehouse), every lake
    file its views list, the archive manifests and the hot hours. A changed one makes it stale."""
    relations = lake_relations(settings) if relations is None else relations
    tiers = TierStore.from_settings(settings)
    parts: dict = {"version": CATALOG_VERSION, "warehouse": settings.warehouse,
                   "snapshot": _stat(snapshot_path(settings)) if settings.warehouse == "duckdb" else settings.pg_schema,
                   "lake": tiers.url}
    for rel in relations:
        parts[rel.name] = [_stat(p) if rel.store.is_local else p for p in rel.paths]
    parts["manifests"] = [tiers.manifest_path(m) for m in tiers.archive_months()]
    if settings.redis_url:
        store = hot_store(settings)
        try:
            parts["hot"] = store.hours()
        finally:
            store.close()
    else:
        parts["hot"] = [_stat(p) for p in sorted((settings.hot_dir / "events").glob("hour=*.parquet"))]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CatalogWritten:
    path: Path
    relations: dict[str, str]  # name -> "table" | "view"
    rows: dict[str, int]       # the tables' rows
    built_at: datetime
    left_out: list[str]


# Bump when the file's layout changes: a `make sql` then rewrites an older file.
CATALOG_VERSION = 1
# On S3 these stay out of the file (a year of events); `make sql` reads them in memory.
S3_LEFT_OUT = ("events_history", "cold_events", "archive_events")


def _copy_marts(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[dict[str, int], datetime | None]:
    """Every mart as a table of the catalog file: from the serving snapshot, or from Postgres."""
    rows: dict[str, int] = {}
    marts_built_at = None
    if settings.warehouse == "postgres":
        load_postgres_extension(con)
        con.execute(f"attach {quote(pg_conninfo(settings))} as src (type postgres, read_only)")
        schema = settings.pg_schema
    else:
        snapshot = snapshot_path(settings)
        if not snapshot.exists():
            return rows, None
        con.execute(f"attach {quote(str(snapshot))} as src (read_only)")
        schema = "main"
        if con.execute("select count(*) from information_schema.tables where table_catalog = 'src' "
                       "and table_name = 'serving_snapshot'").fetchone()[0]:
            marts_built_at = con.execute("select built_at from src.main.serving_snapshot").fetchone()[0]
    try:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'src' and table_schema = ?",
            [schema]).fetchall()}
        for table in SNAPSHOT_TABLES:
            if table in present:
                # Names come from SNAPSHOT_TABLES (ours and the dbt project's file names), never from input.
                con.execute(f'create table main."{table}" as select * from src."{schema}"."{table}"')  # noqa: S608
                rows[table] = con.execute(f'select count(*) from main."{table}"').fetchone()[0]  # noqa: S608
    finally:
        con.execute("detach src")
    return rows, marts_built_at


def write_catalog(settings: Settings, target: Path | None = None) -> CatalogWritten:
    """Write the catalog file (see the module doc) under a temporary name beside `target`, then
    rename it over `target`: readers never see a half-written file and never wait."""
    target = settings.catalog_file if target is None else target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    relations = lake_relations(settings)
    built_from = fingerprint(settings, relations)
    built_at = datetime.now(UTC).replace(tzinfo=None)
    kinds: dict[str, str] = {}
    left_out: list[str] = []
    con = duckdb.connect(str(tmp))
    try:
        rows, marts_built_at = _copy_marts(con, settings)
        kinds.update(dict.fromkeys(rows, "table"))

        def table(name: str, data: pa.Table | ds.Dataset) -> None:
            con.register("_incoming", data)
            con.execute(f'create table main."{name}" as select * from _incoming')
            con.unregister("_incoming")
            rows[name] = con.execute(f'select count(*) from main."{name}"').fetchone()[0]  # noqa: S608
            kinds[name] = "table"

        for rel in relations:
            if not rel.paths:
                table(rel.name, rel.empty.empty_table())
            elif rel.store.is_local:
                con.execute(f'create view main."{rel.name}" as {_parquet_view(rel.paths)}')
                kinds[rel.name] = "view"
            elif rel.name in S3_LEFT_OUT:
                left_out.append(rel.name)
            else:
                table(rel.name, rel.store.dataset(rel.paths))
        table("hot_events", hot_events(settings))
        table("tier_partitions", tier_partitions(settings))
        table("archive_manifests", archive_manifests(TierStore.from_settings(settings)))
        con.execute("create table main.catalog_info as select ?::timestamp as built_at, "
                    "?::timestamp as marts_built_at, ? as warehouse, ? as lake, ?::varchar[] as left_out, "
                    "? as fingerprint",
                    [built_at, marts_built_at, settings.warehouse, TierStore.from_settings(settings).url,
                     left_out, built_from])
        con.execute("checkpoint")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, target)
    return CatalogWritten(target, kinds, rows, built_at, left_out)


def catalog_fingerprint(path: Path) -> str | None:
    """The fingerprint the catalog file at `path` was written with (None: missing or unreadable)."""
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("select fingerprint from catalog_info").fetchone()[0]
    except duckdb.Error:
        return None


def ensure_catalog(settings: Settings) -> tuple[Path, bool]:
    """The catalog file, rewritten first if missing or stale; and whether it was rewritten."""
    path = settings.catalog_file
    if catalog_fingerprint(path) == fingerprint(settings):
        return path, False
    write_catalog(settings, path)
    return path, True
