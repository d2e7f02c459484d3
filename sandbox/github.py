"""GitHub REST v3 over the world: routes and page-number pagination (the JSON shapes of the
records are `sandbox.github_json`'s).

Lists are precomputed per repo in ascending order and sliced (reversed for `direction=desc`),
so a page costs the records on it, not the size of the world.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
from typing import Any
from urllib.parse import unquote, urlencode

from sandbox.github_json import GitHubShapes, fake_sha
from sandbox.model import CheckRun, Commit, GhIssue, Org, Pull, Repo, WorkflowRun

Result = tuple[int, Any, dict[str, int]]  # status, JSON payload, Link relations (rel -> page)

_DOCS = "https://docs.github.com/rest"
# The Actions listings return at most this many results when filtered (`created`, `status`, ...);
# `total_count` still says how many matched, so a client knows to narrow the filter.
FILTERED_RESULTS_CAP = 1000


def _since(value: str | None) -> int | None:
    if not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


class _Repo:
    """Per-repo indexes."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.numbered: dict[int, Pull | GhIssue] = {}
        self.pulls: dict[tuple[str, str], list[Pull]] = {}
        self.issues: dict[tuple[str, str], list[Pull | GhIssue]] = {}
        self.commits: list[Commit] = []
        self.commit_dates: list[int] = []
        self.runs: list[WorkflowRun] = []  # by (created_at, id)
        self.run_dates: list[int] = []
        self.checks: dict[str, list[CheckRun]] = defaultdict(list)  # head sha -> check runs, by id
        self.branches: dict[str, str] = {}  # branch -> head sha


