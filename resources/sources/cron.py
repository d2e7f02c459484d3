"""Cron job events (docs/contract_sources.md): polled by sequence number, or followed as Server-Sent Events."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3

from resources.http.client import (
    RETRYABLE_STATUS,
    HttpClient,
    MalformedPage,
    SourceUnavailable,
    rate_limit_wait,
)
from resources.http.sse import SseEvent, SseParser, body_chunks
from resources.settings import Settings
from resources.sources.paging import Item, http_client, is_malformed, listed

log = logging.getLogger(__name__)


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
        return cls(http_client("cron", settings, {}, settings.cron_api_token), settings.cron_base_url)

    def jobs(self) -> Iterator[Item]:
        yield from listed(self.http.get(f"{self.base_url}/v1/jobs"), "jobs")

    def events(self, after_seq: int = 0) -> Iterator[Item]:
        """Every event with seq > after_seq, in order."""
        after = after_seq
        while True:
            page = self.http.get(f"{self.base_url}/v1/events", params={"after": after, "limit": self.page_size})
            items = listed(page, "events")
            yield from items
            if isinstance(page, MalformedPage) or is_malformed(items):
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
                        for chunk in body_chunks(response):
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
