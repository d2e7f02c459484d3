"""The records of the sandbox world: slotted dataclasses, times as epoch seconds (UTC).

Text fields are written as `str.format` templates over a record's `refs` while the world is
generated, and rendered once numbers are assigned (see `generator._render`): the refs are the
linkage the generator intended, so the ground truth never has to re-read the text.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

MIN, HOUR, DAY = 60, 3600, 86400  # seconds: the world's times are epoch seconds


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic GC while building millions of long-lived objects: it would only rescan them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def iso(ts: int | None) -> str | None:
    """`2026-11-20T12:00:00Z`, GitHub and Charlie style."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def epoch(value: str) -> int:
    """An ISO 8601 time (`Z` or an offset; naive is UTC) as epoch seconds, rounded up: records are
    stamped to the second, so `>= epoch(since)` keeps exactly those at or after `since`."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {value}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.ceil(moment.timestamp())


def iso_ms(ts: int | None) -> str | None:
    """`2026-11-20T12:00:00.000Z`, Linear style."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


@dataclass(slots=True)
class GhUser:
    login: str
    id: int
    type: str  # User | Bot
    name: str
    email: str


@dataclass(slots=True)
class LinearUser:
    id: str
    name: str
    display_name: str
    email: str
    created_at: int
    active: bool = True


@dataclass(slots=True)
class Human:
    """A person with an account on both sides."""

    github: GhUser
    linear: LinearUser
    handle: str  # Linear's branch prefix: `alice/eng-12-...`


@dataclass(slots=True)
class State:
    id: str
    name: str
    type: str  # backlog | unstarted | started | completed | canceled
    color: str
    position: float
    team: Team | None = None


@dataclass(slots=True)
class Team:
    id: str
    key: str
    name: str
    created_at: int
    states: dict[str, State] = field(default_factory=dict)


@dataclass(slots=True)
class Label:
    id: str
    name: str
    color: str


@dataclass(slots=True)
class Instance:
    id: str
    name: str
    type: str  # production | staging | development
    status: str  # active | idle | offline
    github: GhUser
    linear: LinearUser
    version: str
    created_at: int
    started_at: int
    queue_depth: int
    health: str  # healthy | degraded | offline


@dataclass(slots=True)
class Repo:
    id: int
    owner: str
    name: str
    team_key: str
    description: str
    language: str
    created_at: int
    default_branch: str = "main"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(slots=True)
class LinearIssue:
    id: str
    team: Team
    title: str
    description: str
    priority: int
    estimate: int | None
    labels: tuple[Label, ...]
    creator: LinearUser
    assignee: LinearUser | None
    created_at: int
    state: State
    refs: tuple = ()
    history: list[History] = field(default_factory=list)
    updated_at: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    canceled_at: int | None = None
    number: int = 0
    cycle: Cycle | None = None
    comments: list[Comment] = field(default_factory=list)

    @property
    def identifier(self) -> str:
        return f"{self.team.key}-{self.number}"

    @property
    def slug(self) -> str:
        return self.identifier.lower()

    @property
    def key(self) -> str:
        return f"linear:{self.identifier}"

    @property
    def url(self) -> str:
        return f"https://linear.app/acme/issue/{self.identifier}"


@dataclass(slots=True)
class History:
    id: str
    created_at: int
    actor: LinearUser | None  # None: a transition made by the GitHub integration
    from_state: State
    to_state: State


@dataclass(slots=True)
class Cycle:
    """A team's cycle (sprint): back to back, `starts_at` inclusive, `ends_at` exclusive."""

    id: str
    team: Team
    number: int
    name: str | None
    starts_at: int
    ends_at: int
    completed_at: int | None  # set once `ends_at` has passed
    created_at: int

    @property
    def updated_at(self) -> int:
        return self.completed_at or self.created_at


@dataclass(slots=True)
class Comment:
    """A comment on a Linear issue; `updated_at` later than `created_at` when it was edited."""

    id: str
    issue: LinearIssue
    user: LinearUser
    body: str
    created_at: int
    updated_at: int
    refs: tuple = ()  # rendering only: a comment names nothing but its issue


@dataclass(slots=True)
class Pull:
    repo: Repo
    user: GhUser
    title: str
    body: str
    head_ref: str
    created_at: int
    refs: tuple = ()
    labels: tuple[str, ...] = ()
    draft: bool = False
    updated_at: int = 0
    closed_at: int | None = None
    merged_at: int | None = None
    merged_by: GhUser | None = None
    head_sha: str = ""
    merge_sha: str | None = None
    commits: list[Commit] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    runs: list[WorkflowRun] = field(default_factory=list)
    number: int = 0
    id: int = 0
    issue_id: int = 0

    @property
    def state(self) -> str:
        return "open" if self.closed_at is None else "closed"

    @property
    def key(self) -> str:
        return f"github:{self.repo.full_name}#{self.number}"

    @property
    def ref(self) -> str:
        return f"{self.repo.full_name}#{self.number}"

    @property
    def html_url(self) -> str:
        return f"https://github.com/{self.repo.full_name}/pull/{self.number}"