class GitHubApi(GitHubShapes):
    def __init__(self, org: Org) -> None:
        self.org = org
        self.repos: dict[str, _Repo] = {r.full_name.lower(): _Repo(r) for r in org.repos}
        grouped: dict[str, list] = defaultdict(list)
        for item in (*org.pulls, *org.gh_issues):
            grouped[item.repo.full_name.lower()].append(item)
        for name, idx in self.repos.items():
            items = grouped[name]
            idx.numbered = {i.number: i for i in items}
            pulls = [i for i in items if isinstance(i, Pull)]
            for state in ("open", "closed", "all"):
                for sort in ("created", "updated"):
                    key = attrgetter(f"{sort}_at", "number")
                    idx.pulls[state, sort] = sorted((p for p in pulls if state in ("all", p.state)), key=key)
                    idx.issues[state, sort] = sorted((i for i in items if state in ("all", i.state)), key=key)
        for commit in org.commits:  # already sorted by date
            idx = self.repos[commit.repo.full_name.lower()]
            idx.commits.append(commit)
            idx.commit_dates.append(commit.date)
        self.parents: dict[str, str] = {}
        for idx in self.repos.values():
            prev = fake_sha(idx.repo.full_name)
            for commit in idx.commits:
                self.parents[commit.sha], prev = prev, commit.sha
        for run in sorted(org.workflow_runs, key=lambda r: (r.created_at, r.id)):
            idx = self.repos[run.repo.full_name.lower()]
            idx.runs.append(run)
            idx.run_dates.append(run.created_at)
            idx.checks[run.commit.sha].extend(run.checks)
        for idx in self.repos.values():
            for checks in idx.checks.values():
                checks.sort(key=lambda c: c.id)
            if idx.commits:
                idx.branches[idx.repo.default_branch] = idx.commits[-1].sha
        for pull in sorted(org.pulls, key=lambda p: p.created_at):  # a reused branch name: the newest PR's
            if pull.head_sha:
                self.repos[pull.repo.full_name.lower()].branches[pull.head_ref] = pull.head_sha
        for pull in org.pulls:
            prev = fake_sha(f"{pull.repo.full_name}@{pull.created_at}")
            for commit in pull.commits:
                self.parents[commit.sha], prev = prev, commit.sha
        self._users: dict[str, dict] = {}
        self._routes: list[tuple[re.Pattern[str], Callable[..., Result]]] = [
            (re.compile(r"/orgs/([^/]+)/repos"), self._org_repos),
            (re.compile(r"/repos/([^/]+/[^/]+)"), self._repo),
            (re.compile(r"/repos/([^/]+/[^/]+)/pulls"), self._pulls),
            (re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)"), self._pull),
            (re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews"), self._reviews),
            (re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/commits"), self._pull_commits),
            (re.compile(r"/repos/([^/]+/[^/]+)/issues"), self._issues),
            (re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)"), self._issue),
            (re.compile(r"/repos/([^/]+/[^/]+)/commits"), self._commits),
            (re.compile(r"/repos/([^/]+/[^/]+)/commits/(.+)/check-runs"), self._check_runs),
            (re.compile(r"/repos/([^/]+/[^/]+)/actions/runs"), self._workflow_runs),
            (re.compile(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)"), self._workflow_run),
        ]

    def route_of(self, path: str) -> str:
        """The name of the route serving `path` (`reviews`, `check_runs`, ...), for counting requests."""
        for pattern, route in self._routes:
            if pattern.fullmatch(path.rstrip("/")):
                return route.__name__.lstrip("_")
        return "unknown"

    def handle(self, path: str, query: dict[str, str], api: str) -> tuple[int, Any, dict[str, str]]:
        """Status, payload and headers; `path` is under `api`, the base URL the client used."""
        for pattern, route in self._routes:
            if m := pattern.fullmatch(path.rstrip("/")):
                try:
                    status, payload, links = route(query, api, *m.groups())
                except LookupError:
                    break
                except ValueError as exc:
                    return 422, {"message": f"Validation Failed: {exc}", "documentation_url": _DOCS}, {}
                headers = {"Link": _link_header(f"{api}{path}", query, links)} if links else {}
                return status, payload, headers
        return 404, {"message": "Not Found", "documentation_url": _DOCS}, {}

    # ---- routes --------------------------------------------------------------------------------------
    def _org_repos(self, q: dict, api: str, org: str) -> Result:
        if org.lower() != self.org.login:
            raise LookupError(org)
        repos = sorted(self.org.repos, key=lambda r: r.full_name)
        if q.get("sort", "full_name") != "full_name":
            repos.sort(key=lambda r: r.created_at)
        return _page(repos, q, partial(self._repo_json, api=api), q.get("direction", "asc") == "desc")

    def _repo(self, q: dict, api: str, name: str) -> Result:
        return 200, self._repo_json(self.repos[name.lower()].repo, api), {}

    def _pulls(self, q: dict, api: str, name: str) -> Result:
        idx = self.repos[name.lower()]
        state, sort = _state(q), "created" if q.get("sort", "created") == "created" else "updated"
        return _page(
            idx.pulls[state, sort], q, partial(self._pull_json, api=api), q.get("direction", "desc") == "desc"
        )

    def _pull(self, q: dict, api: str, name: str, number: str) -> Result:
        return 200, self._pull_json(self._find_pull(name, number), api), {}

    def _reviews(self, q: dict, api: str, name: str, number: str) -> Result:
        return _page(self._find_pull(name, number).reviews, q, partial(self._review_json, api=api))

    def _pull_commits(self, q: dict, api: str, name: str, number: str) -> Result:
        return _page(self._find_pull(name, number).commits, q, partial(self._commit_json, api=api))

    def _issues(self, q: dict, api: str, name: str) -> Result:
        idx = self.repos[name.lower()]
        sort = "created" if q.get("sort", "created") == "created" else "updated"
        items: Sequence = idx.issues[_state(q), sort]
        if (since := _since(q.get("since"))) is not None:
            if sort == "updated":
                items = items[bisect_left(items, since, key=lambda i: i.updated_at) :]
            else:
                items = [i for i in items if i.updated_at >= since]
        return _page(items, q, partial(self._issue_json, api=api), q.get("direction", "desc") == "desc")

    def _issue(self, q: dict, api: str, name: str, number: str) -> Result:
        return 200, self._issue_json(self.repos[name.lower()].numbered[int(number)], api), {}

    def _commits(self, q: dict, api: str, name: str) -> Result:
        idx = self.repos[name.lower()]
        since, until = _since(q.get("since")), _since(q.get("until"))
        lo = 0 if since is None else bisect_left(idx.commit_dates, since)
        hi = len(idx.commits) if until is None else bisect_right(idx.commit_dates, until)
        return _page(idx.commits[lo:hi], q, partial(self._commit_json, api=api), descending=True)

    def _workflow_runs(self, q: dict, api: str, name: str) -> Result:
        """Newest first; `created` takes GitHub's date syntax, and filtered listings stop at 1,000 results."""
        idx = self.repos[name.lower()]
        runs: Sequence[WorkflowRun] = idx.runs
        filtered = False
        if q.get("created"):
            lo, hi = _created_range(q["created"])
            runs = runs[bisect_left(idx.run_dates, lo) : bisect_left(idx.run_dates, hi)]
            filtered = True
        tests = {
            "status": lambda r, v: v in (r.status, r.conclusion),
            "event": lambda r, v: r.event == v,
            "branch": lambda r, v: r.head_branch == v,
            "head_sha": lambda r, v: r.commit.sha == v,
            "actor": lambda r, v: r.actor.login.lower() == v.lower(),
        }
        for param, test in tests.items():
            if value := q.get(param):
                runs = [r for r in runs if test(r, value)]
                filtered = True
        total = len(runs)
        if filtered and total > FILTERED_RESULTS_CAP:
            runs = runs[total - FILTERED_RESULTS_CAP :]  # the newest thousand
        with_pulls = q.get("exclude_pull_requests", "false").lower() not in ("true", "1")
        shape = partial(self._run_json, api=api, with_pulls=with_pulls)
        return _wrapped(_page(runs, q, shape, descending=True), "workflow_runs", total)

    def _workflow_run(self, q: dict, api: str, name: str, run_id: str) -> Result:
        for run in self.repos[name.lower()].runs:
            if run.id == int(run_id):
                return 200, self._run_json(run, api), {}
        raise LookupError(run_id)

    def _check_runs(self, q: dict, api: str, name: str, ref: str) -> Result:
        """The check runs on a commit (a SHA or a branch); `filter=latest` (the default) keeps the
        newest attempt of each job name."""
        idx, ref = self.repos[name.lower()], unquote(ref)
        checks: Sequence[CheckRun] = idx.checks.get(idx.branches.get(ref, ref), [])
        if q.get("filter", "latest") == "latest":
            newest: dict[str, CheckRun] = {}
            for check in checks:
                if check.name not in newest or check.started_at >= newest[check.name].started_at:
                    newest[check.name] = check
            checks = sorted(newest.values(), key=lambda c: c.id)
        elif q["filter"] != "all":
            raise ValueError("filter")
        if name_ := q.get("check_name"):
            checks = [c for c in checks if c.name == name_]
        if status := q.get("status"):
            checks = [c for c in checks if c.status == status]
        return _wrapped(_page(checks, q, partial(self._check_json, api=api)), "check_runs", len(checks))

    def _find_pull(self, name: str, number: str) -> Pull:
        item = self.repos[name.lower()].numbered[int(number)]
        if not isinstance(item, Pull):
            raise LookupError(number)
        return item

def _created_range(value: str) -> tuple[int, int]:
    """GitHub's search syntax for a date or time: `2026-11-20`, `>=2026-11-20`, `<2026-11-20T12:00:00Z`,
    `2026-11-19..2026-11-20` (inclusive), `2026-11-19..*`; as epoch seconds [lo, hi)."""
    value = value.strip()
    if ".." in value:
        low, high = value.split("..", 1)
        return (0 if low == "*" else _moment(low)[0], 2**62 if high == "*" else _moment(high)[1])
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            first, after = _moment(value[len(op):])
            return {">=": (first, 2**62), ">": (after, 2**62), "<=": (0, after), "<": (0, first)}[op]
    return _moment(value)


def _moment(value: str) -> tuple[int, int]:
    """A date is the whole day, a time its second: [first, after)."""
    value = value.strip()
    try:
        if len(value) == 10:
            day = int(datetime.fromisoformat(value + "T00:00:00+00:00").timestamp())
            return day, day + 86400
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"created: not a date or time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    first = int(moment.timestamp())
    return first, first + 1


def _wrapped(result: Result, field: str, total: int) -> Result:
    """The Actions and Checks listings: `{"total_count": n, field: [...page]}`."""
    status, items, links = result
    return status, {"total_count": total, field: items}, links


def _state(q: dict) -> str:
    state = q.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise ValueError("state")
    return state


def _page(items: Sequence, q: dict, shape: Callable[[Any], dict], descending: bool = False) -> Result:
    """One page of `items` (ascending) and the `page` numbers of the Link relations."""
    per_page = min(max(int(q.get("per_page") or 30), 1), 100)
    page = max(int(q.get("page") or 1), 1)
    total = len(items)
    lo, hi = (page - 1) * per_page, min(page * per_page, total)
    if lo >= total:
        chunk = []
    elif descending:
        chunk = [items[total - 1 - i] for i in range(lo, hi)]
    else:
        chunk = items[lo:hi]
    last = max(1, -(-total // per_page))
    links = {}
    if page < last:
        links.update(next=page + 1, last=last)
    if page > 1:
        links.update(first=1, prev=min(page - 1, last))
    return 200, [shape(i) for i in chunk], links


def _link_header(url: str, query: dict[str, str], links: dict[str, int]) -> str:
    return ", ".join(
        f'<{url}?{urlencode({**query, "page": page})}>; rel="{rel}"' for rel, page in links.items()
    )
