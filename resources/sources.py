"""Clients for the polled sources: GitHub REST, Linear GraphQL and the Charlie instance API.

Each yields the source's records as dicts, or a `MalformedPage` where a page could not be read,
so the caller lands what is good and dead-letters the rest. They speak the real protocols, and
point at the sandbox unless `CC_GITHUB_TOKEN` / `CC_LINEAR_API_KEY` are set (see settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from cc_events.model import InvalidRecord
from cc_events.normalize import parse_time
from resources.http import HttpClient, MalformedPage, Page, SourceUnavailable
from resources.settings import Settings

Item = dict[str, Any] | MalformedPage

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_or_none(record: Mapping[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(record.get(name), name)
    except InvalidRecord:
        return None


class GitHubClient:
    """GitHub REST v3: `Link` pagination, conditional requests with `ETag`, rate limits."""

    def __init__(
        self, http: HttpClient, base_url: str, org: str, repos: tuple[str, ...] = (), page_size: int = 100
    ) -> None:
        self.http = http
        self.page_size = page_size
        self.base_url = base_url.rstrip("/")
        self.org = org
        self._repos = repos
        # url -> (etag, data, link): a 304 costs no rate limit and gives back the cached page,
        # including where the next page is (a 304 need not repeat the Link header).
        self._etags: dict[str, tuple[str, Any, str]] = {}
        self.not_modified = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubClient:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        return cls(_http("github", settings, headers), settings.github_base_url, settings.github_org,
                   settings.github_repos)

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Page | MalformedPage]:
        url: str | None = f"{self.base_url}{path}"
        query: Mapping[str, Any] | None = {"per_page": self.page_size, **params}
        while url:
            cache_key = url if query is None else f"{url}?{sorted(query.items())}"
            cached = self._etags.get(cache_key)
            page = self.http.get(url, params=query, headers={"If-None-Match": cached[0]} if cached else None)
            if isinstance(page, Page):
                if page.not_modified and cached:
                    self.not_modified += 1
                    page = Page(page.url, 200, cached[1], {**page.headers, "Link": cached[2]})
                elif page.headers.get("ETag"):
                    self._etags[cache_key] = (page.headers["ETag"], page.data, page.headers.get("Link", ""))
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
            updated = _time_or_none(item, "updated_at") if isinstance(item, dict) else None
            if updated is None:
                yield item  # unreadable: the caller dead-letters it
            elif updated < start:
                return
            elif updated < end:
                yield item

    def issues(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """Issues (not PRs) updated in [start, end), oldest update first from `since`."""
        params = {"state": "all", "since": _iso(start), "sort": "updated", "direction": "asc"}
        for item in self.items(f"/repos/{repo}/issues", params):
            if isinstance(item, dict) and "pull_request" in item:
                continue
            updated = _time_or_none(item, "updated_at") if isinstance(item, dict) else None
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
        yield from self.items(f"/repos/{repo}/commits", {"since": _iso(start), "until": _iso(end)})


LINEAR_ISSUE_FIELDS = """
  id identifier number title description priority priorityLabel url
  createdAt updatedAt startedAt completedAt canceledAt
  team { id key } state { id name type } assignee { id name } creator { id name }
  history(first: 50) { nodes { id createdAt actor { id name } fromState { name type } toState { name type } } }
