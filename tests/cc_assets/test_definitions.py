"""The one Definitions object loads, and every job, schedule, sensor and resource resolves."""

import json
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, Definitions

from cc_assets.definitions import defs
from cc_events.registry import RAW_TABLES


def test_definitions_load_and_every_job_resolves():
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"ingest_job", "transform_job", "github_job", "linear_job"}
    assert {s.name for s in repo.schedule_defs} == {
        "sources_schedule", "openclaw_schedule", "weather_schedule",
        "hot_schedule", "tiers_daily_schedule", "archive_schedule", "retention_schedule", "lake_scan_schedule"}
    # One trigger per source of the seeds' table (cadence in each description).
    assert {s.name for s in repo.sensor_defs} >= {
        "github_sensor", "linear_sensor", "charlie_health_sensor", "charlie_activity_sensor", "cron_events_sensor",
        "system_metrics_sensor", "postgres_cdc_sensor", "transform_after_ingest_sensor",
        "transform_catch_up_sensor", "reports_after_build_sensor"}
    assert all(s.description for s in [*repo.sensor_defs, *repo.schedule_defs])
    assert set(repo.get_top_level_resources()) >= {"platform", "dbt"}


def test_raw_assets_are_daily_partitioned_and_feed_the_dbt_models():
    graph = defs.resolve_asset_graph()
    for source, entity in RAW_TABLES:
        key = AssetKey(["raw", source, entity])
        node = graph.get(key)
        assert node.partitions_def is not None and node.description
    upstream = graph.get(AssetKey("fct_workflows")).parent_keys
    assert upstream  # dbt models are wired to their refs
    lineage = set()
    frontier = [AssetKey("fct_workflow_events")]
    while frontier:
        key = frontier.pop()
        for parent in graph.get(key).parent_keys:
            if parent not in lineage:
                lineage.add(parent)
                frontier.append(parent)
    assert AssetKey(["raw", "github", "pull_requests"]) in lineage
    assert AssetKey(["normalized", "event_keys"]) in lineage
    # Every dbt source is one of the assets that land it: no orphan source keys in the graph.
    raw_keys = {k for k in graph.get_all_asset_keys() if k.path[0] in ("raw", "normalized")}
    assert all(graph.get(k).is_materializable for k in raw_keys)


def test_every_asset_has_a_description():
    graph = defs.resolve_asset_graph()
    missing = [k.to_user_string() for k in graph.get_all_asset_keys()
               if graph.get(k).is_materializable and not graph.get(k).description]
    assert missing == []


def test_tiers_are_partitioned_by_hour_day_and_month_with_their_lineage():
    graph = defs.resolve_asset_graph()
    kinds = {tuple(key): type(graph.get(AssetKey(key)).partitions_def).__name__ for key in (
        ["hot", "events"], ["cold", "events"], ["archive", "events"], ["fct_events"], ["fct_event_volume_1m"])}
    assert kinds == {("hot", "events"): "HourlyPartitionsDefinition", ("cold", "events"): "DailyPartitionsDefinition",
                     ("archive", "events"): "MonthlyPartitionsDefinition",
                     ("fct_events",): "DailyPartitionsDefinition", ("fct_event_volume_1m",): "DailyPartitionsDefinition"}
    assert AssetKey(["normalized", "events"]) in graph.get(AssetKey(["hot", "events"])).parent_keys
    assert AssetKey(["cold", "events"]) in graph.get(AssetKey(["archive", "events"])).parent_keys
    assert AssetKey("fct_workflow_events") in graph.get(AssetKey("fct_events")).parent_keys
    assert {AssetKey(["cold", "events"]), AssetKey(["archive", "events"]), AssetKey("fct_events")} <= set(
        graph.get(AssetKey(["retention", "warm"])).parent_keys)


def test_the_reports_read_the_tiers_and_marts_and_run_apart_from_the_build():
    graph = defs.resolve_asset_graph()
    kinds = {kind: type(graph.get(AssetKey(["reports", kind])).partitions_def).__name__
             for kind in ("daily", "weekly", "monthly")}
    assert kinds == {"daily": "DailyPartitionsDefinition", "weekly": "WeeklyPartitionsDefinition",
                     "monthly": "MonthlyPartitionsDefinition"}
    repo = defs.get_repository_def()
    for kind in kinds:
        report = graph.get(AssetKey(["reports", kind]))
        assert {AssetKey(["cold", "events"]), AssetKey(["archive", "events"]), AssetKey("fct_event_volume_1d"),
                AssetKey("fct_workflows"), AssetKey("fct_agent_sessions_daily"), AssetKey("fct_ci_runs"),
                AssetKey("fct_cron_runs"), AssetKey(["serving", "marts"])} <= set(report.parent_keys)
        assert "<" not in report.description  # the UI reads it as HTML
        assert AssetKey(["reports", kind]) not in repo.get_job("transform_job").asset_layer.executable_asset_keys
        assert repo.get_job(f"reports_{kind}_job")


def test_hot_schedule_rewrites_the_hour_before_as_well():
    from datetime import UTC, datetime

    from dagster import build_schedule_context

    from sensors.tiers import hot_schedule

    context = build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 14, 5, tzinfo=UTC))
    (request,) = hot_schedule.evaluate_tick(context).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-20-13:00"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-20-14:00"


# Run in a fresh interpreter: records every `CC_*` variable the project's code reads (libraries
# that copy the whole environment do not count) and every dbt manifest check, first while
# `cc_assets.definitions` is imported, then while its definitions are built.
IMPORT_PROBE = r"""
import json, os, sys
reads, manifests = [], []
stdlib = os.path.dirname(os.__file__)
get = os._Environ.__getitem__
def watched(self, key):
    frame = sys._getframe(1)
    while frame and frame.f_code.co_filename.startswith((stdlib, "<frozen")):
        frame = frame.f_back
    caller = frame.f_code.co_filename if frame else ""
    if str(key).startswith("CC_") and caller.startswith(os.getcwd()) and "site-packages" not in caller:
        reads.append(key)
    return get(self, key)
os._Environ.__getitem__ = watched
os.environ["CC_WAREHOUSE"] = "duckdb"  # a variable the settings read, whatever the shell has
import resources.dbt
ensure = resources.dbt.ensure_manifest
resources.dbt.ensure_manifest = lambda settings: manifests.append(1) or ensure(settings)
import cc_assets.definitions as module
at_import = {"env_reads": len(reads), "manifest_checks": len(manifests)}
from cc_assets.definitions import defs
built = {"env_reads": len(reads), "manifest_checks": len(manifests)}
print(json.dumps({"at_import": at_import, "built": built}))
"""


def test_importing_the_definitions_reads_no_environment_and_parses_no_dbt():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["at_import"] == {"env_reads": 0, "manifest_checks": 0}
    # The probe sees the work when it happens: building the definitions reads the settings and
    # checks the manifest (so the zeros above are not a probe that sees nothing).
    assert seen["built"]["env_reads"] > 0 and seen["built"]["manifest_checks"] == 1


def test_dagster_loads_the_definitions_that_workspace_yaml_names():
    """`workspace.yaml` names the module, which has no `Definitions` object at import: Dagster's
    loader finds the `@definitions` function and validates what it builds."""
    root = Path(__file__).resolve().parents[2]
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful for code location command_center" in out.stderr + out.stdout
