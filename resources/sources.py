"""Clients for the sources: GitHub REST, Linear GraphQL, the Charlie instance API, and the agent-side
sources (OpenClaw sessions, cron events polled or streamed as Server-Sent Events, weather arbitrage).

Each yields the source's records as dicts, or a `MalformedPage` where a page could not be read,
so the caller lands what is good and dead-letters the rest. They speak the real protocols, and
point at the sandbox unless `CC_GITHUB_TOKEN` / `CC_LINEAR_API_KEY` are set (see settings).
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
import urllib3

from cc_events.helpers import parse_time
from cc_events.model import InvalidRecord
from resources.http import (
    RETRYABLE_STATUS,
    HttpClient,
    MalformedPage,
    Page,
    SourceUnavailable,
    rate_limit_wait,
)
from resources.http_cache import ConditionalCache
from resources.settings import Settings

log = logging.getLogger(__name__)

Item = dict[str, Any] | MalformedPage

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_or_none(record: Mapping[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(record.get(name), name)
    except InvalidRecord:
        return None


ACTIONS_RESULTS_CAP = 1000  # GitHub's limit on a filtered Actions listing


class GitHubClient:
    """GitHub REST v3: `Link` pagination, conditional requests with `ETag`, rate limits."""

    actions_results_cap = ACTIONS_RESULTS_CAP

    def __init__(
        self, http: HttpClient, base_url: str, org: str, repos: tuple[str, ...] = (), page_size: int = 100,
        etags: ConditionalCache | None = None,
    ) -> None:
        self.http = http
        self.page_size = page_size
        self.base_url = base_url.rstrip("/")
        self.org = org
        self._repos = repos
        # request -> (etag, data, link): a 304 costs no rate limit and gives back the cached page,
        # including where the next page is (a 304 need not repeat the Link header). Without a
        # cache file the ETags live as long as this client.
        self._etags = etags if etags is not None else ConditionalCache(":memory:", "github")
        self.not_modified = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubClient:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        etags = ConditionalCache(settings.state_dir / "http_cache.sqlite", "github")
        return cls(_http("github", settings, headers), settings.github_base_url, settings.github_org,
                   settings.github_repos, etags=etags)

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
                    self._etags.put(cache_key, page.headers["ETag"], page.data, page.headers.get("Link", ""))
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

    def listing(self, path: str, params: Mapping[str, Any], field: str) -> Iterator[Item]:
        """The records of a wrapped listing (`{"total_count": n, field: [...]}`: Actions, Checks)."""
        for page in self._pages(path, params):
            yield from _listed(page, field)

    def workflow_runs(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """GitHub Actions runs created in [start, end), newest first.

        A filtered Actions listing stops at 1,000 results while `total_count` says how many
        matched, so a range with more is fetched as two halves (recursively).
        """
        pages = self._pages(f"/repos/{repo}/actions/runs", {"created": f"{_iso(start)}..{_iso(end)}"})
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
            for item in _listed(page, "workflow_runs"):
                created = _time_or_none(item, "created_at") if isinstance(item, dict) else None
                # `a..b` includes both ends: the run created at `end` belongs to the next range.
                if created is None or start <= created < end:
                    yield item

    def check_runs(self, repo: str, ref: str) -> Iterator[Item]:
        """Every check run on a commit (`ref`: a SHA or branch), re-run attempts included."""
        yield from self.listing(f"/repos/{repo}/commits/{ref}/check-runs", {"filter": "all"}, "check_runs")


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
        issue_filter: dict[str, Any] = {"updatedAt": {"gte": _iso(start), "lt": _iso(end)}}
        if self.team_keys:
            issue_filter["team"] = {"key": {"in": list(self.team_keys)}}
        yield from self._connection(ISSUES_QUERY, "issues", {"filter": issue_filter})

    def comments(self, start: datetime, end: datetime) -> Iterator[Item]:
        """Comments updated in [start, end), on issues of the followed teams."""
        comment_filter = {"updatedAt": {"gte": _iso(start), "lt": _iso(end)}}
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


def _http(source: str, settings: Settings, headers: Mapping[str, str], token: str | None = None) -> HttpClient:
    if token:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return HttpClient.from_settings(source, settings, headers)


# --- the agent-side sources: OpenClaw sessions, cron events, weather arbitrage ---------------------
# (docs/contract_sources.md). Base URLs come from the caller; no settings are read here.


def _updated_window(items: Iterator[Item], until: datetime | None, field_name: str = "updated_at") -> Iterator[Item]:
    """Items of an `updated_at`-ascending listing, up to (not including) `until`."""
    for item in items:
        if until is not None and isinstance(item, dict):
            updated = _time_or_none(item, field_name)
            if updated is not None and updated >= until:
                return
        yield item


class OpenClawClient:
    """OpenClaw agent sessions: `updated_since` and a keyset cursor, oldest update first."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 200) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenClawClient:
        return cls(_http("openclaw", settings, {}, settings.openclaw_api_token), settings.openclaw_base_url)

    def sessions(self, since: datetime, until: datetime | None = None) -> Iterator[Item]:
        """Sessions updated at or after `since` (and before `until`, when given)."""
        return _updated_window(self._sessions(since), until)

    def _sessions(self, since: datetime) -> Iterator[Item]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"updated_since": _iso(since), "limit": self.page_size}
            if cursor:
                params["cursor"] = cursor
            page = self.http.get(f"{self.base_url}/v1/sessions", params=params)
            items = _listed(page, "sessions")
            yield from items
            if isinstance(page, MalformedPage) or _is_malformed(items):
                return
            cursor = page.data.get("next_cursor")
            if not cursor:
                return

    def session(self, session_id: str) -> Item:
        page = self.http.get(f"{self.base_url}/v1/sessions/{session_id}")
        return page if isinstance(page, MalformedPage) else page.data


