"""dbt models as Dagster assets, downstream of the raw and normalized lake tables.

Each build's tests also feed the `dbt_test_failed` alert (cc_alerts/rules/pipeline.py): read from
the build's run_results.json once dbt has exited, so the build itself is not slowed.

The catalog (cc_assets/catalog.py): the manifest is parsed for the warehouse in use
(resources/dbt.py), so each model's kinds (`dbt` + `duckdb` or `postgres`) and table name
(`warehouse.main.<model>` or `<db>.<CC_PG_SCHEMA>.<model>`) are the ones it is built in; its owner
comes from dbt (`meta.dagster.owners`, `meta.owner`, its dbt group's owner) or its layer; its code
reference is its SQL file; each materialization carries `dagster/row_count` and the column types
the warehouse reports (`dagster/column_schema`), fetched through dbt's adapter.
"""

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import timedelta
from functools import lru_cache
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
from dagster_dbt.core.dbt_event_iterator import DbtEventIterator

from cc_alerts.rules.pipeline import DBT_TEST_FAILED, dagster_ui_url, dbt_test_evaluation
from cc_alerts.store import alert_store
from cc_assets.catalog import group_owner
from cc_assets.freshness import MARTS
from cc_assets.partitions import daily_partitions, single_run_backfill
from resources.dbt import dbt_project, run_nicer
from resources.platform import PlatformResource
from resources.storage.serving import export_snapshot, snapshot_path
from resources.storage.warm import ensure_pg_partitions

# The warm tier's models (dbt_project/models/warm/) run per daily partition window.
WARM_SELECTOR = "tag:warm"


def _owner(value: Any) -> str | None:
    """A dbt owner as Dagster wants one: an e-mail, or `team:<name>`."""
    if isinstance(value, Mapping):  # a dbt group's `owner: {name, email}`
        return _owner(value.get("email")) or _owner(value.get("name"))
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return value if "@" in value or value.startswith("team:") else f"team:{value}"


class CommandCenterTranslator(DagsterDbtTranslator):
    """Models group by layer. Each source names the lake asset that feeds it in its YAML
    (`config.meta.dagster.asset_key`), which the base translator honours: one place for it."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        # fqn: [project, layer, ...]: staging / intermediate / marts
        return fqn[1] if len(fqn) > 2 else "dbt"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        """`meta.dagster.owners`, else `meta.owner`, else the owner of the model's dbt group, else
        its layer's (cc_assets/catalog.py)."""
        meta = {**(dbt_resource_props.get("config") or {}).get("meta", {}), **(dbt_resource_props.get("meta") or {})}
        named = meta.get("dagster", {}).get("owners") or meta.get("owner")
        if named:
            owners = [_owner(o) for o in (named if isinstance(named, list) else [named])]
            return [o for o in owners if o]
        group = dbt_resource_props.get("group")
        if isinstance(group, Mapping) and (owner := _owner(group.get("owner"))):
            return [owner]
        return [group_owner(self.get_group_name(dbt_resource_props))]

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        # The marts are what the dashboard reads: rebuilt after every ingest (at most one build per
        # 5 minutes, transform_after_ingest_sensor), so one older than its window is behind.
        if spec.group_name == "marts" and unique_id.startswith("model."):
            spec = spec.replace_attributes(freshness_policy=MARTS)
        return spec


translator = CommandCenterTranslator()


@lru_cache(maxsize=8)
def targeted(project_dir: str, profiles_dir: str | None, profile: str | None, dbt_executable: str,
             global_config_flags: tuple[str, ...], target: str) -> DbtCliResource:
    """The dbt resource on `target`, one per process: each new one asks the dbt CLI its version
    (`dbt --version`, a process start of seconds) before its first build."""
    return DbtCliResource(project_dir=project_dir, profiles_dir=profiles_dir, profile=profile,
                          dbt_executable=dbt_executable, global_config_flags=list(global_config_flags), target=target)


