"""GitHub's GraphQL API (v4) over the world, at `POST /github/graphql` (GitHub's
`https://api.github.com/graphql`, beside its REST base), executed by graphql-core against a subset
of GitHub's schema (`sandbox.github_graphql_schema`).

The records are the ones the REST routes serve, with the same ids, node ids, URLs and times:
GraphQL's enums are upper case (`OPEN`, `COMPLETED`), a bot's `login` has no `[bot]` suffix, a
commit author's `user` is a `User` (null for a bot or an email tied to no account), and a
commit's checks come as check suites (one per Actions run attempt) holding check runs.

Each query is checked and priced before it runs (`sandbox.graphql_cost`), charged to the token's
hourly point budget, and refused as GitHub refuses it: HTTP 200 with a `RATE_LIMITED` error when
the budget cannot pay for it, `x-ratelimit-*` headers (resource `graphql`) on every answer.
Connections page by position cursors, which hold in a world that does not change.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, build_schema, execute, parse, validate

from sandbox.github import GitHubApi
from sandbox.github_graphql_schema import (
    SDL,
    Newest,
    connection,
    parse_time,
    resolve_field,
    serialize_time,
    wide_database_ids,
)
from sandbox.github_json import _ACTIONS_APP, _fake_int, _node, fake_sha
from sandbox.graphql_cost import analyse, github_errors, operation_of
from sandbox.model import CheckRun, Commit, GhUser, Pull, Repo, Review, WorkflowRun

_APP = {"id": _ACTIONS_APP["node_id"], "databaseId": _ACTIONS_APP["id"], "slug": _ACTIONS_APP["slug"],
        "name": _ACTIONS_APP["name"], "description": _ACTIONS_APP["description"], "url": _ACTIONS_APP["html_url"]}
_GITHUB_ACTOR = {"name": "GitHub", "email": "noreply@github.com"}


@dataclass(frozen=True, slots=True)
class Suite:
    """A check suite: one attempt of an Actions run on a commit, holding that attempt's jobs."""

    run: WorkflowRun
    attempt: int
    checks: tuple[CheckRun, ...]

    @property
    def id(self) -> int:
        return _fake_int(f"suite/{self.run.id}/{self.attempt}", 11)  # the REST records' check_suite id


@dataclass(frozen=True, slots=True)
class PullCommit:
    pull: Pull
    commit: Commit


@dataclass
class Budget:
    """What the query costs and what is left, for `rateLimit` and the headers."""

    cost: int
    limit: int
    used: int
    reset: int
    nodes: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class NotFound(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"type": "NOT_FOUND"})


def _user_url(user: GhUser) -> str:
    return f"https://github.com/apps/{user.login[:-5]}" if user.type == "Bot" else f"https://github.com/{user.login}"


def _size(seed: str, most: int) -> int:
    return int(hashlib.md5(seed.encode()).hexdigest()[:6], 16) % most + 1


