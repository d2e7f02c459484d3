"""A seeded, deterministic software organisation: Linear issues, GitHub work and Charlie activity.

The world is told as stories (a Linear issue worked by a human or a Charlie instance, a GitHub
bug fixed by a PR, a dependency bump, a nightly Charlie run), each cut off at `end`. Numbers and
ids are given out afterwards in creation order, then the text templates are rendered.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from sandbox import text
from sandbox.model import (
    Activity,
    CheckRun,
    Comment,
    Commit,
    Cycle,
    GhIssue,
    GhUser,
    History,
    Human,
    Instance,
    Label,
    LinearIssue,
    LinearUser,
    Org,
    Pull,
    Repo,
    Review,
    State,
    Team,
    WorkflowRun,
    paused_gc,
)

MIN, HOUR, DAY = 60, 3600, 86400

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
_CYCLE_DAYS = {"ENG": 7, "OPS": 14, "DATA": 14}
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


def slugify(title: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:limit].rstrip("-")


class _World:
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

    # ---- building blocks -----------------------------------------------------------------------------
    def _move(self, issue: LinearIssue, state: str, t: int, actor: LinearUser | None) -> bool:
        """A Linear state change; False (and nothing) when it would fall after `end`."""
        if t > self.end:
            return False
        to = issue.team.states[state]
        issue.history.append(History(self._uuid(), t, actor, issue.state, to))
        issue.state = to
        if to.type == "started" and issue.started_at is None:
            issue.started_at = t
        elif to.type == "completed":
            issue.completed_at = t
        elif to.type == "canceled":
            issue.canceled_at = t
        elif to.type in ("unstarted", "backlog"):
            issue.started_at = None
        issue.updated_at = t
        self.n += 1
        return True

    def _act(self, inst: Instance, kind: str, t: int, message: str, issue: LinearIssue | None = None,
             pull: Pull | None = None, cid: str | None = None, refs: tuple = ()) -> bool:
        """A Charlie activity event, unless it would fall after `end`."""
        if t > self.end:
            return False
        self.activities.append(Activity(inst, kind, t, message, issue, pull, cid, refs))
        self.n += 1
        return True

    def _commit(self, repo: Repo, author: GhUser, t: int, message: str, refs: tuple = (),
                pull: Pull | None = None, default: bool = False, linked: bool = False) -> Commit:
        # Now and then a human commits with an email GitHub cannot tie to an account.
        linked = linked or author.type == "Bot" or self.rng.random() > 0.03
        email = author.email if linked else f"{author.login.split('-')[0]}@laptop.local"
        self.n += 1
        return Commit(repo, self._sha(), message, author if linked else None, author.name, email, t, pull,
                      default, refs)

    def _branch_commit(self, pull: Pull, t: int, message: str, refs: tuple = ()) -> None:
        commit = self._commit(pull.repo, pull.user, t, message, refs, pull=pull)
        pull.commits.append(commit)
        pull.head_sha = commit.sha
        pull.updated_at = max(pull.updated_at, t)

    def _open_pull(self, repo: Repo, author: GhUser, t: int, title: str, body: str, branch: str, refs: tuple,
                   messages: list[tuple[str, tuple]], labels: tuple[str, ...] = (),
                   first_gap: tuple[int, int] = (10 * MIN, 4 * HOUR)) -> Pull | None:
        """Branch commits, then the PR; None when the story reaches `end` before the PR opens."""
        times = []
        t += self._gap(*first_gap)
        for _ in messages:
            times.append(t)
            t += self._gap(3 * MIN, 90 * MIN)
        opened = times[-1] + self._gap(MIN, 20 * MIN)
        if opened > self.end:
            return None
        pull = Pull(repo, author, title, body, branch, opened, refs, labels, draft=self.rng.random() < 0.05,
                    updated_at=opened)
        for ct, (message, mrefs) in zip(times, messages, strict=True):
            self._branch_commit(pull, ct, message, mrefs)
        self.pulls.append(pull)
        self.pulls_by_repo[repo.full_name].append(pull)
        self.n += 1
        return pull

    def _review(self, pull: Pull, user: GhUser, state: str, t: int) -> None:
        body = self.rng.choice(text.REVIEW_BODIES[state])
        pull.reviews.append(Review(pull, user, state, body, t, pull.head_sha))
        pull.updated_at = max(pull.updated_at, t)
        self.n += 1

    def _merge(self, pull: Pull, t: int, by: GhUser) -> None:
        """Squash-merge: one new commit on the default branch, `<title> (#<n>)`."""
        pull.merged_at = pull.closed_at = pull.updated_at = t
        pull.merged_by = by
        squash = self._commit(pull.repo, pull.user, t, "{0.title} (#{0.number})", (pull,), pull=pull,
                              default=True, linked=True)
        pull.merge_sha = squash.sha
        self.commits.append(squash)
        self.n += 1

    def _close(self, pull: Pull, t: int) -> None:
        pull.closed_at = pull.updated_at = t
        self.n += 1

    def _reviewers(self, author: GhUser, bot: Instance | None = None) -> list[GhUser]:
        people = [h.github for h in self.rng.sample(self.humans, 3) if h.github is not author]
        return people + [bot.github] if bot else people

    def _conclude(self, pull: Pull, reviewers: list[GhUser], outcome: str,
                  on_fix: Callable[[int], None] | None = None) -> None:
        """The PR's story to its end, then the CI runs its pushes triggered."""
        self._review_until_done(pull, reviewers, outcome, on_fix)
        self._ci(pull)

    def _review_until_done(self, pull: Pull, reviewers: list[GhUser], outcome: str,
                           on_fix: Callable[[int], None] | None = None) -> None:
        """Reviews until approval then a merge, or a close, or the PR left open; stops at `end`."""
        rng, t = self.rng, pull.created_at
        if outcome == "closed":
            if rng.random() < 0.5 and (t := t + self._gap(15 * MIN, 8 * HOUR)) <= self.end:
                self._review(pull, reviewers[0], rng.choice(("COMMENTED", "CHANGES_REQUESTED")), t)
            if (t := t + self._gap(HOUR, 48 * HOUR)) <= self.end:
                self._close(pull, t)
            return
        for round_ in range(4):
            if (t := t + self._gap(15 * MIN, 8 * HOUR)) > self.end:
                return
            roll = rng.random()
            approve = round_ >= 2 or roll < 0.6
            state = "APPROVED" if approve else "CHANGES_REQUESTED" if roll < 0.85 else "COMMENTED"
            self._review(pull, rng.choice(reviewers), state, t)
            if state == "APPROVED":
                break
            if state == "CHANGES_REQUESTED":
                if (t := t + self._gap(10 * MIN, 3 * HOUR)) > self.end:
                    return
                self._branch_commit(pull, t, "Address review comments")
                if on_fix:
                    on_fix(t)
        if outcome == "merged" and (t := t + self._gap(2 * MIN, 3 * HOUR)) <= self.end:
            last = pull.reviews[-1].user
            self._merge(pull, t, last if last.type == "User" else pull.user)

    def _ci(self, pull: Pull) -> None:
        """GitHub Actions `CI` runs: on the PR's head when it opens and after each later push, and on the
        default branch after a squash merge. A merged PR whose last run failed was usually re-run green.

        Counts the events the pipeline sees: completed runs, and completed check runs on the PR's head.
        """
        rng = self.ci_rng
        at_open = [c for c in pull.commits if c.date <= pull.created_at]
        triggers = [(pull.created_at, at_open[-1])] if at_open else []
        triggers += [(c.date, c) for c in pull.commits if c.date > pull.created_at]
        runs = [run for t, commit in triggers
                if (run := self._run(pull.repo, commit, "pull_request", pull.user, t, pull))]
        head = [r for r in runs if r.commit.sha == pull.head_sha]
        if pull.merged_at and head and head[-1].conclusion == "failure" and rng.random() < 0.8:
            self._rerun(head[-1], pull.merged_at)
        pull.runs.extend(runs)
        if pull.merged_at and self.commits and self.commits[-1].sha == pull.merge_sha:
            by = pull.merged_by or pull.user
            if run := self._run(pull.repo, self.commits[-1], "push", by, pull.merged_at, None):
                runs.append(run)
        self.workflow_runs.extend(runs)
        self.n += sum(r.completed_at is not None for r in runs)
        self.n += sum(c.completed_at is not None for r in head for c in r.checks)

    def _jobs(self, run: WorkflowRun, attempt: int, started: int, fail: bool = True) -> int | None:
        """The run's jobs as check runs from `started`; when they all finished, the run's end."""
        rng, ends = self.ci_rng, []
        for name, lo, hi, p_fail in text.CI_JOBS:
            begin = started + rng.randint(3, 30)
            done = begin + rng.randint(lo, hi)
            failed = fail and rng.random() < p_fail
            if begin > self.end:
                ends.append(None)  # still queued: no check run yet
                continue
            finished = done if done <= self.end else None
            run.checks.append(CheckRun(run, name, attempt, begin, finished,
                                       None if finished is None else "failure" if failed else "success"))
            ends.append(finished)
        if None in ends or (done := max(ends) + rng.randint(2, 15)) > self.end:
            return None
        return done

    def _run(self, repo: Repo, commit: Commit, event: str, actor: GhUser, t: int,
             pull: Pull | None) -> WorkflowRun | None:
        rng = self.ci_rng
        created = t + rng.randint(3, 40)
        if created > self.end:
            return None
        started = created + rng.randint(2, 60)
        run = WorkflowRun(repo, commit, event, actor, created, started, None, None, pull)
        run.completed_at = self._jobs(run, 1, started)
        if run.completed_at is not None:
            run.conclusion = "failure" if any(c.conclusion == "failure" for c in run.checks) else "success"
        return run

    def _rerun(self, run: WorkflowRun, before: int) -> None:
        """"Re-run all jobs" of a failed run, when the green re-run fits before `before` (the merge)."""
        started = run.completed_at + self.ci_rng.randint(MIN, 15 * MIN)
        checks = run.checks
        run.checks = []
        done = self._jobs(run, 2, started, fail=False)
        if done is None or done >= before:
            run.checks = checks
            return
        run.checks = checks + run.checks
        run.run_attempt, run.run_started_at, run.completed_at, run.conclusion = 2, started, done, "success"

    def _comments(self, issue: LinearIssue, worker: Instance | None) -> None:
        """People (and the Charlie instance working it) commenting on an issue."""
        rng = self.talk_rng
        for _ in range(rng.choices((0, 1, 2, 3), (0.45, 0.3, 0.15, 0.1))[0]):
            t = issue.created_at + rng.randint(5 * MIN, 3 * DAY)
            if t > self.end:
                continue
            refs: tuple = ()
            if worker and rng.random() < 0.3:
                user, body = worker.linear, rng.choice(text.CHARLIE_COMMENTS)
            else:
                user, body = rng.choice(self.humans).linear, rng.choice(text.ISSUE_COMMENTS)
                if "{0" in body:
                    others = [i for i in self.linear_issues[-300:] if i is not issue]
                    if not others:
                        continue
                    refs = (rng.choice(others),)
            edited = min(self.end, t + rng.randint(MIN, 2 * HOUR)) if rng.random() < 0.15 else t
            comment = Comment(str(uuid.UUID(int=rng.getrandbits(128), version=4)), issue, user, body, t, edited,
                              refs)
            issue.comments.append(comment)
            self.n += 1

    def _cycles(self) -> list[Cycle]:
        """Back-to-back cycles per team from before the window to the next one; issues join the cycle
        current when they left the backlog."""
        rng, out = random.Random(f"{self.seed}/cycles"), []
        for team in self.teams:
            length = _CYCLE_DAYS.get(team.key, 14) * DAY
            monday = self.start - self.start % DAY - time.gmtime(self.start).tm_wday * DAY
            begin = monday - length
            number = max(1, (begin - team.created_at) // length + 1)
            cycles = []
            while begin <= self.end + length:
                ends = begin + length
                cycles.append(Cycle(str(uuid.UUID(int=rng.getrandbits(128), version=4)), team, number,
                                    f"Sprint {number}" if team.key == "ENG" else None, begin, ends,
                                    ends if ends <= self.end else None, begin - length))
                begin, number = ends, number + 1
            for issue in self.linear_issues:
                if issue.team is not team:
                    continue
                first = issue.history[0] if issue.history else None
                created_in = first.from_state if first else issue.state
                if created_in.type != "backlog":
                    joined: int | None = issue.created_at
                elif first is not None and first.to_state.type != "canceled":
                    joined = first.created_at
                else:
                    joined = None
                if joined is not None:
                    issue.cycle = next((c for c in cycles if c.starts_at <= joined < c.ends_at), None)
            out.extend(cycles)
        return out

    def _outcome(self, merged: float = 0.75, closed: float = 0.1) -> str:
        roll = self.rng.random()
        return "merged" if roll < merged else "closed" if roll < merged + closed else "open"

    def _recent(self, items: list, span: int = 300):
        return self.rng.choice(items[-span:]) if items else None

    # ---- stories -------------------------------------------------------------------------------------
    def _linear_story(self) -> None:
        """A Linear issue worked by a human or a Charlie instance, usually through a PR."""
        rng = self.rng
        team = rng.choices(self.teams, self.team_weights)[0]
        repo = rng.choice(self.team_repos[team.key])
        title = f"{rng.choice(text.VERBS)} {rng.choice(text.TOPICS[team.key])}"
        worker = rng.choice(self.workers) if rng.random() < 0.3 else None
        owner = rng.choice(self.humans)
        creator = rng.choice(self.humans).linear
        t, iid = self._work_time(), self._uuid()
        description, priority = rng.choice(text.DESCRIPTIONS), rng.choices(range(5), (1, 1, 3, 4, 2))[0]
        estimate = rng.choice((None, 1, 2, 3, 5, 8))
        labels = tuple(rng.sample(self.labels, rng.randint(0, 2)))
        assignee = worker.linear if worker else owner.linear
        state = team.states["Backlog" if rng.random() < 0.4 else "Todo"]
        issue = LinearIssue(iid, team, title, description, priority, estimate, labels, creator, assignee,
                            t, state, updated_at=t)
        self.linear_issues.append(issue)
        self.n += 1
        self._work_issue(issue, repo, title, owner, worker, t)
        self._comments(issue, worker)
        if rng.random() < 0.3:  # later edits (title, labels, comments) bump updatedAt only
            issue.updated_at = min(self.end, issue.updated_at + self._gap(MIN, 6 * HOUR))

    def _work_issue(self, issue: LinearIssue, repo: Repo, title: str, owner: Human, worker: Instance | None,
                    t: int) -> None:
        rng = self.rng
        if issue.state.name == "Backlog":
            if rng.random() < 0.25:
                if rng.random() < 0.3:
                    self._move(issue, "Canceled", t + self._gap(HOUR, 48 * HOUR), issue.creator)
                return
            if not self._move(issue, "Todo", t := t + self._gap(HOUR, 36 * HOUR), issue.creator):
                return
        if not self._move(issue, "In Progress", t := t + self._gap(20 * MIN, 24 * HOUR), issue.assignee):
            return
        if worker:
            self._act(worker, "task.started", t + self._gap(5, 90), "Picked up {0.identifier}: {0.title}",
                      issue, refs=(issue,))
            pt = t
            for _ in range(rng.randint(1, 3)):
                self._act(worker, "task.progress", pt := pt + self._gap(3 * MIN, 25 * MIN),
                          rng.choice(text.PROGRESS), issue)
            if rng.random() < 0.1 and (other := self._recent(self.linear_issues)) is not issue:
                self._act(worker, "comment.posted", pt + self._gap(MIN, 10 * MIN),
                          "Possibly related to {1.identifier}", issue, refs=(issue, other))
        roll = rng.random()
        if roll < 0.06:
            if self._move(issue, "Canceled", t + self._gap(HOUR, 24 * HOUR), issue.assignee) and worker:
                self._act(worker, "task.failed", issue.canceled_at, "Stopped work on {0.identifier}",
                          issue, refs=(issue,))
            return
        if roll < 0.14 and not worker:
            done = t + self._gap(30 * MIN, 12 * HOUR)
            if rng.random() < 0.5 and done <= self.end:  # a hotfix straight to the default branch
                message = rng.choice(("{0.identifier}: ", "Hotfix for {0.identifier}: ")) + title.lower()
                hotfix = self._commit(repo, owner.github, done - MIN, message, (issue,), default=True)
                self.commits.append(hotfix)
            self._move(issue, "Done", done, issue.assignee)
            return
        pull = self._linear_pull(issue, repo, title, owner, worker, t)
        if pull is None:
            return
        both = (issue, pull)
        if worker:
            at = pull.created_at + self._gap(2, 30)
            message = rng.choice(("Opened {1.ref} for {0.identifier}", "Opened {1.html_url}"))
            self._act(worker, "pr.opened", at, message, issue, pull, refs=both)
        if rng.random() < 0.7:
            self._move(issue, "In Review", pull.created_at + self._gap(1, 5), None)
        on_fix = None
        if worker:
            def on_fix(ft: int) -> None:
                self._act(worker, "comment.posted", ft + self._gap(5, 60),
                          "Addressed review feedback on {1.ref}", issue, pull, refs=both)
        author = worker.github if worker else owner.github
        bot = rng.choice(self.workers) if not worker and rng.random() < 0.15 else None
        self._conclude(pull, self._reviewers(author, bot), self._outcome(), on_fix)
        if pull.merged_at:
            self._move(issue, "Done", pull.merged_at + self._gap(1, 30), None)
            if worker:
                self._act(worker, "task.completed", pull.merged_at + self._gap(30, 300),
                          "{1.ref} merged, {0.identifier} is done", issue, pull, refs=both)
            elif rng.random() < 0.06:  # a follow-up that only mentions the issue
                follow = self._open_pull(repo, owner.github, pull.merged_at,
                                         f"Follow-up: tests for {title.lower()}",
                                         "Refs {0.identifier}\n\nAdds the tests we skipped.",
                                         f"{owner.handle}/follow-up-{slugify(title, 24)}", (issue,),
                                         [("Add tests", ())])
                if follow:
                    self._conclude(follow, self._reviewers(owner.github), self._outcome())
        elif pull.closed_at:
            back = pull.closed_at + self._gap(MIN, 30 * MIN)
            self._move(issue, "Todo" if rng.random() < 0.6 else "Canceled", back, issue.assignee)
            if worker:
                self._act(worker, "task.failed", back, "{1.ref} was closed without merging", issue, pull,
                          refs=both)

    def _linear_pull(self, issue: LinearIssue, repo: Repo, title: str, owner: Human, worker: Instance | None,
                     t: int) -> Pull | None:
        """The PR for a Linear issue, naming it in the branch, the title and/or the body."""
        rng = self.rng
        slug = slugify(title)
        summary = rng.choice(text.PR_SUMMARIES)
        refs: tuple = (issue,)
        if worker:
            author, branch = worker.github, f"charlie/{{0.slug}}-{slug}"
            pr_title = f"[{{0.identifier}}] {title}"
            body = f"Automated change by Charlie for {{0.identifier}}.\n\n{summary}"
        else:  # Linear's branch name, the key in the title, a magic word in the body, or all three
            author, style = owner.github, rng.random()
            in_branch, in_title = style < 0.45 or style >= 0.9, 0.45 <= style < 0.7 or style >= 0.9
            branch = f"{owner.handle}/{{0.slug}}-{slug}" if in_branch else f"{owner.handle}/{slug}"
            pr_title = f"[{{0.identifier}}] {title}" if in_title else title
            body = summary
            if style >= 0.7:
                magic = rng.choice(("Closes {0.identifier}", "Fixes {0.url}", "closes {0.slug}"))
                body = f"{magic}\n\n{summary}"
        if rng.random() < 0.04 and (other := self._recent(self.linear_issues)) is not issue:
            body += "\n\nAlso closes {1.identifier}"
            refs = (issue, other)
        first = rng.choice(("{0.identifier}: ", "{0.slug}: ", "")) + title
        messages = [(first, (issue,) if "{0" in first else ())]
        messages += [(m, ()) for m in rng.sample(text.BRANCH_COMMITS, rng.randint(0, 3))]
        gap = (2 * MIN, 30 * MIN) if worker else (10 * MIN, 4 * HOUR)
        return self._open_pull(repo, author, t, pr_title, body, branch, refs, messages, first_gap=gap)

    def _issue_story(self) -> None:
        """A GitHub issue: fixed by a PR that says `Fixes #n`, closed by hand, or left open."""
        rng = self.rng
        repo = rng.choices(self.repos, self.repo_weights)[0]
        reporter, t = rng.choice(self.humans), self._work_time()
        title, body, refs = rng.choice(text.BUG_TITLES), rng.choice(text.BUG_BODIES), ()
        if self.linear_issues and rng.random() < 0.2:  # mentions a Linear issue: not a key for issue events
            body += "\n\nInternal tracking: {0.identifier}"
            refs = (self._recent(self.linear_issues),)
        labels = ("bug",) if rng.random() < 0.7 else ()
        issue = GhIssue(repo, reporter.github, title, body, t, refs, labels, rng.randint(0, 6), updated_at=t)
        self.gh_issues.append(issue)
        self.n += 1
        roll = rng.random()
        if roll < 0.45:
            fixer = rng.choice(self.humans)
            pr_repo, ref = repo, rng.choice(("Fixes #{0.number}", "Fixes #{0.number}", "Fixes {0.html_url}"))
            if rng.random() < 0.1:
                pr_repo, ref = rng.choice(self.repos), "Fixes {0.ref}"
            fix_title = f"Fix: {title[0].lower()}{title[1:]}"
            body = f"{ref}\n\n{rng.choice(text.PR_SUMMARIES)}"
            messages = [(m, ()) for m in rng.sample(text.BRANCH_COMMITS, rng.randint(1, 3))]
            branch = f"{fixer.handle}/fix-{slugify(title)}"
            pull = self._open_pull(pr_repo, fixer.github, t, fix_title, body, branch, (issue,), messages,
                                   first_gap=(HOUR, 48 * HOUR))
            if pull:
                self._conclude(pull, self._reviewers(fixer.github), self._outcome())
                if pull.merged_at and (done := pull.merged_at + self._gap(1, 10)) <= self.end:
                    issue.closed_at = issue.updated_at = done
                    issue.state_reason = "completed"
                    self.n += 1
        elif roll < 0.75 and (done := t + self._gap(HOUR, 72 * HOUR)) <= self.end:
            issue.closed_at = issue.updated_at = done
            issue.state_reason = "completed" if rng.random() < 0.6 else "not_planned"
            self.n += 1
        elif rng.random() < 0.5:  # a comment later on
            issue.updated_at = min(self.end, t + self._gap(HOUR, 48 * HOUR))

    def _maintenance_story(self) -> None:
        """A PR naming no Linear issue: a dependency bump, a quick fix, or an automated change."""
        rng = self.rng
        repo = rng.choices(self.repos, self.repo_weights)[0]
        roll, refs, outcome = rng.random(), (), self._outcome(0.8, 0.1)
        if roll < 0.45:
            pkg, old, new, eco = rng.choice(text.DEPENDENCIES)
            author, title = self.dependabot, f"Bump {pkg} from {old} to {new}"
            branch, labels = f"dependabot/{eco}/{pkg}-{new}", ("dependencies",)
            body = (f"Bumps {pkg} from {old} to {new}.\n\n---\nDependabot will resolve any conflicts "
                    "with this PR as long as you don't alter it yourself.")
            day = self.start - self.start % DAY + self._gap(0, self.days) * DAY
            t = day + 6 * HOUR + self._gap(0, 30 * MIN)  # dependabot runs in the early morning
            if rng.random() < 0.25:
                outcome = "closed"  # superseded by a newer bump
        elif roll < 0.9:
            human = rng.choice(self.humans)
            author, title, labels, t = human.github, rng.choice(text.QUICK_FIXES), (), self._work_time()
            branch = f"{human.handle}/{slugify(title)}"
            body = rng.choice(("Quick fix.", rng.choice(text.PR_SUMMARIES)))
            if rng.random() < 0.15 and (earlier := self._recent(self.pulls_by_repo[repo.full_name], 50)):
                body, refs = f"Follow-up to #{{0.number}}.\n\n{body}", (earlier,)
        else:
            author, title, labels = self.actions, "chore: update the generated API client", ("automated",)
            t, branch = self._work_time(), "actions/update-generated-client"
            body = "Automated changes by the create-pull-request action."
        if not self.start <= t <= self.end:
            return
        pull = self._open_pull(repo, author, t, title, body, branch, refs, [(title, ())], labels,
                               (MIN, 10 * MIN))
        if pull:
            self._conclude(pull, self._reviewers(author), outcome)

    def _charlie_run(self) -> None:
        """A scheduled Charlie run: only a correlation id ties its events, plus the PR it may open."""
        rng = self.rng
        worker = rng.choice(self.workers)
        name, done, pr_title = rng.choice(text.RUNS)
        day0 = self.start - self.start % DAY
        t = day0 + rng.randint(0, self.days) * DAY + 2 * HOUR + self._gap(0, 40 * MIN)
        if not self.start <= t <= self.end:
            return
        cid = f"run-{rng.getrandbits(32):08x}"
        self._act(worker, "task.started", t, f"{name} started", cid=cid)
        for repo in rng.sample(self.repos, min(len(self.repos), rng.randint(1, 4))):
            t += self._gap(MIN, 12 * MIN)
            self._act(worker, "task.progress", t, f"Checked {repo.full_name}", cid=cid)
        if rng.random() < 0.35:
            repo = rng.choice(self.repos)
            branch = f"charlie/{slugify(pr_title)}-{time.strftime('%Y%m%d', time.gmtime(t))}"
            body = f"Opened by Charlie during the {name.lower()}."
            pull = self._open_pull(repo, worker.github, t, pr_title, body, branch, (), [(pr_title, ())],
                                   first_gap=(MIN, 5 * MIN))
            if pull:
                t = pull.created_at + self._gap(2, 30)
                self._act(worker, "pr.opened", t, "Opened {0.ref}", pull=pull, cid=cid, refs=(pull,))
                self._conclude(pull, self._reviewers(worker.github), self._outcome())
        if rng.random() < 0.9:
            self._act(worker, "task.completed", t + self._gap(MIN, 5 * MIN), done % rng.randint(0, 9),
                      cid=cid)
        else:
            message = f"{name} failed: registry timed out"
            self._act(worker, "task.failed", t + self._gap(MIN, 5 * MIN), message, cid=cid)

    def _background(self) -> None:
        """Heartbeats and unreferenced default-branch commits: events with no workflow."""
        rng = self.rng
        window = self.end - self.start
        beats = max(2, int(self.target * 0.04 / len(self.instances)))
        for inst in self.instances:
            stop = self.start + int(window * rng.uniform(0.3, 0.8)) if inst.status == "offline" else self.end
            step = window / beats
            for i in range(beats):
                t = self.start + int(step * i + rng.uniform(0, step / 2))
                if t <= stop:
                    self._act(inst, "heartbeat", t, f"heartbeat ok, queue depth {rng.randint(0, 9)}")
        for _ in range(max(2, int(self.target * 0.03))):
            repo, t = rng.choices(self.repos, self.repo_weights)[0], self._work_time()
            if rng.random() < 0.25:
                author, message = self.actions, f"chore(release): v1.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
            else:
                author, message = rng.choice(self.humans).github, rng.choice(text.DIRECT_COMMITS)
            self.commits.append(self._commit(repo, author, t, message, default=True))

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
