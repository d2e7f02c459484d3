"""The serving snapshot the streaming sidecar reads, refreshed after every dbt build."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from cc_assets.freshness import MARTS
from resources.platform import PlatformResource
from resources.storage.serving import SERVING_TABLES, export_snapshot, snapshot_path


@asset(
    key=["serving", "marts"],
    deps=[AssetKey(table) for table in SERVING_TABLES],
    group_name="serving",
    freshness_policy=MARTS,
    description="The marts the sidecar's REST API reads, copied out of the DuckDB warehouse into a "
                "read-only file swapped atomically, so reads never wait for a dbt build.",
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
