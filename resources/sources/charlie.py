"""The Charlie instance API: the registry, per-instance health and activity (cursor pages)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from resources.http.client import HttpClient, MalformedPage, Page
from resources.settings import Settings
from resources.sources.paging import Item, http_client, iso


class CharlieClient:
    """The Charlie instance API: the registry, per-instance health and activity."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 500) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> CharlieClient:
        headers = {"Authorization": f"Bearer {settings.charlie_api_token}"} if settings.charlie_api_token else {}
        return cls(http_client("charlie", settings, headers), settings.charlie_base_url)

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
            params = {"since": iso(start), "until": iso(end), "limit": self.page_size}
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
