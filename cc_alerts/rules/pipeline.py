"""The pipeline's rules: what Dagster raises itself, on the event, so its UI shows them too.

A failed run (`dagster_run_failed`), a sensor or schedule whose tick failed
(`dagster_sensor_error`) and a dbt test that failed in a build (`dbt_test_failed`) are known the
moment they happen, in Dagster's processes: sensors/alerts.py and cc_assets/dbt.py raise and
resolve them through the store, so they have no `evaluate` and no cadence here. What turns a dbt
build's results into findings is below, with no Dagster in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cc_alerts.model import Finding, subject
from cc_alerts.rules.base import Evaluation, Rule

RUN_FAILED = "dagster_run_failed"
SENSOR_ERROR = "dagster_sensor_error"
DBT_TEST_FAILED = "dbt_test_failed"

RULES: list[Rule] = [
    # Raised by the sidecar's monitor about one of its own rules (cc_alerts/monitor.py).
    Rule("monitor_rule_failed", "one of the sidecar's rules could not be evaluated (with its error); resolved by its "
         "next good evaluation", None, "warning", {}, "none (the sidecar's log has the traceback)", "sidecar"),
    Rule(RUN_FAILED, "a Dagster run failed (any job); resolved by the job's next successful run", None,
         "critical", {}, "none (the run's page has the error; re-execute from it)", "dagster"),
    Rule(SENSOR_ERROR, "a sensor's or schedule's last tick failed; resolved by its next successful or skipped tick",
         30.0, "warning", {}, "none (the tick's error is on the sensor's page)", "dagster"),
    Rule(DBT_TEST_FAILED, "a dbt test failed or errored in a build (unique tests: duplicates); resolved when it "
         "passes in a later build", None, "warning", {}, "none (the test's asset check shows the failing rows)",
         "dagster"),
]

# dbt statuses: a `warn` is a test dbt itself was told to only warn about (`severity: warn`).
_FAILED = {"fail": "warning", "error": "warning", "warn": "info"}
_PASSED = {"pass", "success"}


def dagster_ui_url(settings: Any) -> str:
    """Where `make ui` serves the Dagster UI: the links of the alerts Dagster raises."""
    return f"http://127.0.0.1:{settings.ui_port}"


def first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _test_subject(node: Mapping[str, Any], unique_id: str) -> str:
    if node.get("resource_type") == "unit_test" or unique_id.startswith("unit_test."):
        # Unit test names are unique per model only.
        return subject("test", f"{node.get('model') or unique_id.split('.')[-2]}.{node.get('name')}")
    return subject("test", node.get("name") or unique_id.split(".")[-2])


def _message(node: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    name = node.get("name") or result["unique_id"]
    meta = node.get("test_metadata") or {}
    model = (node.get("attached_node") or "").rpartition(".")[2] or node.get("model") or "?"
    column = node.get("column_name") or (meta.get("kwargs") or {}).get("column_name")
    failures = result.get("failures")
    if result["status"] == "error":
        return f"dbt test {name} on {model} errored: {first_line(result.get('message')) or 'no message'}"
    if (meta.get("name") or "").startswith("unique"):
        what = f"{column} values" if column else "key combinations"
        return (f"duplicates in {model}: {failures} {what} appear more than once "
                f"(dbt test {name} failed)")
    if node.get("resource_type") == "unit_test":
        return f"dbt unit test {name} of {model} failed: {first_line(result.get('message'))}"
    on = f"{model}.{column}" if column else model
    kind = " (dbt severity warn)" if result["status"] == "warn" else ""
    return f"dbt test {name} failed on {on}: {failures} failing row(s){kind}"


def dbt_test_evaluation(run_results: Mapping[str, Any], manifest: Mapping[str, Any],
                        links_for: Callable[[Mapping[str, Any]], dict[str, str]]) -> Evaluation:
    """The tests of one dbt build as the `dbt_test_failed` rule's evaluation: each failed or
    errored test a finding; the build's passing tests are covered too (their alerts resolve),
    and tests the build did not run (another selection, skipped after a failure) are left alone."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    findings, covers = [], set()
    for result in run_results.get("results", []):
        unique_id = result.get("unique_id", "")
        if not unique_id.startswith(("test.", "unit_test.")):
            continue
        status = result.get("status")
        node = nodes.get(unique_id, {"name": unique_id.split(".")[-2] if unique_id.count(".") > 2 else unique_id})
        about = _test_subject(node, unique_id)
        if status in _FAILED:
            covers.add(about)
            findings.append(Finding(DBT_TEST_FAILED, about, _FAILED[status], _message(node, result),
                                    links=links_for(node)))
        elif status in _PASSED:
            covers.add(about)
    return Evaluation(findings, covers)
