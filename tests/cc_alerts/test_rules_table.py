"""The README's rules table is the registry's: a rule added, renamed or retuned shows there."""

from pathlib import Path

from cc_alerts.rules import all_rules, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_every_rule_as_the_registry_has_it():
    table = markdown_table()
    assert table in README.read_text(), "README's rules table is stale: paste `python -m cc_alerts.rules`"
    assert len(all_rules()) >= 10


def test_every_rule_has_a_cadence_or_an_event_and_known_severity():
    for rule in all_rules().values():
        assert rule.severity in ("info", "warning", "critical"), rule.name
        assert rule.runs_in in ("sidecar", "dagster"), rule.name
        if rule.runs_in == "sidecar" and rule.cadence_s is not None:
            assert rule.evaluate is not None and rule.cadence_s <= 300, rule.name
        if rule.evaluate is not None:  # what the sidecar evaluates on its cadence
            assert rule.runs_in == "sidecar" and rule.cadence_s, rule.name
