"""The stories a world is told as: a Linear issue worked by a human or a Charlie instance, a GitHub
bug fixed by a PR, a maintenance PR, a scheduled Charlie run, and the background (heartbeats,
unreferenced commits); with the Linear and Charlie building blocks they use (state moves,
activities, comments, cycles).

A mixin of `sandbox.generator._World`, drawing from its random streams: see `sandbox.github_work`.
"""

from __future__ import annotations

import random
import re
import time
import uuid

from sandbox import text
from sandbox.model import (
    DAY,
    HOUR,
    MIN,
    Activity,
    Comment,
    Cycle,
    GhIssue,
    History,
    Human,
    Instance,
    LinearIssue,
    LinearUser,
    Pull,
    Repo,
)

_CYCLE_DAYS = {"ENG": 7, "OPS": 14, "DATA": 14}


def slugify(title: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:limit].rstrip("-")


class Stories:
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
