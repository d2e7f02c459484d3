"""GitHub: pull requests, issues, reviews, commits and CI (workflow and check runs), polled or
delivered by webhook (a `pull_request`, `issues`, `pull_request_review` or `push` delivery carries
the very object the REST poll lists, so both copies get the same event ids)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import SourceRecord, charlie_actor, optional_time, parse_time, payload_object, require
from cc_events.keys import CorrelationKey, unique
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col, ctx_col
from cc_events.sources import Source


def github_actor(user: Mapping[str, Any] | None, ctx: NormalizeContext) -> Actor:
    if not user or not user.get("login"):
        return Actor(id="github:ghost", name="ghost", type="human")
    login = str(user["login"])
    instance = ctx.charlie_github_logins.get(login.lower())
    if instance:
        return charlie_actor(instance, ctx)
    is_bot = user.get("type") == "Bot" or login.endswith("[bot]")
    return Actor(id=f"github:{login}", name=login, type="bot" if is_bot else "human")


def _repo_of(record: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    repo = extra.get("repo") or ((record.get("base") or {}).get("repo") or {}).get("full_name")
    if not repo:
        raise InvalidRecord("repository unknown (no base.repo.full_name and none given)")
    return str(repo).lower()


def github_pull_request(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "number", "created_at", "html_url")
    repo = _repo_of(record, extra)
    number = int(record["number"])
    own = CorrelationKey.github(repo, number)
    branch = (record.get("head") or {}).get("ref")
    keys = unique([own, *ctx.extractor.all_keys(record.get("title"), record.get("body"), repo=repo, branch=branch)])
    target = Target("pr", f"{repo}#{number}", str(record.get("title") or ""), str(record["html_url"]))
    payload = {"repo": repo, "number": number, "state": record.get("state"), "branch": branch,
               "draft": bool(record.get("draft")), "merged": record.get("merged_at") is not None}
    opened_id = f"github:pr:{repo}#{number}:opened"
    tags = (repo,)
    events = [NormalizedEvent(opened_id, parse_time(record["created_at"], "created_at"), "github",
                              "github.pr.opened", github_actor(record.get("user"), ctx), target, payload,
                              keys, tags=tags)]
    merged_at = optional_time(record.get("merged_at"), "merged_at")
    closed_at = optional_time(record.get("closed_at"), "closed_at")
    if merged_at is not None:
        merger = record.get("merged_by") or record.get("user")
        events.append(NormalizedEvent(f"github:pr:{repo}#{number}:merged", merged_at, "github",
                                      "github.pr.merged", github_actor(merger, ctx), target, payload, keys,
                                      parent_event_id=opened_id, tags=tags))
    elif closed_at is not None:
        events.append(NormalizedEvent(f"github:pr:{repo}#{number}:closed", closed_at, "github",
                                      "github.pr.closed", github_actor(record.get("user"), ctx), target,
                                      payload, keys, parent_event_id=opened_id, tags=tags))
    return events


def github_issue(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "number", "created_at", "html_url")
    repo = _repo_of(record, extra)
    number = int(record["number"])
    # An issue names only itself: text in an issue mentioning other work is not a link.
    keys = (CorrelationKey.github(repo, number),)
    target = Target("issue", f"{repo}#{number}", str(record.get("title") or ""), str(record["html_url"]))
    payload = {"repo": repo, "number": number, "state": record.get("state"),
               "labels": [label.get("name") for label in record.get("labels") or [] if isinstance(label, dict)]}
    opened_id = f"github:issue:{repo}#{number}:opened"
    events = [NormalizedEvent(opened_id, parse_time(record["created_at"], "created_at"), "github",
                              "github.issue.opened", github_actor(record.get("user"), ctx), target, payload,
                              keys, tags=(repo,))]
    closed_at = optional_time(record.get("closed_at"), "closed_at")
    if closed_at is not None:
        closer = record.get("closed_by") or record.get("user")
        events.append(NormalizedEvent(f"github:issue:{repo}#{number}:closed", closed_at, "github",
                                      "github.issue.closed", github_actor(closer, ctx), target, payload, keys,
                                      parent_event_id=opened_id, tags=(repo,)))
    return events


def github_review(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "submitted_at")
    repo = _repo_of(record, extra)
    number = extra.get("pull_number")
    if number is None:
        raise InvalidRecord("review without its pull request number")
    number = int(number)
    url = str(record.get("html_url") or f"https://github.com/{repo}/pull/{number}")
    event = NormalizedEvent(
        f"github:review:{record['id']}", parse_time(record["submitted_at"], "submitted_at"), "github",
        "github.review.submitted", github_actor(record.get("user"), ctx),
        Target("review", str(record["id"]), f"Review on {repo}#{number}", url),
        {"repo": repo, "pull_number": number, "state": record.get("state")},
        (CorrelationKey.github(repo, number),), parent_event_id=f"github:pr:{repo}#{number}:opened",
        tags=(repo, str(record.get("state") or "").lower()))
    return [event]


def github_commit(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "sha")
    commit = record.get("commit") or {}
    author = commit.get("author") or {}
    repo = _repo_of(record, extra)
    message = str(commit.get("message") or "")
    keys = list(ctx.extractor.all_keys(message, repo=repo))
    pull_number = extra.get("pull_number")
    if pull_number is not None:
        keys.append(CorrelationKey.github(repo, int(pull_number)))
    sha = str(record["sha"])
    title = message.splitlines()[0] if message else sha[:7]
    actor = github_actor(record.get("author") or {"login": author.get("name")}, ctx)
    event = NormalizedEvent(
        f"github:commit:{sha}", parse_time(author.get("date"), "commit.author.date"), "github",
        "github.commit.pushed", actor,
        Target("commit", sha, title, str(record.get("html_url") or f"https://github.com/{repo}/commit/{sha}")),
        {"repo": repo, "sha": sha, "pull_number": pull_number}, unique(keys), tags=(repo,))
    return [event]


def _pull_numbers(record: Mapping[str, Any], extra: Mapping[str, Any]) -> list[int]:
    """The PRs a CI record names: its `pull_requests` list, and the PR it was fetched for."""
    numbers = {int(p["number"]) for p in record.get("pull_requests") or []
               if isinstance(p, Mapping) and p.get("number") is not None}
    if extra.get("pull_number") is not None:
        numbers.add(int(extra["pull_number"]))
    return sorted(numbers)


def github_workflow_run(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A finished GitHub Actions run (the latest attempt); a queued or running one is not an event yet."""
    require(record, "id", "status", "created_at")
    if record["status"] != "completed":
        return []
    repo = _repo_of(record, extra)
    attempt = int(record.get("run_attempt") or 1)
    numbers = _pull_numbers(record, extra)
    name = str(record.get("name") or "workflow")
    conclusion = record.get("conclusion")
    run_id = int(record["id"])
    event = NormalizedEvent(
        f"github:workflow_run:{run_id}:{attempt}", parse_time(record.get("updated_at"), "updated_at"), "github",
        "github.workflow_run.completed", github_actor(record.get("actor"), ctx),
        Target("workflow_run", str(run_id), f"{name} #{record.get('run_number')}: {record.get('display_title') or ''}"
               .rstrip(": "), str(record.get("html_url") or f"https://github.com/{repo}/actions/runs/{run_id}")),
        {"repo": repo, "workflow": name, "run_number": record.get("run_number"), "run_attempt": attempt,
         "event": record.get("event"), "conclusion": conclusion, "head_branch": record.get("head_branch"),
         "head_sha": record.get("head_sha"), "pull_numbers": numbers},
        unique(CorrelationKey.github(repo, n) for n in numbers),
        tags=tuple(str(t) for t in (repo, conclusion) if t))
    return [event]


