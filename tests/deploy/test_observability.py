"""The Prometheus alert rules and the Grafana dashboard in deploy/ read metrics the sidecar and the
Dagster exporter really expose, and the rules that stand for the platform's own alert rules
(`cc_rule`) name one that exists, with its severity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from cc_alerts.rules import all_rules
from sensors.pipeline_metrics import load_state, render
from streaming.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b(cc_[a-z0-9_]+|process_[a-z0-9_]+|up)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every sample name `/metrics` can carry: the sidecar's families and the Dagster file's."""
    names = {"up"}  # Prometheus' own, per target
    telemetry = Telemetry()
    for family in telemetry.registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    state = load_state(Path("/nonexistent"))
    state["runs"] = {"job\tsuccess": [1, 2.0, [1] * 11]}
    state["assets"] = {"raw/github/x": [1, 2.0, [1] * 10]}
    state["rows"], state["dead_letters"] = {"github": 1}, {"github": 1}
    for family in text_string_to_metric_families(render(state)):
        names.update(sample.name for sample in family.samples)
    return names


def metrics_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)  # label values are not metric names
    return set(NAME.findall(without_labels))


def test_every_alert_rule_reads_exposed_metrics_and_names_a_platform_rule_with_its_severity():
    rules = [rule for group in yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    names, platform = exposed(), all_rules()
    assert len(rules) >= 10
    for rule in rules:
        used = metrics_in(rule["expr"])
        assert used and used <= names, (rule["alert"], used - names)
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        if "cc_rule" in rule["labels"]:
            assert rule["labels"]["cc_rule"] in platform, rule["alert"]
            assert rule["labels"]["severity"] == platform[rule["labels"]["cc_rule"]].severity, rule["alert"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape["rule_files"] == ["alerts.yml"]
    assert [job["job_name"] for job in scrape["scrape_configs"]] == ["command-center-sidecar"]


def test_every_dashboard_panel_reads_exposed_metrics():
    dashboard = json.loads((ROOT / "deploy/grafana/command-center.json").read_text())
    names = exposed()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert dashboard["uid"] and len(panels) >= 15
    shown = set()
    for panel in panels:
        for target in panel["targets"]:
            used = metrics_in(target["expr"])
            assert used and used <= names, (panel["title"], used - names)
            shown |= used
    # Every family the issue asks for has a panel.
    for family in ("cc_webhook_deliveries_total", "cc_webhook_ack_seconds_bucket", "cc_landing_fsync_seconds_bucket",
                   "cc_dedupe_hits_total", "cc_live_state_lag_seconds", "cc_ws_clients", "cc_ws_rooms",
                   "cc_ws_frames_sent_total", "cc_ws_bytes_sent_total", "cc_ws_slow_clients_dropped_total",
                   "cc_http_request_seconds_bucket", "cc_serving_cache_lookups_total", "cc_rate_limit_refusals_total",
                   "cc_dagster_run_duration_seconds_bucket", "cc_dagster_asset_duration_seconds_sum",
                   "cc_dagster_rows_landed_total", "cc_dagster_dead_letters_total"):
        assert family in shown, family
