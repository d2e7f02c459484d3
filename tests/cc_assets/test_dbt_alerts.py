"""A dbt test that fails in a build opens a `dbt_test_failed` alert about it, the build that sees
it pass resolves it, and tests the build did not run keep theirs; the failed build says which
tests failed in its first line (the run-failure alert quotes it)."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from cc_alerts.model import Finding
from cc_alerts.rules.pipeline import dbt_test_evaluation
from cc_alerts.store import alert_store
from cc_assets.definitions import defs
from cc_events.registry import RAW_TABLES
from resources.dbt import dbt_project, dbt_resource
from resources.platform import PlatformResource
from resources.storage.lake import raw_schema
from sensors.alerts import run_failure_finding

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
ACCEPTED = "accepted_values_stg_charlie__health_health_status__healthy__degraded__offline"


def land_health(platform: PlatformResource, statuses: list[str]) -> None:
    table = RAW_TABLES["charlie", "health"]
    rows = [{**table.flatten({"instance_id": f"charlie-{n}", "status": status, "checked_at": NOW.isoformat() + "Z",
                              "uptime_seconds": 60, "queue_depth": 0, "version": "1.4.2"}), "_raw": "{}"}
            for n, status in enumerate(statuses)]
    platform.land(("raw", "charlie", "health"), NOW.date(), rows, raw_schema(table), NOW)


def build_health(platform: PlatformResource, instance: DagsterInstance):
    """The dbt build of one staging model and its tests (dagster-dbt selects the subset)."""
    model = AssetKey("stg_charlie__health")
    return materialize([defs.get_assets_def(model)], selection=[model], instance=instance, raise_on_error=False,
                       resources={"platform": platform, "dbt": dbt_resource()})


def test_a_failing_dbt_test_opens_an_alert_and_the_build_it_passes_in_resolves_it(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path / "data"), warehouse="duckdb")
    base = f"http://127.0.0.1:{platform.settings().ui_port}"
    with closing(alert_store(platform.settings())) as store:
        # An alert about a test this build does not run: left alone.
        other = store.raise_alert(Finding("dbt_test_failed", "test:not_null_fct_workflows_workflow_id", "warning",
                                          "5 failing rows")).alert
        land_health(platform, ["healthy", "on fire"])
        with DagsterInstance.ephemeral() as instance:
            failed = build_health(platform, instance)
            assert not failed.success
            [alert] = store.list(rule="dbt_test_failed", subject=f"test:{ACCEPTED}")
            assert alert.state == "open" and alert.severity == "warning"
            assert alert.message == f"dbt test {ACCEPTED} failed on stg_charlie__health.health_status: 1 failing row(s)"
            assert alert.links == {"run": f"{base}/runs/{failed.run_id}", "asset": f"{base}/assets/stg_charlie__health"}
            # The step's error (and so the run-failure alert) starts with what failed.
            steps = [e for e in failed.all_events if e.is_step_failure]
            finding = run_failure_finding(failed.dagster_run, failed.get_run_failure_event(), steps, base)
            assert finding.message.endswith(f"1 step(s) failed (dbt_models): dbt build: 1 test(s) failed ({ACCEPTED})")

            land_health(platform, ["healthy", "degraded"])
            fixed = build_health(platform, instance)
            assert fixed.success
        resolved = store.get(alert.id)
        assert resolved.state == "resolved"
        assert store.get(other.id).state == "open"
        assert not [a for a in store.list(rule="dbt_test_failed", state=("open",)) if a.id != other.id]


@pytest.fixture(scope="module")
def manifest():
    return json.loads(dbt_project().manifest_path.read_text())


def test_a_failing_unique_test_says_it_found_duplicates(manifest):
    unique = next(uid for uid, node in manifest["nodes"].items()
                  if node["resource_type"] == "test" and (node.get("test_metadata") or {}).get("name") == "unique")
    combination = next(uid for uid, node in manifest["nodes"].items()
                       if (node.get("test_metadata") or {}).get("name") == "unique_combination_of_columns")
    warned = next(uid for uid, node in manifest["nodes"].items()
                  if node["resource_type"] == "test" and node["config"]["severity"].lower() == "warn")
    results = {"results": [
        {"unique_id": unique, "status": "fail", "failures": 3, "message": "Got 3 results, configured to fail if != 0"},
        {"unique_id": combination, "status": "fail", "failures": 2, "message": "Got 2 results"},
        {"unique_id": warned, "status": "warn", "failures": 1, "message": "Got 1 result, configured to warn if != 0"},
    ]}
    evaluation = dbt_test_evaluation(results, manifest, lambda node: {})
    first, second, third = evaluation.findings
    node = manifest["nodes"][unique]
    model = node["attached_node"].rpartition(".")[2]
    assert first.message == (f"duplicates in {model}: 3 {node['column_name']} values appear more than once "
                             f"(dbt test {node['name']} failed)")
    assert second.message.startswith("duplicates in ") and "2 key combinations appear more than once" in second.message
    # A test dbt is told only to warn about is listed, not notified (below the default warning).
    assert third.severity == "info" and third.message.endswith("1 failing row(s) (dbt severity warn)")
    assert evaluation.covers == {f.subject for f in evaluation.findings}
