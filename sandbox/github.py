"""GitHub REST v3 over the world: routes, GitHub's JSON shapes, page-number pagination.

Lists are precomputed per repo in ascending order and sliced (reversed for `direction=desc`),
so a page costs the records on it, not the size of the world.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
from typing import Any
from urllib.parse import unquote, urlencode

from sandbox.model import CheckRun, Commit, GhIssue, GhUser, Org, Pull, Repo, Review, WorkflowRun, iso

Result = tuple[int, Any, dict[str, int]]  # status, JSON payload, Link relations (rel -> page)

_DOCS = "https://docs.github.com/rest"
_ORG_ID = 98_765_432
_WEB_FLOW = {
    "login": "web-flow",
    "id": 19864447,
    "node_id": "MDQ6VXNlcjE5ODY0NDQ3",
    "type": "User",
    "site_admin": False,
    "html_url": "https://github.com/web-flow",
    "avatar_url": "https://avatars.githubusercontent.com/u/19864447?v=4",
}
_LABEL_COLORS = {"bug": "d73a4a", "dependencies": "0366d6", "automated": "ededed"}
_ACTIONS_APP = {
    "id": 15368,
    "slug": "github-actions",
    "node_id": "MDM6QXBwMTUzNjg=",
    "name": "GitHub Actions",
    "owner": {"login": "github", "id": 9919, "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk=", "type": "Organization"},
    "description": "Automate your workflow from idea to production",
    "external_url": "https://help.github.com/en/actions",
    "html_url": "https://github.com/apps/github-actions",
}
# The Actions listings return at most this many results when filtered (`created`, `status`, ...);
# `total_count` still says how many matched, so a client knows to narrow the filter.
FILTERED_RESULTS_CAP = 1000
_WORKFLOW = ("CI", ".github/workflows/ci.yml")


def _node(prefix: str, n: int | str) -> str:
    return f"{prefix}_kwDO{hashlib.md5(str(n).encode()).hexdigest()[:12]}"


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


class GitHubApi:
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
            prev = _fake_sha(idx.repo.full_name)
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
            prev = _fake_sha(f"{pull.repo.full_name}@{pull.created_at}")
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

    # ---- shapes --------------------------------------------------------------------------------------
    def _user(self, user: GhUser | None) -> dict | None:
        if user is None:
            return None
        if (found := self._users.get(user.login)) is None:
            bot = user.type == "Bot"
            found = self._users[user.login] = {
                "login": user.login,
                "id": user.id,
                "node_id": _node("U", user.id),
                "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
                "html_url": f"https://github.com/{'apps/' + user.login[:-5] if bot else user.login}",
                "type": user.type,
                "site_admin": False,
            }
        return found

    def _owner(self) -> dict:
        return {
            "login": self.org.login,
            "id": _ORG_ID,
            "node_id": _node("O", _ORG_ID),
            "type": "Organization",
            "html_url": f"https://github.com/{self.org.login}",
            "site_admin": False,
        }

    def _repo_json(self, repo: Repo, api: str) -> dict:
        return {
            "id": repo.id,
            "node_id": _node("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._owner(),
            "html_url": f"https://github.com/{repo.full_name}",
            "description": repo.description,
            "fork": False,
            "url": f"{api}/repos/{repo.full_name}",
            "created_at": iso(repo.created_at),
            "updated_at": iso(self.org.end),
            "pushed_at": iso(self.org.end),
            "language": repo.language,
            "archived": False,
            "disabled": False,
            "visibility": "private",
            "default_branch": repo.default_branch,
        }

    def _labels(self, names: tuple[str, ...]) -> list[dict]:
        return [
            {
                "id": int(hashlib.md5(n.encode()).hexdigest()[:8], 16),
                "name": n,
                "color": _LABEL_COLORS.get(n, "ededed"),
                "default": n == "bug",
            }
            for n in names
        ]

    @staticmethod
    def _association(user: GhUser) -> str:
        return "NONE" if user.type == "Bot" else "MEMBER"

    def _pull_json(self, pull: Pull, api: str) -> dict:
        full, url = pull.repo.full_name, f"{api}/repos/{pull.repo.full_name}/pulls/{pull.number}"
        short_repo = {"id": pull.repo.id, "name": pull.repo.name, "full_name": full, "private": True}
        return {
            "url": url,
            "id": pull.id,
            "node_id": _node("PR", pull.id),
            "html_url": pull.html_url,
            "diff_url": f"{pull.html_url}.diff",
            "patch_url": f"{pull.html_url}.patch",
            "issue_url": f"{api}/repos/{full}/issues/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user(pull.user),
            "body": pull.body,
            "labels": self._labels(pull.labels),
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "draft": pull.draft,
            "head": {
                "label": f"{self.org.login}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self._owner(),
                "repo": short_repo,
            },
            "base": {
                "label": f"{self.org.login}:{pull.repo.default_branch}",
                "ref": pull.repo.default_branch,
                "sha": self.parents.get(pull.commits[0].sha) if pull.commits else None,
                "user": self._owner(),
                "repo": short_repo,
            },
            "author_association": self._association(pull.user),
        }

    def _issue_json(self, item: Pull | GhIssue, api: str) -> dict:
        full = item.repo.full_name
        out = {
            "url": f"{api}/repos/{full}/issues/{item.number}",
            "repository_url": f"{api}/repos/{full}",
            "html_url": item.html_url,
            "id": item.issue_id if isinstance(item, Pull) else item.id,
            "number": item.number,
            "title": item.title,
            "user": self._user(item.user),
            "labels": self._labels(item.labels),
            "state": item.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "comments": getattr(item, "comments", 0),
            "created_at": iso(item.created_at),
            "updated_at": iso(item.updated_at),
            "closed_at": iso(item.closed_at),
            "author_association": self._association(item.user),
            "body": item.body,
        }
        out["node_id"] = _node("I", out["id"])
        if isinstance(item, Pull):
            out["draft"] = item.draft
            out["state_reason"] = None
            out["pull_request"] = {
                "url": f"{api}/repos/{full}/pulls/{item.number}",
                "html_url": item.html_url,
                "diff_url": f"{item.html_url}.diff",
                "patch_url": f"{item.html_url}.patch",
                "merged_at": iso(item.merged_at),
            }
        else:
            out["state_reason"] = item.state_reason
        return out

    def _review_json(self, review: Review, api: str) -> dict:
        pull = review.pull
        return {
            "id": review.id,
            "node_id": _node("PRR", review.id),
            "user": self._user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": f"{pull.html_url}#pullrequestreview-{review.id}",
            "pull_request_url": f"{api}/repos/{pull.repo.full_name}/pulls/{pull.number}",
            "submitted_at": iso(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": self._association(review.user),
        }

    def _commit_json(self, commit: Commit, api: str) -> dict:
        full, date = commit.repo.full_name, iso(commit.date)
        squash = commit.on_default_branch and commit.pull is not None
        person = {"name": commit.author_name, "email": commit.author_email, "date": date}
        committer = {"name": "GitHub", "email": "noreply@github.com", "date": date} if squash else person
        return {
            "sha": commit.sha,
            "node_id": _node("C", commit.sha),
            "commit": {
                "author": person,
                "committer": committer,
                "message": commit.message,
                "tree": {"sha": _fake_sha(commit.sha)},
                "comment_count": 0,
                "url": f"{api}/repos/{full}/git/commits/{commit.sha}",
            },
            "url": f"{api}/repos/{full}/commits/{commit.sha}",
            "html_url": f"https://github.com/{full}/commit/{commit.sha}",
            "author": self._user(commit.author),
            "committer": _WEB_FLOW if squash else self._user(commit.author),
            "parents": [{"sha": self.parents[commit.sha]}],
        }


    def _pull_ref(self, pull: Pull, api: str) -> dict:
        """A pull request as the Actions and Checks APIs list it."""
        full = pull.repo.full_name
        repo = {"id": pull.repo.id, "url": f"{api}/repos/{full}", "name": pull.repo.name}
        return {
            "url": f"{api}/repos/{full}/pulls/{pull.number}",
            "id": pull.id,
            "number": pull.number,
            "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": repo},
            "base": {"ref": pull.repo.default_branch, "sha": self.parents.get(pull.commits[0].sha) if pull.commits
                     else None, "repo": repo},
        }

    def _run_json(self, run: WorkflowRun, api: str, with_pulls: bool = True) -> dict:
        full, commit = run.repo.full_name, run.commit
        url = f"{api}/repos/{full}/actions/runs/{run.id}"
        workflow_id = _fake_int(f"{full}/{_WORKFLOW[1]}", 8)
        suite = _fake_int(f"suite/{run.id}/{run.run_attempt}", 11)
        short_repo = {"id": run.repo.id, "node_id": _node("R", run.repo.id), "name": run.repo.name,
                      "full_name": full, "private": True, "owner": self._owner(),
                      "html_url": f"https://github.com/{full}", "url": f"{api}/repos/{full}"}
        return {
            "id": run.id,
            "name": _WORKFLOW[0],
            "node_id": _node("WFR", run.id),
            "head_branch": run.head_branch,
            "head_sha": commit.sha,
            "path": _WORKFLOW[1],
            "display_title": run.pull.title if run.pull else commit.message.splitlines()[0],
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": workflow_id,
            "check_suite_id": suite,
            "check_suite_node_id": _node("CS", suite),
            "url": url,
            "html_url": f"https://github.com/{full}/actions/runs/{run.id}",
            "pull_requests": [self._pull_ref(run.pull, api)] if run.pull and with_pulls else [],
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "actor": self._user(run.actor),
            "run_attempt": run.run_attempt,
            "referenced_workflows": [],
            "run_started_at": iso(run.run_started_at),
            "triggering_actor": self._user(run.actor),
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "check_suite_url": f"{api}/repos/{full}/check-suites/{suite}",
            "artifacts_url": f"{url}/artifacts",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "previous_attempt_url": f"{url}/attempts/{run.run_attempt - 1}" if run.run_attempt > 1 else None,
            "workflow_url": f"{api}/repos/{full}/actions/workflows/{workflow_id}",
            "head_commit": {
                "id": commit.sha,
                "tree_id": _fake_sha(commit.sha),
                "message": commit.message,
                "timestamp": iso(commit.date),
                "author": {"name": commit.author_name, "email": commit.author_email},
                "committer": {"name": commit.author_name, "email": commit.author_email},
            },
            "repository": short_repo,
            "head_repository": short_repo,
        }

    def _check_json(self, check: CheckRun, api: str) -> dict:
        run = check.run
        full = run.repo.full_name
        html = f"https://github.com/{full}/actions/runs/{run.id}/job/{check.id}"
        failed = check.conclusion == "failure"
        return {
            "id": check.id,
            "name": check.name,
            "node_id": _node("CR", check.id),
            "head_sha": run.commit.sha,
            "external_id": hashlib.md5(f"{run.id}/{check.name}/{check.attempt}".encode()).hexdigest(),
            "url": f"{api}/repos/{full}/check-runs/{check.id}",
            "html_url": html,
            "details_url": html,
            "status": check.status,
            "conclusion": check.conclusion,
            "started_at": iso(check.started_at),
            "completed_at": iso(check.completed_at),
            "output": {
                "title": None if check.completed_at is None else "Process completed with exit code 1." if failed
                else None,
                "summary": None,
                "text": None,
                "annotations_count": 1 if failed else 0,
                "annotations_url": f"{api}/repos/{full}/check-runs/{check.id}/annotations",
            },
            "check_suite": {"id": _fake_int(f"suite/{run.id}/{check.attempt}", 11)},
            "app": _ACTIONS_APP,
            "pull_requests": [self._pull_ref(run.pull, api)] if run.pull else [],
        }


def _fake_int(seed: str, digits: int) -> int:
    return int(hashlib.md5(seed.encode()).hexdigest(), 16) % 10 ** digits + 10 ** (digits - 1)


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


def _fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


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
