"""dbt models as Dagster assets, downstream of the raw and normalized lake tables.

Each build's tests also feed the `dbt_test_failed` alert (cc_alerts/rules/pipeline.py): read from
the build's run_results.json once dbt has exited, so the build itself is not slowed.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import timedelta
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    dbt_assets,
)

from cc_alerts.rules.pipeline import DBT_TEST_FAILED, dagster_ui_url, dbt_test_evaluation
from cc_alerts.store import alert_store
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


def run_build(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource,
              args: list[str]) -> Iterator[Any]:
    """`dbt build` with its events streamed to Dagster, then its tests reconciled with the alerts
    (each failing test an alert, each passing one resolving its own); a failed build then fails
    the step as before, its first line saying which tests and models failed."""
    build = dbt.cli(["build", *args], context=context, raise_on_error=False)
    run_nicer(build.process.pid)  # the sidecar's reads keep their latency (resources/dbt.py)
    yield from build.stream()
    headline = report_tests(context, build, platform)
    error = build.get_error()
    if error is not None:
        description = getattr(error, "description", None) or str(error)
        raise DagsterDbtCliRuntimeError(description=f"{headline}\n\n{description}" if headline else description)


def report_tests(context: AssetExecutionContext, build: DbtCliInvocation, platform: PlatformResource) -> str:
    """Apply the build's test results to the `dbt_test_failed` alerts; returns a line naming what
    failed ("" when nothing did). Results that cannot be read or a store that cannot be reached
    are logged: the alerts never fail a build."""
    try:
        results = build.get_artifact("run_results.json")
        evaluation = dbt_test_evaluation(results, build.manifest, _links(context, build, platform))
        with closing(alert_store(platform.settings())) as store:
            store.reconcile(DBT_TEST_FAILED, evaluation.findings, covers=evaluation.covers)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        context.log.warning(f"the dbt test alerts were not updated: {type(exc).__name__}: {exc}")
        return ""
    failed_tests = [f.subject.partition(":")[2] for f in evaluation.findings if f.severity != "info"]
    failed_models = [r["unique_id"].rpartition(".")[2] for r in results.get("results", [])
                     if r.get("unique_id", "").startswith("model.") and r.get("status") == "error"]
    said = []
    if failed_tests:
        said.append(f"{len(failed_tests)} test(s) failed ({', '.join(failed_tests[:5])}"
                    f"{', ...' if len(failed_tests) > 5 else ''})")
    if failed_models:
        said.append(f"{len(failed_models)} model(s) errored ({', '.join(failed_models[:5])})")
    return f"dbt build: {'; '.join(said)}" if said else ""


def _links(context: AssetExecutionContext, build: DbtCliInvocation, platform: PlatformResource):
    """A test alert's links: the run, and the asset of the model the test is about."""
    base = dagster_ui_url(platform.settings())
    manifest = build.manifest

    def links(node: Mapping[str, Any]) -> dict[str, str]:
        out = {"run": f"{base}/runs/{context.run.run_id}"}
        attached = node.get("attached_node") or next(iter((node.get("depends_on") or {}).get("nodes", [])), None)
        if attached in manifest.get("nodes", {}):
            key = translator.get_asset_spec(manifest, attached, dbt_project()).key
            out["asset"] = f"{base}/assets/{'/'.join(key.path)}"
        return out

    return links


def build_dbt_assets(manifest_path):
    @dbt_assets(manifest=manifest_path, project=dbt_project(), dagster_dbt_translator=translator,
                name="dbt_models", exclude=WARM_SELECTOR)
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource):
        """Build and test the dbt project (models, tests, unit tests) on the configured warehouse."""
        settings = platform.settings()
        # dbt's profile reads these; the subprocess inherits them.
        os.environ.update(settings.dbt_env())
        yield from run_build(context, dbt, platform, ["--target", settings.warehouse])

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
        yield from run_build(context, dbt, platform, ["--target", settings.warehouse, "--vars", json.dumps(window_vars)])
        if settings.warehouse == "duckdb":
            # Readers (the history interface, the sidecar, `make sql`) never open the warehouse
            # file dbt holds; they read the serving snapshot, which now carries the warm tables too.
            export_snapshot(settings.duckdb_path, snapshot_path(settings))

    return dbt_warm_models
