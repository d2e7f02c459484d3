"""GitHub's raw assets: pull requests, issues, reviews, commits, workflow runs and check runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

from cc_assets.incremental import Incremental, repo_scope
from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec
from cc_events.registry import RAW_TABLES
from resources.http.ahead import streamed
from resources.platform import PlatformResource
from resources.sources.github import GitHubClient
from resources.sources.paging import Item
from resources.storage.lake import Lake

# Records a repo fetched ahead of the one being landed may hold until its turn (a page is 100).
AHEAD_ITEMS = 2_000


def pull_requests_in(lake: Lake, window: Window) -> Iterator[tuple[str, int, date]]:
    for day in window.days:
        table = lake.read(("raw", "github", "pull_requests"), day)
        if table is not None:
            for row in table.select(["repo", "number"]).to_pylist():
                yield row["repo"], row["number"], day


def pull_request_heads_in(lake: Lake, window: Window) -> Iterator[tuple[str, int, str, date]]:
    """Each landed PR's head commit (partitions from before `head_sha` was a column have none)."""
    for day in window.days:
        table = lake.read(("raw", "github", "pull_requests"), day)
        if table is not None and "head_sha" in table.column_names:
            for row in table.select(["repo", "number", "head_sha"]).to_pylist():
                if row["head_sha"]:
                    yield row["repo"], row["number"], row["head_sha"], day


def per_repo(github: GitHubClient, fetch: Callable[[str], Iterator[Item]]) -> Iterator[tuple[str, Item]]:
    """Each repo's records, `github.concurrency` repos fetched at once, in the repos' order (a
    repo's listing pages follow each other's `Link`, so repos are what can go side by side). The
    repo being landed streams, and one fetched ahead of it holds at most `AHEAD_ITEMS` records
    until its turn: a big repo's window is never in memory whole (at 10M events, gigabytes)."""
    return streamed(fetch, github.repos(), github.concurrency, AHEAD_ITEMS, name="github-repos")


def fetch_github_pull_requests(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo, item in per_repo(github, lambda repo: github.pull_requests(
            repo, window.start_for(f"github/pull_requests/{repo}"), window.end)):
        yield item, {"repo": repo}, None


def fetch_github_issues(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo, item in per_repo(github, lambda repo: github.issues(
            repo, window.start_for(f"github/issues/{repo}"), window.end)):
        yield item, {"repo": repo}, None


def fetch_github_reviews(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for (repo, number, day), item in github.reviews_of(pull_requests_in(platform.lake(), window)):
        yield item, {"repo": repo, "pull_number": number}, day


def fetch_github_commits(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo, item in per_repo(github, lambda repo: github.commits(
            repo, window.start_for(f"github/commits/{repo}"), window.end)):
        yield item, {"repo": repo}, None
    # Branch commits are only tied to their PR by this listing; it is what correlates them.
    for (repo, number, day), item in github.pull_commits_of(pull_requests_in(platform.lake(), window)):
        yield item, {"repo": repo, "pull_number": number}, day


def fetch_github_workflow_runs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # GitHub filters runs by creation only: from a day earlier, so a run that finished after
    # midnight (or was re-run) lands on the day it was last updated.
    github = platform.github()
    for repo, item in per_repo(github, lambda repo: github.workflow_runs(
            repo, window.start - timedelta(days=1), window.end)):
        yield item, {"repo": repo}, None


def fetch_github_check_runs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # The checks on each updated PR's head commit: the CI status a reviewer sees on the PR.
    github = platform.github()
    for (repo, number, _sha, day), item in github.check_runs_of(pull_request_heads_in(platform.lake(), window)):
        yield item, {"repo": repo, "pull_number": number}, day


SPECS = [
    RawSpec(RAW_TABLES["github", "pull_requests"], fetch_github_pull_requests, "updated_at",
            incremental=Incremental(repo_scope("pull_requests"), "updated_at", ("repo", "id"))),
    RawSpec(RAW_TABLES["github", "issues"], fetch_github_issues, "updated_at",
            incremental=Incremental(repo_scope("issues"), "updated_at", ("repo", "id"))),
    RawSpec(RAW_TABLES["github", "reviews"], fetch_github_reviews, None, (("github", "pull_requests"),)),
    RawSpec(RAW_TABLES["github", "commits"], fetch_github_commits, "authored_at", (("github", "pull_requests"),),
            incremental=Incremental(repo_scope("commits"), "authored_at", ("repo", "pull_number", "sha"))),
    RawSpec(RAW_TABLES["github", "workflow_runs"], fetch_github_workflow_runs, "updated_at"),
    RawSpec(RAW_TABLES["github", "check_runs"], fetch_github_check_runs, None, (("github", "pull_requests"),)),
]
