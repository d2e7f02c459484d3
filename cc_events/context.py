"""What a normalizer must know beyond one record: the org's Linear teams and its Charlie bots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_events.keys import KeyExtractor


@dataclass(frozen=True)
class NormalizeContext:
    """Which team keys are Linear keys (what makes `ENG-12` a correlation key), and the Charlie
    instances' identities on other systems, mapped to the instance id."""

    linear_team_keys: frozenset[str] = frozenset()
    charlie_github_logins: Mapping[str, str] = field(default_factory=dict)
    charlie_linear_users: Mapping[str, str] = field(default_factory=dict)
    charlie_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def extractor(self) -> KeyExtractor:
        return KeyExtractor(self.linear_team_keys)

    @classmethod
    def build(cls, teams: Iterable[Mapping[str, Any]], instances: Iterable[Mapping[str, Any]]) -> NormalizeContext:
        instances = list(instances)
        return cls(
            linear_team_keys=frozenset(str(t["key"]).upper() for t in teams if t.get("key")),
            charlie_github_logins={i["github_login"].lower(): i["id"] for i in instances if i.get("github_login")},
            charlie_linear_users={i["linear_user_id"]: i["id"] for i in instances if i.get("linear_user_id")},
            charlie_names={i["id"]: i.get("name") or i["id"] for i in instances},
        )
