"""Linear GraphQL: Relay cursor pagination and an `updatedAt` window filter.

Points at the sandbox unless `CC_LINEAR_API_KEY` is set (see settings).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from resources.http.ahead import prefetched
from resources.http.client import HttpClient, MalformedPage, SourceUnavailable
from resources.settings import Settings
from resources.sources.paging import Item, http_client, iso

LINEAR_ISSUE_FIELDS = """
  id identifier number title description priority priorityLabel url
  createdAt updatedAt startedAt completedAt canceledAt
  team { id key } state { id name type } assignee { id name } creator { id name } cycle { id number }
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
COMMENTS_QUERY = (
    "query Comments($first: Int!, $after: String, $filter: CommentFilter) {"
    " comments(first: $first, after: $after, filter: $filter, orderBy: updatedAt) {"
    " nodes { id body createdAt updatedAt user { id name } issue { id identifier } }"
    " pageInfo { hasNextPage endCursor } } }"
)
CYCLES_QUERY = (
    "query Cycles($first: Int!, $after: String, $filter: CycleFilter) {"
    " cycles(first: $first, after: $after, filter: $filter) {"
    " nodes { id number name startsAt endsAt completedAt createdAt updatedAt team { id key } }"
    " pageInfo { hasNextPage endCursor } } }"
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
        return cls(http_client("linear", settings, headers), settings.linear_graphql_url, teams=settings.linear_teams)

    def _connection(self, query: str, field: str, variables: Mapping[str, Any]) -> Iterator[Item]:
        """Every node of a connection. The next page is asked for while this one's nodes are landed:
        the server resolves one page while the client flattens the last (a listing is read whole)."""
        for nodes in prefetched(self._pages(query, field, variables), name=f"linear-{field}"):
            yield from nodes

    def _pages(self, query: str, field: str, variables: Mapping[str, Any]) -> Iterator[list[Item]]:
        after: str | None = None
        while True:
            page = self.http.post_json(self.url, {"query": query,
                                                  "variables": {**variables, "first": self.page_size,
                                                                "after": after}})
            if isinstance(page, MalformedPage):
                # Without the page we have no cursor: keep it and stop this stream.
                yield [page]
                return
            body = page.data if isinstance(page.data, dict) else {}
            if body.get("errors"):
                messages = "; ".join(str(e.get("message")) for e in body["errors"])
                raise SourceUnavailable(f"linear: GraphQL error on {field}: {messages}")
            connection = (body.get("data") or {}).get(field)
            if not isinstance(connection, dict):
                yield [MalformedPage(page.url, f"no data.{field} in the response", str(page.data)[:10000],
                                     page.headers)]
                return
            yield connection.get("nodes") or []
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

    def newest_update(self) -> str | None:
        """The most recent `updatedAt` of any followed issue: one tiny query, for change probes."""
        query = ("query Newest($filter: IssueFilter) { issues(first: 1, orderBy: updatedAt, filter: $filter)"
                 " { nodes { updatedAt } } }")
        team_filter = {"team": {"key": {"in": list(self.team_keys)}}} if self.team_keys else {}
        page = self.http.post_json(self.url, {"query": query, "variables": {"filter": team_filter}})
        if isinstance(page, MalformedPage) or not isinstance(page.data, dict) or page.data.get("errors"):
            raise SourceUnavailable(f"linear: the newest-update probe failed: {str(getattr(page, 'data', ''))[:200]}")
        nodes = ((page.data.get("data") or {}).get("issues") or {}).get("nodes") or []
        return nodes[0]["updatedAt"] if nodes else None

    def issues(self, start: datetime, end: datetime) -> Iterator[Item]:
        issue_filter: dict[str, Any] = {"updatedAt": {"gte": iso(start), "lt": iso(end)}}
        if self.team_keys:
            issue_filter["team"] = {"key": {"in": list(self.team_keys)}}
        yield from self._connection(ISSUES_QUERY, "issues", {"filter": issue_filter})

    def comments(self, start: datetime, end: datetime) -> Iterator[Item]:
        """Comments updated in [start, end), on issues of the followed teams."""
        comment_filter = {"updatedAt": {"gte": iso(start), "lt": iso(end)}}
        prefixes = tuple(f"{k.upper()}-" for k in self.team_keys)
        for comment in self._connection(COMMENTS_QUERY, "comments", {"filter": comment_filter}):
            identifier = str(((comment.get("issue") or {}) if isinstance(comment, dict) else {}).get("identifier")
                             or "")
            # The team is the identifier's prefix; a comment without its issue is the caller's to dead-letter.
            if not prefixes or not isinstance(comment, dict) or not identifier or identifier.upper().startswith(prefixes):
                yield comment

    def cycles(self) -> Iterator[Item]:
        """Every cycle (past, current, upcoming) of the followed teams."""
        cycle_filter = {"team": {"key": {"in": list(self.team_keys)}}} if self.team_keys else {}
        yield from self._connection(CYCLES_QUERY, "cycles", {"filter": cycle_filter})