class GitHubGraphQL:
    def __init__(self, api: GitHubApi) -> None:
        self.api, org = api, api.org
        self.schema = build_schema(SDL)
        for name in ("DateTime", "GitTimestamp"):
            scalar = self.schema.type_map[name]
            scalar.serialize, scalar.parse_value = serialize_time, parse_time
        self.schema.type_map["BigInt"].serialize = str
        wide_database_ids(self.schema)
        self.commits: dict[str, Commit] = {c.sha: c for c in org.commits}
        self.commits.update((c.sha, c) for p in org.pulls for c in p.commits)
        self.suites: dict[str, list[Suite]] = defaultdict(list)  # commit sha -> suites, oldest first
        for run in sorted(org.workflow_runs, key=lambda r: (r.created_at, r.id)):
            attempts = sorted({c.attempt for c in run.checks}) or [1]
            for attempt in attempts:
                checks = tuple(sorted((c for c in run.checks if c.attempt == attempt), key=lambda c: c.id))
                self.suites[run.commit.sha].append(Suite(run, attempt, checks))
        self.suite_of = {c.id: s for suites in self.suites.values() for s in suites for c in s.checks}
        self._filtered: dict[tuple, list[Pull]] = {}
        self.points_spent = 0  # every token's, for the sandbox's info
        self._by_node_id: dict[str, Any] | None = None
        kinds = {GhUser: lambda u: "Bot" if u.type == "Bot" else "User", Repo: "Repository", Pull: "PullRequest",
                 Review: "PullRequestReview", Commit: "Commit", Suite: "CheckSuite", CheckRun: "CheckRun",
                 PullCommit: "PullRequestCommit", WorkflowRun: "WorkflowRun"}

        def type_of(value: Any, *_: Any) -> str | None:
            if isinstance(value, dict):
                return value.get("__typename")
            kind = kinds.get(type(value))
            return kind(value) if callable(kind) else kind

        for name in ("Node", "Actor", "RepositoryOwner", "GitObject", "StatusCheckRollupContext"):
            self.schema.type_map[name].resolve_type = type_of
        self._resolvers(self._table())

    def _resolvers(self, table: dict[tuple[str, str], Callable]) -> None:
        for (type_name, field_name), fn in table.items():
            self.schema.type_map[type_name].fields[field_name].resolve = fn

    def _table(self) -> dict[tuple[str, str], Callable]:
        api = self.api
        org = self._owner()
        ident = {"GhUser": "U", "Repo": "R", "Pull": "PR", "Review": "PRR", "Commit": "C", "Suite": "CS",
                 "CheckRun": "CR", "WorkflowRun": "WFR"}

        def node_id(obj: Any, _info: Any) -> str:
            if isinstance(obj, dict):
                return obj["id"]
            if isinstance(obj, Commit):
                return _node("C", obj.sha)
            if isinstance(obj, PullCommit):
                return _node("PRC", f"{obj.pull.id}/{obj.commit.sha}")
            return _node(ident[type(obj).__name__], obj.id)

        def login(user: GhUser, _info: Any) -> str:
            return user.login[: -len("[bot]")] if user.type == "Bot" and user.login.endswith("[bot]") else user.login

        def association(obj: Any, _info: Any) -> str:
            return api._association(obj.user)

        table: dict[tuple[str, str], Callable] = {
            ("Query", "repository"): lambda _s, _i, owner, name, **_: self._repository(owner, name),
            ("Query", "node"): lambda _s, _i, id: self._node(id),
            ("Query", "nodes"): lambda _s, _i, ids: [self._node(i, strict=False) for i in ids],
            ("Query", "rateLimit"): lambda _s, info: self._rate_limit(info.context),
            ("Query", "viewer"): lambda *_: api.org.humans[0].github,
            ("Repository", "databaseId"): lambda r, _i: r.id,
            ("Repository", "nameWithOwner"): lambda r, _i: r.full_name,
            ("Repository", "owner"): lambda *_: org,
            ("Repository", "url"): lambda r, _i: f"https://github.com/{r.full_name}",
            ("Repository", "isPrivate"): lambda *_: True,
            ("Repository", "updatedAt"): lambda *_: api.org.end,
            ("Repository", "pushedAt"): lambda *_: api.org.end,
            ("Repository", "defaultBranchRef"): lambda r, _i: self._ref(r, r.default_branch),
            ("Repository", "object"): lambda r, _i, oid=None, expression=None: self._object(r, oid, expression),
            ("Repository", "pullRequest"): lambda r, _i, number: self._pull(r, number),
            ("Repository", "pullRequests"): lambda r, _i, **kw: self._pulls(r, **kw),
            ("PullRequest", "databaseId"): lambda p, _i: p.id,
            ("PullRequest", "fullDatabaseId"): lambda p, _i: p.id,
            ("PullRequest", "state"): lambda p, _i: "MERGED" if p.merged_at else "CLOSED" if p.closed_at else "OPEN",
            ("PullRequest", "isDraft"): lambda p, _i: p.draft,
            ("PullRequest", "merged"): lambda p, _i: p.merged_at is not None,
            ("PullRequest", "closed"): lambda p, _i: p.closed_at is not None,
            ("PullRequest", "locked"): lambda *_: False,
            ("PullRequest", "author"): lambda p, _i: p.user,
            ("PullRequest", "authorAssociation"): association,
            ("PullRequest", "headRefName"): lambda p, _i: p.head_ref,
            ("PullRequest", "headRefOid"): lambda p, _i: p.head_sha,
            ("PullRequest", "baseRefName"): lambda p, _i: p.repo.default_branch,
            ("PullRequest", "baseRefOid"): lambda p, _i: api.parents.get(p.commits[0].sha) if p.commits else
            fake_sha(p.repo.full_name),
            ("PullRequest", "repository"): lambda p, _i: p.repo,
            ("PullRequest", "url"): lambda p, _i: p.html_url,
            ("PullRequest", "permalink"): lambda p, _i: p.html_url,
            ("PullRequest", "resourcePath"): lambda p, _i: f"/{p.repo.full_name}/pull/{p.number}",
            ("PullRequest", "additions"): lambda p, _i: _size(f"+{p.id}", 400),
            ("PullRequest", "deletions"): lambda p, _i: _size(f"-{p.id}", 200),
            ("PullRequest", "changedFiles"): lambda p, _i: _size(f"f{p.id}", 12),
            ("PullRequest", "mergeCommit"): lambda p, _i: self.commits.get(p.merge_sha or ""),
            ("PullRequest", "labels"): lambda p, _i, **kw: connection(self._labels(p), **kw),
            ("PullRequest", "reviews"): lambda p, _i, states=None, author=None, **kw: connection(
                [r for r in p.reviews
                 if (not states or r.state in states) and (not author or r.user.login == author)], **kw),
            ("PullRequest", "commits"): lambda p, _i, **kw: connection([PullCommit(p, c) for c in p.commits], **kw),
            ("PullRequestReview", "databaseId"): lambda r, _i: r.id,
            ("PullRequestReview", "fullDatabaseId"): lambda r, _i: r.id,
            ("PullRequestReview", "author"): lambda r, _i: r.user,
            ("PullRequestReview", "authorAssociation"): association,
            ("PullRequestReview", "commit"): lambda r, _i: self.commits.get(r.commit_id),
            ("PullRequestReview", "createdAt"): lambda r, _i: r.submitted_at,
            ("PullRequestReview", "updatedAt"): lambda r, _i: r.submitted_at,
            ("PullRequestReview", "publishedAt"): lambda r, _i: r.submitted_at,
            ("PullRequestReview", "pullRequest"): lambda r, _i: r.pull,
            ("PullRequestReview", "repository"): lambda r, _i: r.pull.repo,
            ("PullRequestReview", "url"): lambda r, _i: f"{r.pull.html_url}#pullrequestreview-{r.id}",
            ("PullRequestReview", "resourcePath"): lambda r, _i: f"/{r.pull.repo.full_name}/pull/{r.pull.number}"
                                                                 f"#pullrequestreview-{r.id}",
            ("PullRequestCommit", "pullRequest"): lambda c, _i: c.pull,
            ("PullRequestCommit", "url"): lambda c, _i: f"{c.pull.html_url}/commits/{c.commit.sha}",
            ("PullRequestCommit", "resourcePath"): lambda c, _i: f"/{c.pull.repo.full_name}/pull/{c.pull.number}"
                                                                 f"/commits/{c.commit.sha}",
            ("Commit", "oid"): lambda c, _i: c.sha,
            ("Commit", "repository"): lambda c, _i: c.repo,
            ("Commit", "abbreviatedOid"): lambda c, _i: c.sha[:7],
            ("Commit", "messageHeadline"): lambda c, _i: c.message.split("\n", 1)[0],
            ("Commit", "messageBody"): lambda c, _i: c.message.split("\n", 1)[1].strip() if "\n" in c.message else "",
            ("Commit", "authoredDate"): lambda c, _i: c.date,
            ("Commit", "committedDate"): lambda c, _i: c.date,
            ("Commit", "author"): lambda c, _i: self._git_actor(c, committer=False),
            ("Commit", "committer"): lambda c, _i: self._git_actor(c, committer=True),
            ("Commit", "url"): lambda c, _i: f"https://github.com/{c.repo.full_name}/commit/{c.sha}",
            ("Commit", "commitUrl"): lambda c, _i: f"https://github.com/{c.repo.full_name}/commit/{c.sha}",
            ("Commit", "resourcePath"): lambda c, _i: f"/{c.repo.full_name}/commit/{c.sha}",
            ("Commit", "commitResourcePath"): lambda c, _i: f"/{c.repo.full_name}/commit/{c.sha}",
            ("Commit", "checkSuites"): lambda c, _i, filterBy=None, **kw: connection(self._suites(c, filterBy), **kw),
            ("Commit", "statusCheckRollup"): lambda c, _i: self._rollup(c),
            ("CheckSuite", "id"): node_id,
            ("CheckSuite", "databaseId"): lambda s, _i: s.id,
            ("CheckSuite", "app"): lambda *_: _APP,
            ("CheckSuite", "branch"): lambda s, _i: self._ref(s.run.repo, s.run.head_branch),
            ("CheckSuite", "checkRuns"): lambda s, _i, filterBy=None, **kw: connection(_checks(s, filterBy), **kw),
            ("CheckSuite", "commit"): lambda s, _i: s.run.commit,
            ("CheckSuite", "status"): lambda s, _i: _suite_status(s),
            ("CheckSuite", "conclusion"): lambda s, _i: _suite_conclusion(s),
            ("CheckSuite", "createdAt"): lambda s, _i: min((c.started_at for c in s.checks),
                                                           default=s.run.created_at),
            ("CheckSuite", "updatedAt"): lambda s, _i: max((c.completed_at or c.started_at for c in s.checks),
                                                           default=s.run.created_at),
            ("CheckSuite", "repository"): lambda s, _i: s.run.repo,
            ("CheckSuite", "url"): lambda s, _i: f"https://github.com/{s.run.repo.full_name}/commit/"
                                                 f"{s.run.commit.sha}/checks?check_suite_id={s.id}",
            ("CheckSuite", "resourcePath"): lambda s, _i: f"/{s.run.repo.full_name}/commit/{s.run.commit.sha}"
                                                          f"/checks?check_suite_id={s.id}",
            ("CheckSuite", "workflowRun"): lambda s, _i: s.run,
            ("CheckRun", "databaseId"): lambda c, _i: c.id,
            ("CheckRun", "status"): lambda c, _i: c.status.upper(),
            ("CheckRun", "conclusion"): lambda c, _i: c.conclusion.upper() if c.conclusion else None,
            ("CheckRun", "checkSuite"): lambda c, _i: self.suite_of[c.id],
            ("CheckRun", "repository"): lambda c, _i: c.run.repo,
            ("CheckRun", "permalink"): lambda c, _i: f"https://github.com/{c.run.repo.full_name}/runs/{c.id}",
            ("CheckRun", "resourcePath"): lambda c, _i: f"/{c.run.repo.full_name}/actions/runs/{c.run.id}/job/{c.id}",
            **{("CheckRun", name): (lambda c, _i, key=key: api._check_json(c, "")[key])
               for name, key in (("url", "html_url"), ("detailsUrl", "details_url"), ("externalId", "external_id"))},
            **{("CheckRun", name): (lambda c, _i, name=name: api._check_json(c, "")["output"][name])
               for name in ("title", "summary", "text")},
            ("WorkflowRun", "databaseId"): lambda r, _i: r.id,
            ("WorkflowRun", "checkSuite"): lambda r, _i: self.suites_of_run(r)[-1],
            ("WorkflowRun", "url"): lambda r, _i: f"https://github.com/{r.repo.full_name}/actions/runs/{r.id}",
            ("WorkflowRun", "resourcePath"): lambda r, _i: f"/{r.repo.full_name}/actions/runs/{r.id}",
            ("StatusCheckRollup", "contexts"): lambda r, _i, **kw: connection(r["latest"], **kw),
        }
        for kind in ("User", "Bot"):
            table.update({
                (kind, "login"): login, (kind, "databaseId"): lambda u, _i: u.id,
                (kind, "url"): lambda u, _i: _user_url(u),
                (kind, "resourcePath"): lambda u, _i: _user_url(u).removeprefix("https://github.com"),
                (kind, "avatarUrl"): lambda u, _i, size=None: f"https://avatars.githubusercontent.com/u/{u.id}?v=4",
            })
        table[("User", "email")] = lambda u, _i: ""  # a user's email is private unless they publish it
        for kind in ("Repository", "PullRequest", "PullRequestReview", "PullRequestCommit", "Commit", "CheckRun",
                     "WorkflowRun", "User", "Bot"):
            table[(kind, "id")] = node_id
        return table

    # ---- lookups --------------------------------------------------------------------------------------
    def _owner(self) -> dict:
        owner = self.api._owner()
        return {"__typename": "Organization", "id": owner["node_id"], "databaseId": owner["id"],
                "login": owner["login"], "name": owner["login"].title(), "url": owner["html_url"],
                "resourcePath": f"/{owner['login']}",
                "avatarUrl": f"https://avatars.githubusercontent.com/u/{owner['id']}?v=4"}

    def _repository(self, owner: str, name: str) -> Repo:
        found = self.api.repos.get(f"{owner}/{name}".lower())
        if found is None:
            raise NotFound(f"Could not resolve to a Repository with the name '{owner}/{name}'.")
        return found.repo

    def _pull(self, repo: Repo, number: int) -> Pull:
        item = self.api.repos[repo.full_name.lower()].numbered.get(number)
        if not isinstance(item, Pull):
            raise NotFound(f"Could not resolve to a PullRequest with the number of {number}.")
        return item

    def _pulls(self, repo: Repo, states: list[str] | None = None, orderBy: dict | None = None,
               headRefName: str | None = None, baseRefName: str | None = None, labels: list[str] | None = None,
               **page: Any) -> dict:
        """Oldest created first unless `orderBy` says otherwise, as GitHub lists them."""
        order = orderBy or {"field": "CREATED_AT", "direction": "ASC"}
        sort = "updated" if order["field"] == "UPDATED_AT" else "created"
        wanted = frozenset(states or ("OPEN", "CLOSED", "MERGED"))
        key = (repo.full_name, wanted, sort, headRefName, baseRefName, tuple(labels or ()))
        pulls = self._filtered.get(key)
        if pulls is None:
            idx = self.api.repos[repo.full_name.lower()]
            every = idx.pulls["all", sort]
            pulls = every if len(wanted) == 3 and not (headRefName or baseRefName or labels) else [
                p for p in every
                if ("MERGED" if p.merged_at else "CLOSED" if p.closed_at else "OPEN") in wanted
                and headRefName in (None, p.head_ref) and baseRefName in (None, repo.default_branch)
                and all(label in p.labels for label in labels or ())]
            self._filtered[key] = pulls
        return connection(Newest(pulls) if order["direction"] == "DESC" else pulls, **page)

    def _object(self, repo: Repo, oid: str | None, expression: str | None) -> Commit | None:
        if oid is None and expression is not None:
            oid = self.api.repos[repo.full_name.lower()].branches.get(expression, expression)
        commit = self.commits.get(oid or "")
        return commit if commit is not None and commit.repo is repo else None

    def _ref(self, repo: Repo, branch: str) -> dict:
        head = self.api.repos[repo.full_name.lower()].branches.get(branch)
        return {"id": _node("REF", f"{repo.full_name}:{branch}"), "name": branch, "prefix": "refs/heads/",
                "repository": repo, "target": self.commits.get(head or "")}

    def _labels(self, pull: Pull) -> list[dict]:
        return [{"id": _node("LA", label["id"]), "name": label["name"], "color": label["color"],
                 "isDefault": label["default"], "description": None,
                 "url": f"https://github.com/{pull.repo.full_name}/labels/{label['name']}"}
                for label in self.api._labels(pull.labels)]

    def _git_actor(self, commit: Commit, committer: bool) -> dict:
        if committer and commit.on_default_branch and commit.pull is not None:  # a squash merge: GitHub commits it
            return {**_GITHUB_ACTOR, "date": commit.date, "user": None,
                    "avatarUrl": "https://avatars.githubusercontent.com/u/19864447?v=4"}
        # `user` is a User: a bot's commits, like an email tied to no account, have none.
        user = commit.author if commit.author is not None and commit.author.type == "User" else None
        avatar = f"https://avatars.githubusercontent.com/u/{commit.author.id if commit.author else 0}?v=4"
        return {"name": commit.author_name, "email": commit.author_email, "date": commit.date, "user": user,
                "avatarUrl": avatar}

    def _suites(self, commit: Commit, filter_by: dict | None) -> list[Suite]:
        suites = self.suites.get(commit.sha, [])
        if filter_by and filter_by.get("appId") not in (None, _APP["databaseId"]):
            return []
        if filter_by and filter_by.get("checkName"):
            suites = [s for s in suites if any(c.name == filter_by["checkName"] for c in s.checks)]
        return suites

    def suites_of_run(self, run: WorkflowRun) -> list[Suite]:
        return [s for s in self.suites.get(run.commit.sha, []) if s.run is run]

    def _rollup(self, commit: Commit) -> dict | None:
        latest: dict[str, CheckRun] = {}
        for suite in self.suites.get(commit.sha, []):
            for check in suite.checks:
                if check.name not in latest or check.started_at >= latest[check.name].started_at:
                    latest[check.name] = check
        if not latest:
            return None
        checks = sorted(latest.values(), key=lambda c: c.id)
        state = ("FAILURE" if any(c.conclusion == "failure" for c in checks)
                 else "PENDING" if any(c.completed_at is None for c in checks) else "SUCCESS")
        return {"id": _node("SCR", commit.sha), "commit": commit, "state": state, "latest": checks}

    def _node(self, node_id: str, strict: bool = True) -> Any:
        if self._by_node_id is None:  # built on first use: only follow-up queries ask for nodes by id
            found: dict[str, Any] = {}
            for idx in self.api.repos.values():
                found[_node("R", idx.repo.id)] = idx.repo
            for pull in self.api.org.pulls:
                found[_node("PR", pull.id)] = pull
                found.update((_node("PRR", r.id), r) for r in pull.reviews)
            found.update((_node("C", sha), c) for sha, c in self.commits.items())
            for suites in self.suites.values():
                for suite in suites:
                    found[_node("CS", suite.id)] = suite
                    found.update((_node("CR", c.id), c) for c in suite.checks)
            self._by_node_id = found
        value = self._by_node_id.get(node_id)
        if value is None and strict:
            raise NotFound(f"Could not resolve to a node with the global id of '{node_id}'")
        return value

    @staticmethod
    def _rate_limit(context: Budget) -> dict:
        return {"cost": context.cost, "limit": context.limit, "nodeCount": context.nodes,
                "remaining": context.remaining, "resetAt": context.reset, "used": context.used}

    # ---- HTTP ----------------------------------------------------------------------------------------
    def handle(self, body: bytes, token: str, window: Any) -> tuple[int, dict, list[tuple[str, str]]]:
        """Status, response document and rate-limit headers; `window` is the token's point budget
        (`sandbox.server.Windows`)."""
        used, reset = window.state(token)
        try:
            request = json.loads(body or b"null")
            query = request["query"]
            if not isinstance(query, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            problem = {"message": "Problems parsing JSON", "documentation_url": "https://docs.github.com/graphql"}
            return 400, problem, _headers(window.limit, used, reset)
        document, errors = _prepare(self.schema, query)
        if errors:
            return 200, {"errors": errors}, _headers(window.limit, used, reset)
        operation = operation_of(document, request.get("operationName"))
        if operation is None:
            message = "An operation name is required" if request.get("operationName") is None else \
                f"No operation named \"{request['operationName']}\""
            return 200, {"errors": [{"message": message}]}, _headers(window.limit, used, reset)
        variables = request.get("variables") or {}
        analysis = analyse(self.schema, document, operation, variables)
        if analysis.errors:
            return 200, {"errors": analysis.errors}, _headers(window.limit, used, reset)
        if used + analysis.cost > window.limit:
            # GitHub answers 200 with a RATE_LIMITED error; the headers say when the budget comes back.
            user = int(hashlib.md5(token.encode()).hexdigest()[:7], 16)
            return 200, {"errors": [{"type": "RATE_LIMITED",
                                     "message": f"API rate limit exceeded for user ID {user}."}]}, \
                _headers(window.limit, used, reset)
        used, reset = window.state(token, spend=analysis.cost)
        self.points_spent += analysis.cost
        budget = Budget(analysis.cost, window.limit, used, reset, analysis.nodes)
        result = execute(self.schema, document, variable_values=variables,
                         operation_name=request.get("operationName"), field_resolver=resolve_field,
                         context_value=budget, is_awaitable=lambda _: False)
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = github_errors([e.formatted for e in result.errors])
        return 200, out, _headers(window.limit, used, reset)


def _checks(suite: Suite, filter_by: dict | None) -> list[CheckRun]:
    checks = list(suite.checks)
    f = filter_by or {}
    if f.get("appId") not in (None, _APP["databaseId"]):
        return []
    if f.get("checkType", "LATEST") == "LATEST":  # the newest run of each job name in the suite
        newest: dict[str, CheckRun] = {}
        for check in checks:
            if check.name not in newest or check.started_at >= newest[check.name].started_at:
                newest[check.name] = check
        checks = sorted(newest.values(), key=lambda c: c.id)
    statuses = set(f.get("statuses") or ()) | ({f["status"]} if f.get("status") else set())
    return [c for c in checks if (not f.get("checkName") or c.name == f["checkName"])
            and (not statuses or c.status.upper() in statuses)
            and (not f.get("conclusions") or (c.conclusion or "").upper() in f["conclusions"])]


def _suite_status(suite: Suite) -> str:
    if not suite.checks:
        return "QUEUED"
    return "COMPLETED" if all(c.completed_at is not None for c in suite.checks) else "IN_PROGRESS"


def _suite_conclusion(suite: Suite) -> str | None:
    if _suite_status(suite) != "COMPLETED":
        return None
    return "FAILURE" if any(c.conclusion == "failure" for c in suite.checks) else "SUCCESS"


def _headers(limit: int, used: int, reset: int) -> list[tuple[str, str]]:
    return [("x-ratelimit-limit", str(limit)), ("x-ratelimit-remaining", str(max(0, limit - used))),
            ("x-ratelimit-reset", str(reset)), ("x-ratelimit-used", str(min(used, limit))),
            ("x-ratelimit-resource", "graphql")]


@lru_cache(maxsize=256)
def _prepare(schema: Any, query: str) -> tuple[Any, list[dict]]:
    """Parsed and validated once per query text: clients send the same query page after page."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [{"message": exc.message, "locations": exc.formatted.get("locations", [])}]
    errors = validate(schema, document)
    return document, [{"path": ["query"], **e.formatted} for e in errors]

