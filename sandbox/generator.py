"""A seeded, deterministic software organisation: Linear issues, GitHub work and Charlie activity.

The world is told as stories (a Linear issue worked by a human or a Charlie instance, a GitHub
bug fixed by a PR, a dependency bump, a nightly Charlie run), each cut off at `end`. Numbers and
ids are given out afterwards in creation order, then the text templates are rendered.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sandbox import text
from sandbox.github_work import GitHubWork
from sandbox.model import (
    DAY,
    HOUR,
    MIN,
    Activity,
    Commit,
    GhIssue,
    GhUser,
    Human,
    Instance,
    Label,
    LinearIssue,
    LinearUser,
    Org,
    Pull,
    Repo,
    State,
    Team,
    WorkflowRun,
    paused_gc,
)
from sandbox.stories import Stories

_STATES = (  # name, type, color
    ("Backlog", "backlog", "#bec2c8"), ("Todo", "unstarted", "#e2e2e2"),
    ("In Progress", "started", "#f2c94c"), ("In Review", "started", "#0f783c"),
    ("Done", "completed", "#5e6ad2"), ("Canceled", "canceled", "#95a2b3"),
    ("Duplicate", "canceled", "#95a2b3"),
)
_INSTANCES = (  # name, type, status, version
    ("alpha", "production", "active", "3.4.1"), ("beta", "production", "active", "3.4.1"),
    ("gamma", "staging", "idle", "3.5.0-rc.2"), ("delta", "development", "offline", "3.6.0-dev"),
    ("epsilon", "staging", "active", "3.5.0-rc.2"),
)
_HEALTH = {"active": "healthy", "idle": "degraded", "offline": "offline"}
_LABELS = (("Bug", "#eb5757"), ("Feature", "#bb87fc"), ("Improvement", "#4ea7fc"), ("Tech debt", "#f2994a"),
           ("Incident", "#e5484d"))


def to_epoch(moment: datetime | str | None) -> int:
    """`end` as epoch seconds, truncated to the minute; naive datetimes are UTC; None is now."""
    if moment is None:
        moment = datetime.now(UTC)
    elif isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ts = int(moment.timestamp())
    return ts - ts % MIN


def generate(seed: int = 7, events: int = 5000, days: int = 7, end: datetime | str | None = None) -> Org:
    """The world for these arguments; the same arguments always give the same world."""
    if events < 1 or days < 1:
        raise ValueError("events and days must be positive")
    with paused_gc():
        return _World(seed, events, days, to_epoch(end)).build()

class _World(GitHubWork, Stories):
    """One world being built: its state, its random streams and cast, and the assembly; the stories
    and the GitHub work they do are the mixins' (`sandbox.stories`, `sandbox.github_work`)."""

    def __init__(self, seed: int, events: int, days: int, end: int) -> None:
        self.rng = random.Random(seed)
        # CI runs, comments and cycles draw from their own streams, so they leave the stories'
        # draws alone (a string seed is hashed: stable across processes).
        self.ci_rng = random.Random(f"{seed}/ci")
        self.talk_rng = random.Random(f"{seed}/comments")
        self.workflow_runs: list[WorkflowRun] = []
        self.seed, self.target, self.days = seed, events, days
        self.end, self.start = end, end - days * DAY
        self.n = 0  # events made so far
        self.linear_issues: list[LinearIssue] = []
        self.pulls: list[Pull] = []
        self.gh_issues: list[GhIssue] = []
        self.commits: list[Commit] = []
        self.activities: list[Activity] = []
        self.pulls_by_repo: dict[str, list[Pull]] = defaultdict(list)

    # ---- helpers -------------------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def _gap(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def _work_time(self) -> int:
        """A moment in the window, mostly in working hours (UTC) on weekdays."""
        rng = self.rng
        while True:
            t = rng.randint(self.start, self.end - 1)
            tm = time.gmtime(t)
            if (tm.tm_wday < 5 and 8 <= tm.tm_hour < 19) or rng.random() < 0.25:
                return t

    def _ids(self, count: int, lo: int, hi: int) -> list[int]:
        return sorted(self.rng.sample(range(lo, hi), count))

    # ---- the cast ------------------------------------------------------------------------------------
    def _cast(self) -> None:
        rng, start = self.rng, self.start
        n_humans = min(10 + int((self.target / 100) ** 0.5), len(text.FIRST_NAMES) * len(text.LAST_NAMES))
        pairs = rng.sample([(f, la) for f in text.FIRST_NAMES for la in text.LAST_NAMES], n_humans)
        gh_ids = self._ids(n_humans + 5, 1_000_000, 160_000_000)
        self.humans: list[Human] = []
        handles: set[str] = set()
        for (first, last), gid in zip(pairs, gh_ids, strict=False):
            handle = first if first not in handles else f"{first}{last[0]}"
            handles.add(handle)
            name, email = f"{first.title()} {last.title()}", f"{first}.{last}@acme.dev"
            linear = LinearUser(self._uuid(), name, handle, email, start - self._gap(30, 900) * DAY)
            self.humans.append(Human(GhUser(f"{first}-{last}", gid, "User", name, email), linear, handle))
        self.dependabot = _bot("dependabot[bot]", 49699333)
        self.actions = _bot("github-actions[bot]", 41898282)
        self.instances: list[Instance] = []
        specs = _INSTANCES[: rng.randint(3, 5)]
        for (name, kind, status, version), gid in zip(specs, gh_ids[-len(specs):], strict=True):
            login, title = f"charlie-{name}", f"Charlie {name.title()}"
            created = start - self._gap(20, 400) * DAY
            linear = LinearUser(self._uuid(), title, login, f"{login}@bots.acme.dev", created)
            started, queue = self.end - self._gap(HOUR, 20 * DAY), self._gap(0, 12)
            bot = _bot(f"{login}[bot]", gid)
            self.instances.append(Instance(login, title, kind, status, bot, linear, version, created, started,
                                           queue, _HEALTH[status]))
        self.workers = [i for i in self.instances if i.status != "offline"]
        self.teams = []
        for key, name in text.TEAMS.items():
            team = Team(self._uuid(), key, name, start - self._gap(300, 1500) * DAY)
            for pos, (sname, stype, color) in enumerate(_STATES):
                team.states[sname] = State(self._uuid(), sname, stype, color, float(pos), team)
            self.teams.append(team)
        self.team_weights = [0.6, 0.2, 0.2]
        self.labels = [Label(self._uuid(), name, color) for name, color in _LABELS]
        extra = max(0, min(len(text.EXTRA_REPOS), round(2 * math.log2(max(1.0, self.target / 5000)))))
        specs = text.BASE_REPOS + text.EXTRA_REPOS[:extra]
        repo_ids = self._ids(len(specs), 100_000_000, 900_000_000)
        self.repos = [Repo(rid, "acme", name, team, desc, lang, start - self._gap(100, 2000) * DAY)
                      for (name, team, desc, lang), rid in zip(specs, repo_ids, strict=True)]
        self.repo_weights = [3.0 if r.name == "api" else 2.5 if r.name == "web" else 1.0 for r in self.repos]
        self.team_repos = {t.key: [r for r in self.repos if r.team_key == t.key] or self.repos
                           for t in self.teams}

    # ---- assembly ------------------------------------------------------------------------------------
    def build(self) -> Org:
        self._cast()
        self._background()
        stories = (self._linear_story, self._issue_story, self._maintenance_story, self._charlie_run)
        weights = (0.62, 0.14, 0.16, 0.08)
        while self.n < self.target:
            self.rng.choices(stories, weights)[0]()
        self._number()
        self._render()
        return Org("acme", self.seed, self.target, self.days, self.start, self.end, self.repos, self.teams,
                   self.labels, self.humans, [self.dependabot, self.actions], self.instances,
                   self.linear_issues, self.pulls, self.gh_issues, self.commits, self.activities, self.n,
                   self.workflow_runs, self._cycles())

    def _number(self) -> None:
        """Numbers and ids in creation order, as the real services give them out."""
        rng = self.rng
        by_team: dict[str, int] = defaultdict(int)
        for issue in sorted(self.linear_issues, key=lambda i: i.created_at):
            by_team[issue.team.key] += 1
            issue.number = by_team[issue.team.key]
        by_repo: dict[str, int] = defaultdict(int)
        issue_id = 2_000_000_000
        for item in sorted([*self.pulls, *self.gh_issues], key=lambda i: i.created_at):
            by_repo[item.repo.full_name] += 1  # PRs and issues share a number space per repo
            item.number = by_repo[item.repo.full_name]
            issue_id += rng.randint(1, 40)
            item.id = issue_id  # a PR keeps this as its issue-side id; its own id comes next
            if isinstance(item, Pull):
                item.issue_id = item.id
        pull_id = 1_800_000_000
        for pull in sorted(self.pulls, key=lambda p: p.created_at):
            pull_id += rng.randint(1, 40)
            pull.id = pull_id
        review_id = 2_300_000_000
        for review in sorted((r for p in self.pulls for r in p.reviews), key=lambda r: r.submitted_at):
            review_id += rng.randint(1, 60)
            review.id = review_id
        self.activities.sort(key=lambda a: a.timestamp)
        seen: set[str] = set()
        for act in self.activities:
            while (aid := f"act_{rng.getrandbits(64):016x}") in seen:
                pass
            seen.add(aid)
            act.id = aid
        self.commits.sort(key=lambda c: c.date)
        # Actions ids from their own stream, after everything above: the older ids stay as they were.
        self.workflow_runs.sort(key=lambda r: r.created_at)
        run_id, check_id, run_numbers = 11_000_000_000, 30_000_000_000, defaultdict(int)
        for run in self.workflow_runs:
            run_id += self.ci_rng.randint(1, 500)
            run.id = run_id
            run_numbers[run.repo.full_name] += 1
            run.run_number = run_numbers[run.repo.full_name]
        for check in sorted((c for r in self.workflow_runs for c in r.checks), key=lambda c: c.started_at):
            check_id += self.ci_rng.randint(1, 900)
            check.id = check_id

    def _render(self) -> None:
        """Fill the text templates now that every number exists (pulls before the squash commits)."""
        for issue in self.gh_issues:
            if issue.refs:
                issue.body = issue.body.format(*issue.refs)
        for pull in self.pulls:
            if pull.refs:
                pull.title = pull.title.format(*pull.refs)
                pull.body = pull.body.format(*pull.refs)
                pull.head_ref = pull.head_ref.format(*pull.refs)
            for commit in pull.commits:
                if commit.refs:
                    commit.message = commit.message.format(*commit.refs)
        for commit in self.commits:
            if commit.refs:
                commit.message = commit.message.format(*commit.refs)
        for act in self.activities:
            if act.refs:
                act.message = act.message.format(*act.refs)
        for issue in self.linear_issues:
            for comment in issue.comments:
                if comment.refs:
                    comment.body = comment.body.format(*comment.refs)


def _bot(login: str, uid: int) -> GhUser:
    return GhUser(login, uid, "Bot", login, f"{uid}+{login}@users.noreply.github.com")