@dataclass(slots=True)
class GhIssue:
    repo: Repo
    user: GhUser
    title: str
    body: str
    created_at: int
    refs: tuple = ()  # rendering only: an issue names nothing but itself
    labels: tuple[str, ...] = ()
    comments: int = 0
    updated_at: int = 0
    closed_at: int | None = None
    state_reason: str | None = None
    number: int = 0
    id: int = 0

    @property
    def state(self) -> str:
        return "open" if self.closed_at is None else "closed"

    @property
    def key(self) -> str:
        return f"github:{self.repo.full_name}#{self.number}"

    @property
    def ref(self) -> str:
        return f"{self.repo.full_name}#{self.number}"

    @property
    def html_url(self) -> str:
        return f"https://github.com/{self.repo.full_name}/issues/{self.number}"


@dataclass(slots=True)
class Review:
    pull: Pull
    user: GhUser
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED
    body: str
    submitted_at: int
    commit_id: str
    id: int = 0


@dataclass(slots=True)
class Commit:
    repo: Repo
    sha: str
    message: str
    author: GhUser | None  # None: the author's email is linked to no GitHub account
    author_name: str
    author_email: str
    date: int
    pull: Pull | None = None  # listed by /pulls/{n}/commits (a branch commit) or squashed from it
    on_default_branch: bool = False
    refs: tuple = ()


@dataclass(slots=True)
class CheckRun:
    """One job of a workflow run, as GitHub Actions reports it to the Checks API."""

    run: WorkflowRun
    name: str
    attempt: int
    started_at: int
    completed_at: int | None  # None: still running at the end of the window
    conclusion: str | None
    id: int = 0

    @property
    def status(self) -> str:
        return "in_progress" if self.completed_at is None else "completed"


@dataclass(slots=True)
class WorkflowRun:
    """A GitHub Actions run of the `CI` workflow: on a pull request's head commit, or a push to the
    default branch (`pull` None). A failed run may be re-run: the run keeps its id, `run_attempt`
    counts up and the record shows the latest attempt; the earlier attempt's jobs stay as check runs."""

    repo: Repo
    commit: Commit
    event: str  # pull_request | push
    actor: GhUser
    created_at: int
    run_started_at: int
    completed_at: int | None  # None: still in progress at the end of the window
    conclusion: str | None  # success | failure | cancelled, None while in progress
    pull: Pull | None = None
    run_attempt: int = 1
    checks: list[CheckRun] = field(default_factory=list)
    id: int = 0
    run_number: int = 0

    @property
    def status(self) -> str:
        return "in_progress" if self.completed_at is None else "completed"

    @property
    def updated_at(self) -> int:
        return self.completed_at or self.run_started_at

    @property
    def head_branch(self) -> str:
        return self.pull.head_ref if self.pull else self.repo.default_branch


@dataclass(slots=True)
class Activity:
    instance: Instance
    type: str
    timestamp: int
    message: str
    issue: LinearIssue | None = None
    pull: Pull | None = None
    correlation_id: str | None = None
    refs: tuple = ()
    id: str = ""


@dataclass(slots=True)
class Org:
    """Everything the generator made, plus the arguments that made it."""

    login: str
    seed: int
    events_target: int
    days: int
    start: int
    end: int
    repos: list[Repo]
    teams: list[Team]
    labels: list[Label]
    humans: list[Human]
    bots: list[GhUser]
    instances: list[Instance]
    linear_issues: list[LinearIssue]
    pulls: list[Pull]
    gh_issues: list[GhIssue]
    commits: list[Commit]  # default-branch commits; branch commits hang off their Pull
    activities: list[Activity]
    event_count: int = 0
    workflow_runs: list[WorkflowRun] = field(default_factory=list)  # by created_at
    cycles: list[Cycle] = field(default_factory=list)

    @property
    def comments(self) -> list[Comment]:
        return sorted((c for i in self.linear_issues for c in i.comments), key=lambda c: (c.created_at, c.id))

    @property
    def linear_users(self) -> list[LinearUser]:
        return [h.linear for h in self.humans] + [i.linear for i in self.instances]

    @property
    def gh_users(self) -> list[GhUser]:
        return [h.github for h in self.humans] + self.bots + [i.github for i in self.instances]


# ---- the agent-side sources: OpenClaw sessions, cron runs, weather arbitrage ------------------------


@dataclass(slots=True)
class Session:
    """An OpenClaw agent session; `issue`/`pull` are what it worked on (one workflow at most)."""

    id: str
    agent: str
    instance: Instance | None
    status: str  # running | completed | failed | cancelled
    model: str
    started_at: int
    ended_at: int | None
    updated_at: int
    tokens_input: int
    tokens_output: int
    cost_usd: float
    title: str
    issue: LinearIssue | None = None
    pull: Pull | None = None


@dataclass(slots=True)
class CronJob:
    name: str
    schedule: str  # five-field cron expression, UTC
    host: str
    description: str


@dataclass(slots=True)
class CronEvent:
    seq: int
    id: str
    job: CronJob
    event: str  # started | succeeded | failed
    run_id: str
    at: int
    duration_ms: int | None = None
    exit_code: int | None = None
    message: str | None = None


@dataclass(slots=True)
class Opportunity:
    id: str
    market: str  # kalshi | polymarket
    city: str
    contract: str
    forecast_high_f: float
    market_implied_high_f: float
    edge_pct: float
    confidence: float
    suggested_stake_usd: float
    status: str  # open | taken | expired
    detected_at: int
    updated_at: int


@dataclass(slots=True)
class AgentWorld:
    """The agent-side sources, derived from an `Org` (same seed, same window)."""

    sessions: list[Session]  # by (updated_at, id)
    cron_jobs: list[CronJob]
    cron_events: list[CronEvent]  # by seq, which follows `at`
    opportunities: list[Opportunity]  # by (updated_at, id)