def run_build(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource,
              args: list[str]) -> Iterator[Any]:
    """`dbt build` with its events streamed to Dagster, then its tests reconciled with the alerts
    (each failing test an alert, each passing one resolving its own); a failed build then fails
    the step as before, its first line saying which tests and models failed."""
    settings = platform.settings()
    # dbt's profile reads these; the subprocess inherits them.
    os.environ.update(settings.dbt_env())
    # The target on the resource, not in `args`: dagster-dbt opens its adapter (row counts,
    # column types) on the resource's target.
    dbt = targeted(dbt.project_dir, dbt.profiles_dir, dbt.profile, dbt.dbt_executable,
                   tuple(dbt.global_config_flags), settings.warehouse)
    build = dbt.cli(["build", *args], context=context, raise_on_error=False)
    run_nicer(build.process.pid, settings.dbt_niceness)  # the sidecar's reads keep their latency (resources/dbt.py)
    events = build.stream()
    if settings.dbt_catalog_metadata and build.manifest.get("metadata", {}).get("adapter_type") == settings.warehouse:
        events = with_catalog_metadata(build, events, on_duckdb=settings.warehouse == "duckdb")
    # else: the definitions were built for another warehouse (a test overriding `platform`):
    # the manifest's relations are not the ones this build writes.
    try:
        yield from events
    finally:
        release_adapter(build.adapter)
    headline = report_tests(context, build, platform)
    error = build.get_error()
    if error is not None:
        description = getattr(error, "description", None) or str(error)
        raise DagsterDbtCliRuntimeError(description=f"{headline}\n\n{description}" if headline else description)


def with_catalog_metadata(build: DbtCliInvocation, events: Iterator[Any], on_duckdb: bool) -> Iterator[Any]:
    """`events` with each model's row count and column types, read through dbt's adapter: on
    DuckDB once dbt has exited (dbt holds the file until then), read-only; on Postgres as each
    model is built. A failed read is logged, never fatal. Column lineage stays off: it re-reads
    every parent per model for a view the UI does not need here.

    dagster-dbt's `fetch_row_counts()` and `fetch_column_metadata()` are fed events that are already
    there, one pass at a time: over a stream still waiting on dbt, each pass polls its queue without
    sleeping (dagster's `imap`), a busy thread per pass for the whole build — two of a 2-core host's
    cores while dbt runs beside them."""
    batches = [list(events)] if on_duckdb else ([event] for event in events)
    for batch in batches:
        counted = list(DbtEventIterator(iter(batch), build).fetch_row_counts())
        yield from DbtEventIterator(iter(counted), build).fetch_column_metadata(with_column_lineage=False)


def release_adapter(adapter) -> None:
    """Close what dagster-dbt's adapter opened. dbt-duckdb keeps one DuckDB instance per process
    (read-only on the warehouse file here) until it is closed: left open, the next build (another
    process) could not take the file, nor this process open it another way (the demo's summary)."""
    if adapter is None:
        return
    adapter.cleanup_connections()
    manager = type(adapter.connections)
    if getattr(manager, "TYPE", None) == "duckdb":
        # Never opened (no row count was fetched): nothing to close.
        with contextlib.suppress(Exception):
            manager.env().close()
        manager.close_all_connections()


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
        yield from run_build(context, dbt, platform, [])

    return dbt_models


def build_warm_dbt_assets(manifest_path):
    @dbt_assets(manifest=manifest_path, project=dbt_project(), dagster_dbt_translator=translator,
                name="dbt_warm_models", select=WARM_SELECTOR, partitions_def=daily_partitions,
                backfill_policy=single_run_backfill)
    def dbt_warm_models(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource):
        """Rebuild the warm models for the run's partition window (delete the window, insert it)."""
        settings = platform.settings()
        window = context.partition_time_window
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        if settings.warehouse == "postgres":
            days = [start.date() + timedelta(days=n) for n in range((end - start).days)]
            ensure_pg_partitions(settings.pg_url, settings.pg_schema, days)
        window_vars = {"window_start": f"{start:%Y-%m-%d %H:%M:%S}", "window_end": f"{end:%Y-%m-%d %H:%M:%S}"}
        yield from run_build(context, dbt, platform, ["--vars", json.dumps(window_vars)])
        if settings.warehouse == "duckdb":
            # Readers (the history interface, the sidecar, `make sql`) never open the warehouse
            # file dbt holds; they read the serving snapshot, which now carries the warm tables too.
            export_snapshot(settings.duckdb_path, snapshot_path(settings))

    return dbt_warm_models
