"""The rules: what each checks, how often, against which thresholds, and what it does.

A rule is a `Rule` whose `evaluate(ctx)` returns an `Evaluation` — the findings now, and which
subjects it looked at (so an alert about a subject it did not look at is not resolved by it). The
sidecar's monitor (cc_alerts/monitor.py) evaluates the sidecar's rules on their cadence and
applies each evaluation to the store (`AlertStore.reconcile`): a finding opens or counts its
alert, an alert no longer found is resolved. Rules Dagster raises itself (run failures, sensor
errors, dbt tests) are listed here with `evaluate=None`, so the rules table is one table.

Thresholds are named per rule with defaults here; `CC_ALERT_THRESHOLDS` overrides any of them by
`<rule>.<name>` (`{"stale_data.realtime_s": 600, "host_cpu.percent": 95}`).
"""

from __future__ import annotations

import threading

from cc_alerts.rules.base import Evaluation, Rule, RuleContext, Where

__all__ = ["Evaluation", "Rule", "RuleContext", "Where", "all_rules", "markdown_table", "sidecar_rules"]

_lock = threading.Lock()
RULES: dict[str, Rule] = {}


def _collect() -> dict[str, Rule]:
    from cc_alerts.rules import data_quality, deliveries, operations, pipeline

    found: dict[str, Rule] = {}
    for module in (data_quality, deliveries, operations, pipeline):
        for rule in module.RULES:
            if rule.name in found:
                raise ValueError(f"two rules are named {rule.name!r}")
            found[rule.name] = rule
    return found


def all_rules() -> dict[str, Rule]:
    with _lock:
        if not RULES:
            RULES.update(_collect())
    return RULES


def sidecar_rules() -> list[Rule]:
    return [r for r in all_rules().values() if r.runs_in == "sidecar" and r.evaluate is not None]


def markdown_table() -> str:
    """The README's rules table (`python -m cc_alerts.rules`); a test checks the README has it."""

    def cadence(rule: Rule) -> str:
        if rule.cadence_s is None:
            return "when it happens"
        seconds = rule.cadence_s
        return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"

    lines = ["| rule | checks | cadence | thresholds (default) | action | runs in |", "|---|---|---|---|---|---|"]
    for rule in all_rules().values():
        thresholds = ", ".join(f"`{name}` {value:g}" for name, value in rule.thresholds.items()) or "–"
        lines.append(f"| `{rule.name}` | {rule.checks} | {cadence(rule)} | {thresholds} | {rule.action} | {rule.runs_in} |")
    return "\n".join(lines)
