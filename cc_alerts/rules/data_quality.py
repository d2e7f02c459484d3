"""data_quality rules (see cc_alerts/rules/__init__.py)."""

from cc_alerts.rules import Rule

RULES: list[Rule] = []
