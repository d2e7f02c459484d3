"""The GitHub work a story does: branch commits, pull requests, reviews, merges and closes, and the
CI runs (workflow runs and their check runs) each push triggers.

A mixin of `sandbox.generator._World`: it draws from the world's random streams (`rng` for the
work, `ci_rng` for CI) in the order the stories call it, so moving code here or there must not
reorder any draw (the worlds are compared by seed).
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox import text
from sandbox.model import (
    HOUR,
    MIN,
    CheckRun,
    Commit,
    GhUser,
    Instance,
    Pull,
    Repo,
    Review,
    WorkflowRun,
)


class GitHubWork:
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
