"""Correlation keys: what an event names that ties it to a workflow (docs/contract.md §3)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PRIORITY = {"linear": 1, "github": 2, "corr": 3}

# A Linear identifier is TEAM-123; the team part is checked against the teams Linear knows, which
# is what rules out look-alikes such as UTF-8, SHA-256 or ISO-8601.
_LINEAR = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,7})(?![A-Za-z0-9])")
_GITHUB_URL = re.compile(r"https?://github\.com/([\w.-]+)/([\w.-]+)/(?:pull|issues)/(\d+)", re.IGNORECASE)
_GITHUB_CROSS = re.compile(r"(?<![\w/.-])([A-Za-z0-9][\w.-]*)/([\w.-]+)#(\d+)\b")
_GITHUB_LOCAL = re.compile(r"(?<![\w&/#])#(\d+)\b")


@dataclass(frozen=True, slots=True, order=True)
class CorrelationKey:
    kind: str  # linear | github | corr
    key: str

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]

    @classmethod
    def linear(cls, identifier: str) -> CorrelationKey:
        return cls("linear", f"linear:{identifier.upper()}")

    @classmethod
    def github(cls, repo: str, number: int | str) -> CorrelationKey:
        return cls("github", f"github:{repo.lower()}#{int(number)}")

    @classmethod
    def corr(cls, correlation_id: str) -> CorrelationKey:
        return cls("corr", f"corr:{correlation_id}")


class KeyExtractor:
    """Finds the keys a piece of free text names, given the Linear teams that exist."""

    def __init__(self, linear_team_keys: Iterable[str]) -> None:
        self.linear_team_keys = frozenset(k.upper() for k in linear_team_keys)

    def linear_keys(self, text: str | None) -> list[CorrelationKey]:
        if not text:
            return []
        return [
            CorrelationKey.linear(f"{team.upper()}-{int(number)}")
            for team, number in _LINEAR.findall(text)
            if team.upper() in self.linear_team_keys
        ]

    @staticmethod
    def github_refs(text: str | None, repo: str | None) -> list[CorrelationKey]:
        """`#12` (in `repo`), `owner/repo#12` and github.com pull/issue URLs."""
        if not text:
            return []
        found: list[CorrelationKey] = []

        def take(match: re.Match[str]) -> str:
            owner, name, number = match.groups()
            found.append(CorrelationKey.github(f"{owner}/{name}", number))
            return " "

        rest = _GITHUB_CROSS.sub(take, _GITHUB_URL.sub(take, text))
        if repo:
            found.extend(CorrelationKey.github(repo, n) for n in _GITHUB_LOCAL.findall(rest))
        return found

    def all_keys(self, *texts: str | None, repo: str | None = None) -> list[CorrelationKey]:
        keys: list[CorrelationKey] = []
        for text in texts:
            keys.extend(self.linear_keys(text))
            keys.extend(self.github_refs(text, repo))
        return keys


def unique(keys: Iterable[CorrelationKey]) -> tuple[CorrelationKey, ...]:
    """Keys without repeats, in a stable order."""
    return tuple(sorted(set(keys)))
