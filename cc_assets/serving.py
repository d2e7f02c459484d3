"""The serving snapshot the streaming sidecar reads, and the analysts' catalog file, refreshed after
every dbt build."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from cc_assets.freshness import MARTS
from resources.platform import PlatformResource
from resources.storage.catalog import write_catalog
from resources.storage.serving import SNAPSHOT_TABLES, export_snapshot, snapshot_path


@asset(
    key=["serving", "marts"],
    deps=[AssetKey(table) for table in SNAPSHOT_TABLES],
    group_name="serving",
    freshness_policy=MARTS,
    description="Every mart (the sidecar's REST API and the analysts' catalog read them), copied out of "
                "the DuckDB warehouse into a read-only file swapped atomically, so reads never wait for a dbt build.",
)
def serving_marts(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    if settings.warehouse != "duckdb":
        # Postgres readers never wait for a build: the sidecar reads CC_PG_SCHEMA directly.
        return MaterializeResult(metadata={"skipped": f"the sidecar reads {settings.pg_schema} on Postgres"})
    written = export_snapshot(settings.duckdb_path, snapshot_path(settings))
    context.log.info(f"serving snapshot {written.path}: {written.rows}")
    return MaterializeResult(metadata={"path": str(written.path), "built_at": written.built_at.isoformat(),
                                       **{f"rows/{t}": n for t, n in written.rows.items()}})


@asset(
    key=["serving", "catalog"],
    deps=[AssetKey(["serving", "marts"]), *(AssetKey(table) for table in SNAPSHOT_TABLES)],
    group_name="serving",
    description="The analysts' DuckDB catalog file (`make sql`, BI tools): every mart and every storage "
                "tier, rewritten under a temporary name and renamed after each build, so it is never locked.",
)
def serving_catalog(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    written = write_catalog(platform.settings())
    context.log.info(f"analysts' catalog {written.path}: {len(written.relations)} relations")
    return MaterializeResult(metadata={"path": str(written.path), "built_at": written.built_at.isoformat(),
                                       "relations": sorted(written.relations),
                                       **({"left_out": written.left_out} if written.left_out else {})})