"""

ISSUES_QUERY = (
    "query Issues($first: Int!, $after: String, $filter: IssueFilter) {"
    " issues(first: $first, after: $after, filter: $filter, orderBy: updatedAt) {"
    f" nodes {{ {LINEAR_ISSUE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)
TEAMS_QUERY = (
    "query Teams($first: Int!, $after: String) { teams(first: $first, after: $after) {"
    " nodes { id key name } pageInfo { hasNextPage endCursor } } }"
)
USERS_QUERY = (
    "query Users($first: Int!, $after: String) { users(first: $first, after: $after) {"
    " nodes { id name displayName email } pageInfo { hasNextPage endCursor } } }"
)


class LinearClient:
    """Linear GraphQL: Relay cursor pagination and an `updatedAt` window filter."""

    def __init__(self, http: HttpClient, url: str, page_size: int = 50, teams: tuple[str, ...] = ()) -> None:
        self.http = http
        self.url = url
        self.page_size = page_size
        self.team_keys = teams  # team keys to follow; empty: every team the key can see

    @classmethod
    def from_settings(cls, settings: Settings) -> LinearClient:
        headers = {"Content-Type": "application/json"}
        if settings.linear_api_key:
            headers["Authorization"] = settings.linear_api_key
        return cls(_http("linear", settings, headers), settings.linear_graphql_url, teams=settings.linear_teams)

    def _connection(self, query: str, field: str, variables: Mapping[str, Any]) -> Iterator[Item]:
        after: str | None = None
        while True:
            page = self.http.post_json(self.url, {"query": query,
                                                  "variables": {**variables, "first": self.page_size,
                                                                "after": after}})
            if isinstance(page, MalformedPage):
                # Without the page we have no cursor: keep it and stop this stream.
                yield page
                return
            body = page.data if isinstance(page.data, dict) else {}
            if body.get("errors"):
                messages = "; ".join(str(e.get("message")) for e in body["errors"])
                raise SourceUnavailable(f"linear: GraphQL error on {field}: {messages}")
            connection = (body.get("data") or {}).get(field)
            if not isinstance(connection, dict):
                yield MalformedPage(page.url, f"no data.{field} in the response", str(page.data)[:10000],
                                    page.headers)
                return
            yield from connection.get("nodes") or []
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def teams(self) -> Iterator[Item]:
        for team in self._connection(TEAMS_QUERY, "teams", {}):
            if not self.team_keys or not isinstance(team, dict) or team.get("key") in self.team_keys:
                yield team

    def users(self) -> Iterator[Item]:
        yield from self._connection(USERS_QUERY, "users", {})

    def issues(self, start: datetime, end: datetime) -> Iterator[Item]:
        issue_filter: dict[str, Any] = {"updatedAt": {"gte": _iso(start), "lt": _iso(end)}}
        if self.team_keys:
            issue_filter["team"] = {"key": {"in": list(self.team_keys)}}
        yield from self._connection(ISSUES_QUERY, "issues", {"filter": issue_filter})


class CharlieClient:
    """The Charlie instance API: the registry, per-instance health and activity."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 500) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> CharlieClient:
        headers = {"Authorization": f"Bearer {settings.charlie_api_token}"} if settings.charlie_api_token else {}
        return cls(_http("charlie", settings, headers), settings.charlie_base_url)

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Page | MalformedPage:
        return self.http.get(f"{self.base_url}{path}", params=params)

    def instances(self) -> Iterator[Item]:
        page = self._get("/instances")
        if isinstance(page, MalformedPage):
            yield page
            return
        yield from (page.data or {}).get("instances") or []

    def health(self, instance_id: str) -> Item:
        page = self._get(f"/instances/{instance_id}/health")
        return page if isinstance(page, MalformedPage) else page.data

    def activity(self, instance_id: str, start: datetime, end: datetime) -> Iterator[Item]:
        cursor: str | None = None
        while True:
            params = {"since": _iso(start), "until": _iso(end), "limit": self.page_size}
            if cursor:
                params["cursor"] = cursor
            page = self._get(f"/instances/{instance_id}/activity", params)
            if isinstance(page, MalformedPage):
                yield page
                return
            yield from (page.data or {}).get("events") or []
            cursor = (page.data or {}).get("next_cursor")
            if not cursor:
                return


def _http(source: str, settings: Settings, headers: Mapping[str, str]) -> HttpClient:
    return HttpClient(
        source,
        headers=headers,
        timeout_s=settings.http_timeout_s,
        max_retries=settings.http_max_retries,
        backoff_s=settings.http_backoff_s,
        max_backoff_s=settings.http_max_backoff_s,
    )