def github_check_run(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A finished check run (a CI job) on a PR's head commit; one still running is not an event yet."""
    require(record, "id", "status")
    if record["status"] != "completed":
        return []
    repo = _repo_of(record, extra)
    numbers = _pull_numbers(record, extra)
    check_id = int(record["id"])
    slug = str((record.get("app") or {}).get("slug") or "checks")
    conclusion = record.get("conclusion")
    name = str(record.get("name") or check_id)
    event = NormalizedEvent(
        f"github:check_run:{check_id}", parse_time(record.get("completed_at"), "completed_at"), "github",
        "github.check_run.completed", github_actor({"login": f"{slug}[bot]", "type": "Bot"}, ctx),
        Target("check_run", str(check_id), name, str(record.get("html_url") or "")),
        {"repo": repo, "name": name, "conclusion": conclusion, "head_sha": record.get("head_sha"), "app": slug,
         "pull_numbers": numbers},
        unique(CorrelationKey.github(repo, n) for n in numbers),
        tags=tuple(str(t) for t in (repo, conclusion) if t))
    return [event]


# --- webhooks ------------------------------------------------------------------------------------


def _repo(payload: Mapping[str, Any]) -> str:
    full_name = payload_object(payload, "repository").get("full_name")
    if not full_name:
        raise InvalidRecord("payload has no repository.full_name")
    return str(full_name).lower()


def _push_commit(commit: Mapping[str, Any]) -> dict[str, Any]:
    """A push payload's commit in the shape `GET /repos/{repo}/commits` lists it."""
    author = commit.get("author") or {}
    return {
        "sha": commit.get("id"),
        "commit": {"message": commit.get("message"),
                   "author": {"name": author.get("name"), "email": author.get("email"),
                              "date": commit.get("timestamp")}},
        "author": {"login": author.get("username")} if author.get("username") else None,
        "html_url": commit.get("url"),
    }


def github_records(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    if event == "pull_request":
        return [("github", "pull_requests", payload_object(payload, "pull_request"), {"repo": _repo(payload)})]
    if event == "issues":
        return [("github", "issues", payload_object(payload, "issue"), {"repo": _repo(payload)})]
    if event == "pull_request_review":
        pull = payload_object(payload, "pull_request")
        return [("github", "reviews", payload_object(payload, "review"),
                 {"repo": _repo(payload), "pull_number": pull.get("number")})]
    if event == "push":
        commits = payload.get("commits")
        if not isinstance(commits, list):
            raise InvalidRecord("push payload has no `commits` list")
        repo = _repo(payload)
        return [("github", "commits", _push_commit(c), {"repo": repo}) for c in commits if isinstance(c, Mapping)]
    return []


RAW_TABLES = (
    RawTable("github", "pull_requests", (
        col("id", "int", required=True), ctx_col("repo", "str", required=True),
        col("number", "int", required=True), col("title", "str"), col("state", "str"),
        col("user_login", "str", "user.login"), col("user_type", "str", "user.type"),
        col("head_ref", "str", "head.ref"), col("created_at", "time", required=True),
        col("updated_at", "time", required=True), col("closed_at", "time"), col("merged_at", "time"),
        col("html_url", "str"), col("head_sha", "str", "head.sha"),
    ), "GitHub pull requests, one snapshot per day they were updated."),
    RawTable("github", "issues", (
        col("id", "int", required=True), ctx_col("repo", "str", required=True),
        col("number", "int", required=True), col("title", "str"), col("state", "str"),
        col("user_login", "str", "user.login"), col("created_at", "time", required=True),
        col("updated_at", "time", required=True), col("closed_at", "time"), col("html_url", "str"),
    ), "GitHub issues (pull requests excluded), one snapshot per day they were updated."),
    RawTable("github", "commits", (
        col("sha", "str", required=True), ctx_col("repo", "str", required=True),
        ctx_col("pull_number", "int"), col("message", "str", "commit.message"),
        col("author_login", "str", "author.login"),
        col("authored_at", "time", "commit.author.date", required=True), col("html_url", "str"),
    ), "GitHub commits: the default branch by author date, and each updated pull request's commits."),
    RawTable("github", "reviews", (
        col("id", "int", required=True), ctx_col("repo", "str", required=True),
        ctx_col("pull_number", "int", required=True), col("user_login", "str", "user.login"),
        col("state", "str"), col("submitted_at", "time", required=True), col("html_url", "str"),
    ), "GitHub pull request reviews, fetched with their pull request."),
    RawTable("github", "workflow_runs", (
        col("id", "int", required=True), ctx_col("repo", "str", required=True),
        col("run_attempt", "int"), col("workflow_name", "str", "name"), col("event", "str"),
        col("status", "str", required=True), col("conclusion", "str"), col("head_branch", "str"),
        col("head_sha", "str"), col("run_number", "int"), col("pr_number", "int", "pull_requests.0.number"),
        col("actor_login", "str", "actor.login"), col("created_at", "time", required=True),
        col("updated_at", "time", required=True), col("run_started_at", "time"), col("html_url", "str"),
    ), "GitHub Actions workflow runs (CI), latest attempt, one snapshot per day they were updated."),
    RawTable("github", "check_runs", (
        col("id", "int", required=True), ctx_col("repo", "str", required=True),
        ctx_col("pull_number", "int", required=True), col("check_name", "str", "name"),
        col("head_sha", "str"), col("status", "str", required=True), col("conclusion", "str"),
        col("started_at", "time"), col("completed_at", "time"), col("app_slug", "str", "app.slug"),
        col("html_url", "str"),
    ), "GitHub check runs (CI jobs) on each updated pull request's head commit, fetched with the PR."),
)


SOURCE = Source(
    "github", RAW_TABLES,
    normalizers={"pull_requests": github_pull_request, "issues": github_issue, "reviews": github_review,
                 "commits": github_commit, "workflow_runs": github_workflow_run, "check_runs": github_check_run},
    webhook_records=github_records, webhook_entities=("pull_requests", "issues", "reviews", "commits"),
)
