"""GitHub REST v3: `Link` pagination, conditional requests with `ETag`, rate limits.

Points at the sandbox unless `CC_GITHUB_TOKEN` is set (see settings). With `CC_GITHUB_API=graphql`
(the default) the platform uses `resources.sources.github_graphql.GitHubGraphQLClient`, which
pulls pull requests, reviews, PR commits and check runs through GraphQL and inherits the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from resources.http.client import HttpClient, MalformedPage, NotFound, Page, SourceUnavailable
from resources.http.response_cache import revalidating_session
from resources.settings import Settings
from resources.sources.paging import Item, http_client, iso, listed, time_or_none

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')

ACTIONS_RESULTS_CAP = 1000  # GitHub's limit on a filtered Actions listing

# A pull request as the lake names it: `(repo, number, ...)`, or `(repo, number, head_sha, ...)` for
# its checks; whatever else the caller carries (the partition day) comes back with each record.
PullKey = tuple


def of_pull(items: Iterator[Item], repo: str, number: int) -> Iterator[Item]:
    """A pull request's reviews, commits or checks; a PR that is gone (404) is a dead letter, not a
    source outage: the other PRs land."""
    try:
        yield from items  # a generator: the 404 is raised here, while paging
    except NotFound as exc:
        yield MalformedPage(str(exc), f"pull request {repo}#{number} is gone (404): deleted or transferred", "", {})


class GitHubClient:
    """GitHub REST v3: `Link` pagination, conditional requests with `ETag`, rate limits."""

    actions_results_cap = ACTIONS_RESULTS_CAP

    def __init__(
        self, http: HttpClient, base_url: str, org: str, repos: tuple[str, ...] = (), page_size: int = 100,
        cache_path: Path | None = None,
    ) -> None:
        self.http = http
        self.page_size = page_size
        self.base_url = base_url.rstrip("/")
        self.org = org
        self._repos = repos
        # Every listing goes out conditional: a 304 costs no rate limit and gives back the cached
        # page, including where the next page is. Without a cache file the copies live as long as
        # this client.
        http.use_session(revalidating_session(cache_path))
        self.not_modified = 0
        self.concurrency = 1  # repos (and GraphQL batches) fetched at once (`CC_GITHUB_CONCURRENCY`)

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubClient:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        client = cls(http_client("github", settings, headers), settings.github_base_url, settings.github_org,
                     settings.github_repos, cache_path=settings.state_dir / "github_responses.sqlite")
        client.concurrency = settings.github_concurrency
        return client

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Page | MalformedPage]:
        url: str | None = f"{self.base_url}{path}"
        query: Mapping[str, Any] | None = {"per_page": self.page_size, **params}
        while url:
            page = self.http.get(url, params=query)
            if isinstance(page, Page) and page.from_cache:
                self.not_modified += 1
            yield page
            match = _NEXT_LINK.search(page.headers.get("Link", ""))
            url, query = (match.group(1), None) if match else (None, None)

    def items(self, path: str, params: Mapping[str, Any]) -> Iterator[Item]:
        for page in self._pages(path, params):
            if isinstance(page, MalformedPage):
                yield page
            elif not isinstance(page.data, list):
                yield MalformedPage(page.url, "expected a JSON list", str(page.data)[:10000], page.headers)
            else:
                yield from page.data

    def repos(self) -> list[str]:
        if self._repos:
            return list(self._repos)
        found = []
        for item in self.items(f"/orgs/{self.org}/repos", {"type": "all"}):
            if isinstance(item, MalformedPage):
                raise SourceUnavailable(f"github: cannot list the repos of {self.org}: {item.reason}")
            found.append(item["full_name"])
        return found

    def pull_requests(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """PRs updated in [start, end): newest first, so paging stops at the first older one."""
        params = {"state": "all", "sort": "updated", "direction": "desc"}
        for item in self.items(f"/repos/{repo}/pulls", params):
            updated = time_or_none(item, "updated_at") if isinstance(item, dict) else None
            if updated is None:
                yield item  # unreadable: the caller dead-letters it
            elif updated < start:
                return
            elif updated < end:
                yield item

    def issues(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """Issues (not PRs) updated in [start, end), oldest update first from `since`."""
        params = {"state": "all", "since": iso(start), "sort": "updated", "direction": "asc"}
        for item in self.items(f"/repos/{repo}/issues", params):
            if isinstance(item, dict) and "pull_request" in item:
                continue
            updated = time_or_none(item, "updated_at") if isinstance(item, dict) else None
            if updated is None:
                yield item
            elif updated >= end:
                return
            elif updated >= start:
                yield item

    def reviews(self, repo: str, number: int) -> Iterator[Item]:
        yield from self.items(f"/repos/{repo}/pulls/{number}/reviews", {})

    def pull_commits(self, repo: str, number: int) -> Iterator[Item]:
        yield from self.items(f"/repos/{repo}/pulls/{number}/commits", {})

    def commits(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """Default-branch commits authored in [start, end)."""
        yield from self.items(f"/repos/{repo}/commits", {"since": iso(start), "until": iso(end)})

    def listing(self, path: str, params: Mapping[str, Any], field: str) -> Iterator[Item]:
        """The records of a wrapped listing (`{"total_count": n, field: [...]}`: Actions, Checks)."""
        for page in self._pages(path, params):
            yield from listed(page, field)

    def workflow_runs(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """GitHub Actions runs created in [start, end), newest first.

        A filtered Actions listing stops at 1,000 results while `total_count` says how many
        matched, so a range with more is fetched as two halves (recursively).
        """
        pages = self._pages(f"/repos/{repo}/actions/runs", {"created": f"{iso(start)}..{iso(end)}"})
        first = next(pages, None)
        total = first.data.get("total_count") if isinstance(first, Page) and isinstance(first.data, dict) else None
        middle = start + (end - start) / 2
        middle = middle.replace(microsecond=0)
        if isinstance(total, int) and total > self.actions_results_cap and start < middle < end:
            pages.close()
            yield from self.workflow_runs(repo, middle, end)
            yield from self.workflow_runs(repo, start, middle)
            return
        for page in [first, *pages] if first is not None else []:
            for item in listed(page, "workflow_runs"):
                created = time_or_none(item, "created_at") if isinstance(item, dict) else None
                # `a..b` includes both ends: the run created at `end` belongs to the next range.
                if created is None or start <= created < end:
                    yield item

    def check_runs(self, repo: str, ref: str) -> Iterator[Item]:
        """Every check run on a commit (`ref`: a SHA or branch), re-run attempts included."""
        yield from self.listing(f"/repos/{repo}/commits/{ref}/check-runs", {"filter": "all"}, "check_runs")

    # What the raw assets ask for the pull requests the lake holds, one request (or more) per PR.
    def reviews_of(self, pulls: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        for pull in pulls:
            for item in of_pull(self.reviews(pull[0], pull[1]), pull[0], pull[1]):
                yield pull, item

    def pull_commits_of(self, pulls: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        for pull in pulls:
            for item in of_pull(self.pull_commits(pull[0], pull[1]), pull[0], pull[1]):
                yield pull, item

    def check_runs_of(self, heads: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        """The check runs on each `(repo, number, head_sha, ...)`'s head commit."""
        for head in heads:
            for item in of_pull(self.check_runs(head[0], head[2]), head[0], head[1]):
                yield head, item
