"""What an alert is: a rule's finding about one subject, kept as a record with a lifecycle.

A rule (cc_alerts/rules/) looks at the platform and returns `Finding`s: "source:github is stale",
"host:web-1 CPU over 90% for 5 min". The store (cc_alerts/store.py) keeps one `Alert` per rule +
subject while the condition holds: the first finding opens it, later ones bump its count and last
seen, an operator may acknowledge it, and it is resolved when the rule no longer finds it. Only the
opening, a change of severity and the resolution are notified (cc_alerts/notify.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
STATES: tuple[str, ...] = ("open", "acknowledged", "resolved")
# What a change to an alert is called, in `alerts:all` (`alert.<transition>`) and notifications.
TRANSITIONS: tuple[str, ...] = ("opened", "updated", "escalated", "acknowledged", "resolved")
NOTIFIED: tuple[str, ...] = ("opened", "escalated", "resolved")
# A subject names what the alert is about: `<kind>:<name>`.
SUBJECT_KINDS: tuple[str, ...] = ("source", "asset", "host", "instance", "job", "sensor", "test", "workflow", "rule")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def subject(kind: str, name: str) -> str:
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"subject kind must be one of {SUBJECT_KINDS}, not {kind!r}")
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Action:
    """What the platform can do about a finding by itself: `refresh` (run the source's job for
    today) or `backfill` (run it over `start`..`end`, ISO days). A Dagster sensor launches it."""

    kind: Literal["refresh", "backfill"]
    source: str
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class Finding:
    """One rule's finding about one subject, now. `count` is how many occurrences it stands for
    (a run of 1,000 failures found at once is one finding with count 1,000)."""

    rule: str
    subject: str
    severity: str
    message: str
    links: dict[str, str] = field(default_factory=dict)
    count: int = 1
    action: Action | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if ":" not in self.subject:
            raise ValueError(f"a subject is `<kind>:<name>`, not {self.subject!r}")


@dataclass
class Alert:
    """An alert as stored: one per rule + subject while its condition holds."""

    id: str
    rule: str
    subject: str
    severity: str
    message: str
    state: str
    count: int
    first_seen: datetime
    last_seen: datetime
    links: dict[str, str]
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    last_change: str = "opened"  # the transition that made this version (TRANSITIONS)
    seq: int = 0  # the store's change counter when this alert last changed

    @property
    def subject_kind(self) -> str:
        return self.subject.partition(":")[0]

    @property
    def subject_name(self) -> str:
        return self.subject.partition(":")[2]

    def to_json(self) -> dict[str, Any]:
        """The API's and the rooms' form (camelCase, ISO times)."""

        def iso(ts: datetime | None) -> str | None:
            return None if ts is None else ts.isoformat(timespec="milliseconds") + "Z"

        return {"id": self.id, "rule": self.rule, "severity": self.severity,
                "subject": {"kind": self.subject_kind, "name": self.subject_name, "key": self.subject},
                "message": self.message, "state": self.state, "count": self.count,
                "firstSeen": iso(self.first_seen), "lastSeen": iso(self.last_seen), "links": self.links,
                "acknowledgedBy": self.acknowledged_by, "acknowledgedAt": iso(self.acknowledged_at),
                "resolvedAt": iso(self.resolved_at), "lastChange": self.last_change}


@dataclass(frozen=True)
class Change:
    """What happened to an alert: `transition` is one of TRANSITIONS."""

    transition: str
    alert: Alert
