"""dbt models as Dagster assets, downstream of the raw and normalized lake tables."""

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from cc_assets.partitions import daily_partitions, single_run_backfill
from resources.dbt import dbt_project, run_nicer
from resources.platform import PlatformResource
from resources.storage.serving import export_snapshot, snapshot_path
from resources.storage.warm import ensure_pg_partitions

# The warm tier's models (dbt_project/models/warm/) run per daily partition window.
WARM_SELECTOR = "tag:warm"


class CommandCenterTranslator(DagsterDbtTranslator):
    """Models group by layer. Each source names the lake asset that feeds it in its YAML
    (`config.meta.dagster.asset_key`), which the base translator honours: one place for it."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        # fqn: [project, layer, ...]: staging / intermediate / marts
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = CommandCenterTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def build_dbt_assets(manifest_path):
    @dbt_assets(manifest=manifest_path, project=dbt_project(), dagster_dbt_translator=translator,
                name="dbt_models", exclude=WARM_SELECTOR)
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource):
        """Build and test the dbt project (models, tests, unit tests) on the configured warehouse."""
        settings = platform.settings()
        # dbt's profile reads these; the subprocess inherits them.
        os.environ.update(settings.dbt_env())
        build = dbt.cli(["build", "--target", settings.warehouse], context=context)
        run_nicer(build.process.pid)  # the sidecar's reads keep their latency (resources/dbt.py)
        yield from build.stream()

    return dbt_models


def build_warm_dbt_assets(manifest_path):
    @dbt_assets(manifest=manifest_path, project=dbt_project(), dagster_dbt_translator=translator,
                name="dbt_warm_models", select=WARM_SELECTOR, partitions_def=daily_partitions,
                backfill_policy=single_run_backfill)
    def dbt_warm_models(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource):
        """Rebuild the warm models for the run's partition window (delete the window, insert it)."""
        settings = platform.settings()
        os.environ.update(settings.dbt_env())
        window = context.partition_time_window
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        if settings.warehouse == "postgres":
            days = [start.date() + timedelta(days=n) for n in range((end - start).days)]
            ensure_pg_partitions(settings.pg_url, settings.pg_schema, days)
        window_vars = {"window_start": f"{start:%Y-%m-%d %H:%M:%S}", "window_end": f"{end:%Y-%m-%d %H:%M:%S}"}
        build = dbt.cli(["build", "--target", settings.warehouse, "--vars", json.dumps(window_vars)],
                        context=context)
        run_nicer(build.process.pid)
        yield from build.stream()
        if settings.warehouse == "duckdb":
            # Readers (the history interface, the sidecar, `make sql`) never open the warehouse
            # file dbt holds; they read the serving snapshot, which now carries the warm tables too.
            export_snapshot(settings.duckdb_path, snapshot_path(settings))

    return dbt_warm_models
