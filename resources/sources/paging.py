"""What the source clients share: the record type, time helpers, listing pages and the client's HTTP.

Each client yields its source's records as dicts, or a `MalformedPage` where a page could not be
read, so the caller lands what is good and dead-letters the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from cc_events.helpers import parse_time
from cc_events.model import InvalidRecord
from resources.http.client import HttpClient, MalformedPage, Page
from resources.settings import Settings

Item = dict[str, Any] | MalformedPage


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_or_none(record: Mapping[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(record.get(name), name)
    except InvalidRecord:
        return None


def http_client(source: str, settings: Settings, headers: Mapping[str, str], token: str | None = None) -> HttpClient:
    if token:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return HttpClient.from_settings(source, settings, headers)


def updated_window(items: Iterator[Item], until: datetime | None, field_name: str = "updated_at") -> Iterator[Item]:
    """Items of an `updated_at`-ascending listing, up to (not including) `until`."""
    for item in items:
        if until is not None and isinstance(item, dict):
            updated = time_or_none(item, field_name)
            if updated is not None and updated >= until:
                return
        yield item


def listed(page: Page | MalformedPage, field_name: str) -> list[Item]:
    """The records of a `{field_name: [...]}` page, or the page itself as one MalformedPage."""
    if isinstance(page, MalformedPage):
        return [page]
    records = page.data.get(field_name) if isinstance(page.data, dict) else None
    if not isinstance(records, list):
        return [MalformedPage(page.url, f"no {field_name} list in the response", str(page.data)[:10000],
                              page.headers)]
    return records


def is_malformed(items: list[Item]) -> bool:
    return len(items) == 1 and isinstance(items[0], MalformedPage)
