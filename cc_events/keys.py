"""Correlation keys: what an event names that ties it to a workflow (docs/contract.md §3).

Precision comes first: a false key joins two unrelated workflows into one. So text is read the way
GitHub renders it, and only the author's own words count: a link names what it points to (not its
anchor text), code is not a reference, and text quoted from elsewhere (a template's hidden hints,
the upstream release notes and commit lists Dependabot and Renovate fold into `<details>`, a
release PR's changelog) names nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PRIORITY = {"linear": 1, "github": 2, "corr": 3}

# A Linear identifier is TEAM-123; the team part is checked against the teams Linear knows, which
# is what rules out look-alikes such as UTF-8, SHA-256 or ISO-8601. Next to `@` it is part of an
# email address or a mention (`ops-7@acme.dev`, `@eng-12`), not an identifier.
_LINEAR = re.compile(r"(?<![A-Za-z0-9@])([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,7})(?![A-Za-z0-9@])")

# Not the author's words: HTML comments (PR templates' `<!-- e.g. Fixes #123 -->`), `<details>` or
# `<blockquote>` blocks, where bots quote another project's notes. Innermost first, so nested blocks
# go whole; an unclosed one (a body truncated at GitHub's limit) runs to the end.
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_QUOTED = re.compile(r"<(details|blockquote)\b(?:(?!<\1\b).)*?(?:</\1\s*>|\Z)",
                     re.DOTALL | re.IGNORECASE)
# A changelog lists other work: a section under a heading that is a version (`## [1.2.0](…)`,
# `# v2.0.0 (2024-05-01)`, `## @acme/web@1.2.0`) or GitHub's generated release notes, up to the next
# heading of the same or a higher level. A release PR naming every PR it ships is not part of their
# workflows. (A PR template's own "Changelog" section describes the PR itself: it counts.)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*)$", re.MULTILINE)
_CHANGELOG_HEADING = re.compile(
    r"\[?`?(?:v|@?[\w./-]+@)?\d+\.\d+(?:\.\d+|(?=[\]`]|\s*\(|\s*$))|what'?s changed\b|new contributors\b",
    re.IGNORECASE)

# GitHub renders code as code: `#12` in backticks, a fenced block (unclosed: to the end) or
# <code>/<pre> links nothing (and build logs are full of `#5 [2/4] RUN …`).
_CODE = re.compile(
    r"^[ \t]*(`{3,}|~{3,}).*?(?:^[ \t]*\1[ \t]*$|\Z)|`[^`\n]+`|<(code|pre)\b[^>]*>(?:.*?</\2\s*>)?",
    re.DOTALL | re.MULTILINE | re.IGNORECASE)
# A link names what it points to: its anchor text (`[#16686](…)`, `<a href=…>#16686</a>`) is dropped.
_HTML_LINK = re.compile(r"<a\s[^>]*?\bhref\s*=\s*[\"']([^\"']*)[\"'][^>]*>(?:.*?</a\s*>)?",
                        re.DOTALL | re.IGNORECASE)
_MD_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^\s)>]*)>?[^)\n]*\)")
# Every host GitHub serves a repository page from, with or without a scheme: `redirect.github.com`
# is how Dependabot and Renovate link without notifying. A pull or issue URL names that repo's PR;
# any other page of it (a commit, a compare view, a release) names none. The pattern starts at the
# literal, lowercase `github.com/` (fast to find: case-insensitive matching costs 3x, and every bot
# and GitHub itself write it so); what may stand before it is checked on the match.
_GITHUB_URL = re.compile(r"github\.com/([A-Za-z0-9][A-Za-z0-9-]*)/([\w.-]+)"
                         r"(?:/(?:pull|issues)/(\d+)(?!\d))?[^\s<>\"'`)\]]*")
_GITHUB_HOST = re.compile(r"(?<![\w.@/-])(?:https?://)?(?:(?:www|redirect)\.)?\Z")
_URL = re.compile(r"https?://[^\s<>\"'`)\]]*")
# What git and GitHub write when merging: the part after `from` (or in quotes) is a branch name,
# read as one (`alice/fix-#45` is not the repository `alice/fix-`).
_MERGE = re.compile(r"^(?:(Merge pull request #\d+ from )(\S+)"
                    r"|Merge (?:remote-tracking )?branch '([^'\n]+)')", re.MULTILINE)
# `owner/repo#12`: owners are letters, digits and hyphens; a repo name does not end in `-` or `.`.
_GITHUB_CROSS = re.compile(r"(?<![\w/.@-])([A-Za-z0-9][A-Za-z0-9-]*)/([\w.-]*[A-Za-z0-9_])#(\d+)\b")
# `#12` on its own, or ending a branch part (`feature/#5-add-x`, `fix-#45`); not an HTML entity
# (`&#12;`), not glued to a word (`issue#3`) or to a version (`v1.2.3-#4`).
_GITHUB_LOCAL = re.compile(r"(?<![\w&#])(?<!\d[-/.])#(\d+)\b")


def _without_changelogs(text: str) -> str:
    """The text without its changelog sections (see `_CHANGELOG_HEADING`)."""
    kept: list[str] = []
    start = 0
    level: int | None = None  # the heading level of the changelog being skipped, if in one
    for heading in _HEADING.finditer(text):
        depth = len(heading.group(1))
        if level is not None:
            if depth > level:
                continue
            start, level = heading.start(), None
        if _CHANGELOG_HEADING.match(heading.group(2)):
            kept.append(text[start:heading.start()])
            level = depth
    if level is None:
        kept.append(text[start:])
    return "\n".join(kept)


def _target(link: re.Match[str]) -> str:
    """A link as its target alone; an in-page anchor (`#12`) names nothing."""
    return f" {link.group(1)} " if "/" in link.group(1) else " "


def _own_words(text: str) -> str:
    """The text without what its author quoted or hid."""
    if "<" in text:
        if "<!--" in text:
            text = _COMMENT.sub(" ", text)
        lower = text.lower()
        if "<details" in lower or "<blockquote" in lower:
            found = 1
            while found:
                text, found = _QUOTED.subn(" ", text)
    if "# " in text or "#\t" in text:
        text = _without_changelogs(text)
    return text


def _github_refs(text: str, repo: str | None) -> list[CorrelationKey]:
    """GitHub references in text that is the author's own words."""
    lower = text.lower()
    if "#" not in text and "github.com" not in lower:
        return []
    found: list[CorrelationKey] = []

    def take_url(match: re.Match[str]) -> str:
        start = match.start()
        if not _GITHUB_HOST.search(" " + match.string[max(0, start - 20):start]):
            return match.group(0)  # docs.github.com, notgithub.com: some other site
        owner, name, number = match.groups()
        if number is not None:
            found.append(CorrelationKey.github(f"{owner}/{name}", number))
        return " "

    def take_cross(match: re.Match[str]) -> str:
        owner, name, number = match.groups()
        found.append(CorrelationKey.github(f"{owner}/{name}", number))
        return " "

    def take_branch(match: re.Match[str]) -> str:
        prefix, branch, quoted = match.groups()
        found.extend(KeyExtractor.branch_refs(branch or quoted, repo))
        return prefix or " "

    if "`" in text or "<code" in lower or "<pre" in lower:
        text = _CODE.sub(" ", text)
    if "<a" in lower:
        text = _HTML_LINK.sub(_target, text)
    if "](" in text:
        text = _MD_LINK.sub(_target, text)
    if "Merge " in text:
        text = _MERGE.sub(take_branch, text)
    if "github.com" in lower:
        text = _GITHUB_URL.sub(take_url, text)
    if "://" in text:
        text = _URL.sub(" ", text)
    if "/" in text:
        text = _GITHUB_CROSS.sub(take_cross, text)
    if repo:
        found.extend(CorrelationKey.github(repo, n) for n in _GITHUB_LOCAL.findall(text))
    return found


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
        return self._linear_keys(_own_words(text)) if text else []

    def _linear_keys(self, text: str) -> list[CorrelationKey]:
        return [
            CorrelationKey.linear(f"{team.upper()}-{int(number)}")
            for team, number in _LINEAR.findall(text)
            if team.upper() in self.linear_team_keys
        ]

    @staticmethod
    def github_refs(text: str | None, repo: str | None) -> list[CorrelationKey]:
        """`#12` (in `repo`), `owner/repo#12` and pull/issue URLs on any GitHub host."""
        return _github_refs(_own_words(text), repo) if text else []

    @staticmethod
    def branch_refs(branch: str | None, repo: str | None) -> list[CorrelationKey]:
        """A branch names issues of its own repo only (`feature/#5-add-x`, `fix-#45`): `alice/fix-#45`
        is a branch, never the repository `alice/fix-`."""
        if not branch or not repo or "#" not in branch:
            return []
        return [CorrelationKey.github(repo, n) for n in _GITHUB_LOCAL.findall(branch)]

    def all_keys(self, *texts: str | None, repo: str | None = None,
                 branch: str | None = None) -> list[CorrelationKey]:
        """The keys of free texts (titles, bodies, messages) and of a branch name."""
        keys = [*self.linear_keys(branch), *self.branch_refs(branch, repo)]
        for text in texts:
            if text:
                own = _own_words(text)
                keys.extend(self._linear_keys(own))
                keys.extend(_github_refs(own, repo))
        return keys


def unique(keys: Iterable[CorrelationKey]) -> tuple[CorrelationKey, ...]:
    """Keys without repeats, in a stable order."""
    return tuple(sorted(set(keys)))
