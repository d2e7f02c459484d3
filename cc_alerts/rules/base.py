"""What a rule is and what it is given (the registry is `cc_alerts.rules`). Rule modules import
this, never the registry, so the registry may import them without a cycle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from cc_alerts.facts import Facts
from cc_alerts.model import Finding

# Every rule by name, as rules are declared (each module's `RULES`): what `threshold` looks up.
DECLARED: dict[str, Rule] = {}


@dataclass
class Evaluation:
    findings: list[Finding] = field(default_factory=list)
    # The subjects the evaluation looked at; None: every subject of the rule (all others resolve).
    covers: set[str] | None = None


@dataclass
class RuleContext:
    """What a rule evaluation may look at: the settings (data folder, lake), the time, the live
    facts the sidecar keeps (`Facts`), and the thresholds in force."""

    settings: Any
    now: datetime  # UTC, naive
    facts: Facts = field(default_factory=Facts)
    overrides: Mapping[str, float] = field(default_factory=dict)

    def threshold(self, rule: Rule | str, name: str) -> float:
        rule_name = rule if isinstance(rule, str) else rule.name
        key = f"{rule_name}.{name}"
        if key in self.overrides:
            return float(self.overrides[key])
        return float(DECLARED[rule_name].thresholds[name])

    @cached_property
    def lake(self):
        from resources.storage.lake import Lake

        return Lake(self.settings.lake_dir)

    @cached_property
    def duckdb(self):
        """An in-memory DuckDB for reading lake files (closed with the context's evaluation)."""
        import duckdb

        return duckdb.connect(":memory:")

    def close(self) -> None:
        if "duckdb" in self.__dict__:
            self.__dict__.pop("duckdb").close()


Where = Literal["sidecar", "dagster"]


@dataclass(frozen=True)
class Rule:
    name: str
    checks: str  # what it checks, one line for the rules table
    cadence_s: float | None  # None: raised when the thing happens (a run fails, a build ends)
    severity: str
    thresholds: Mapping[str, float]
    action: str  # what happens besides the alert: "refresh requested", "backfill requested", ...
    runs_in: Where
    evaluate: Callable[[RuleContext], Evaluation] | None = None

    def __post_init__(self) -> None:
        DECLARED.setdefault(self.name, self)