class WeatherClient:
    """Weather-market arbitrage opportunities: `since` on `updated_at`, numbered pages."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 100) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> WeatherClient:
        return cls(_http("weather", settings, {}, settings.weather_api_token), settings.weather_base_url)

    def opportunities(self, since: datetime, until: datetime | None = None) -> Iterator[Item]:
        """Opportunities updated at or after `since` (and before `until`, when given)."""
        return _updated_window(self._opportunities(since), until)

    def _opportunities(self, since: datetime) -> Iterator[Item]:
        number: int | None = 1
        while number:
            params = {"since": _iso(since), "page": number, "per_page": self.page_size}
            page = self.http.get(f"{self.base_url}/v1/opportunities", params=params)
            items = _listed(page, "opportunities")
            yield from items
            if isinstance(page, MalformedPage) or _is_malformed(items):
                return
            following = page.data.get("next_page")
            number = following if isinstance(following, int) and following > number else None


def _listed(page: Page | MalformedPage, field_name: str) -> list[Item]:
    """The records of a `{field_name: [...]}` page, or the page itself as one MalformedPage."""
    if isinstance(page, MalformedPage):
        return [page]
    records = page.data.get(field_name) if isinstance(page.data, dict) else None
    if not isinstance(records, list):
        return [MalformedPage(page.url, f"no {field_name} list in the response", str(page.data)[:10000],
                              page.headers)]
    return records


def _is_malformed(items: list[Item]) -> bool:
    return len(items) == 1 and isinstance(items[0], MalformedPage)


# --- Server-Sent Events ----------------------------------------------------------------------------

_SSE_LINE = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str = ""  # the stream's last event id once this event arrived (what to resume from)


class SseParser:
    """An incremental `text/event-stream` parser, as the WHATWG HTML standard (9.2.6) reads streams.

    Lines end in CRLF, LF or CR (a CR at the end of a chunk waits for the next one); `data:` lines
    join with newlines; comments (`:`) are counted and skipped; `id:` persists across events;
    `retry:` takes digits only; an event without a final blank line is dropped.
    """

    def __init__(self, last_event_id: str = "") -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._pending + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        out: list[SseEvent] = []
        position = 0
        for match in _SSE_LINE.finditer(text):
            if match.group() == "\r" and match.end() == len(text):
                break  # maybe the first half of a CRLF split across chunks
            self._line(text[position : match.start()], out)
            position = match.end()
        self._pending = text[position:]
        return out

    def _line(self, line: str, out: list[SseEvent]) -> None:
        if not line:
            if self._data:
                out.append(SseEvent("\n".join(self._data), self._event or "message", self.last_event_id))
            self._data, self._event = [], ""
            return
        if line.startswith(":"):
            self.comments += 1
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry_ms = int(value)


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: per HTTP chunk when chunked, else whatever one read returns."""
    if getattr(response.raw, "chunked", False):
        yield from response.iter_content(chunk_size=None)
        return
    while chunk := response.raw.read1(65536):
        yield chunk


class CronClient:
    """Cron job events: polled by sequence number, or followed as Server-Sent Events."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 500,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self._sleep = sleep  # between reconnects; tests pass a recorder
        self.reconnects = 0
        self.heartbeats = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CronClient:
        return cls(_http("cron", settings, {}, settings.cron_api_token), settings.cron_base_url)

    def jobs(self) -> Iterator[Item]:
        yield from _listed(self.http.get(f"{self.base_url}/v1/jobs"), "jobs")

    def events(self, after_seq: int = 0) -> Iterator[Item]:
        """Every event with seq > after_seq, in order."""
        after = after_seq
        while True:
            page = self.http.get(f"{self.base_url}/v1/events", params={"after": after, "limit": self.page_size})
            items = _listed(page, "events")
            yield from items
            if isinstance(page, MalformedPage) or _is_malformed(items):
                return
            last = page.data.get("last_seq")
            if not page.data.get("has_more") or not isinstance(last, int) or last <= after:
                return
            after = last

    def stream(self, last_event_id: int | str | None = None, max_events: int | None = None,
               timeout_s: float | None = None) -> Iterator[Item]:
        """Events after `last_event_id` as they arrive; ends after `max_events` events or `timeout_s`
        seconds, and with neither follows the stream for ever.

        A dropped or closed connection is reopened with `Last-Event-ID` after the server's `retry:`
        delay; connection failures back off as `HttpClient` does, and after its `max_retries` in a
        row without an event the stream fails with `SourceUnavailable`.
        """
        url = f"{self.base_url}/v1/stream"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last_id = "" if last_event_id is None else str(last_event_id)
        received, failures, retry_s = 0, 0, 1.0
        while True:
            params: dict[str, Any] = {}
            if max_events is not None:
                params["max_events"] = max_events - received
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                params["timeout"] = f"{left:.3f}"
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            failed, wait, problem = False, None, "the server closed the stream"
            parser = SseParser(last_id)
            try:
                self.http.requests_made += 1
                with self.http.session.get(url, params=params, headers=headers, stream=True,
                                           timeout=self.http.timeout_s) as response:
                    if response.status_code != 200:
                        failed, problem = True, f"HTTP {response.status_code}: {response.text[:200]}"
                        if response.status_code not in RETRYABLE_STATUS and not _rate_limited(response):
                            raise SourceUnavailable(f"{self.http.source}: stream {_no_query(url)} failed: {problem}")
                        wait = rate_limit_wait(response)
                    elif not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                        raise SourceUnavailable(f"{self.http.source}: stream {_no_query(url)} is not "
                                                f"text/event-stream: {response.headers.get('Content-Type')}")
                    else:
                        for chunk in _body_chunks(response):
                            for event in parser.feed(chunk):
                                last_id, failures = event.id, 0
                                yield _event_record(event, response)
                                received += 1
                                if max_events is not None and received >= max_events:
                                    return
                            if parser.retry_ms is not None:
                                retry_s = parser.retry_ms / 1000
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                failed, problem = True, f"{type(exc).__name__}: {exc}"
            finally:
                self.heartbeats += parser.comments
            last_id = parser.last_event_id  # an id may arrive without data, or reset to ""
            if failed:
                failures += 1
                if failures > self.http.max_retries:
                    raise SourceUnavailable(f"{self.http.source}: stream {_no_query(url)} failed after "
                                            f"{failures} attempts: {problem}")
                backoff = min(self.http.max_backoff_s, self.http.backoff_s * 2 ** (failures - 1))
                delay = wait if wait is not None else max(retry_s, backoff)
            else:
                delay = retry_s
            if deadline is not None and time.monotonic() + delay >= deadline:
                return
            log.info("%s: stream %s: %s; reconnecting in %.1fs from %s", self.http.source, _no_query(url), problem,
                     delay, last_id or "the start")
            self.reconnects += 1
            self.http.retries += 1
            self._sleep(delay)


def _rate_limited(response: requests.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 403 and (
        response.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in response.headers))


def _no_query(url: str) -> str:
    return url.split("?", 1)[0]


def _event_record(event: SseEvent, response: requests.Response) -> Item:
    try:
        record = json.loads(event.data)
    except ValueError as exc:
        return MalformedPage(response.url, f"invalid JSON in event {event.id or '?'}: {exc}", event.data,
                             response.headers)
    if not isinstance(record, dict):
        return MalformedPage(response.url, f"event {event.id or '?'} is not a JSON object", event.data,
                             response.headers)
    return record
