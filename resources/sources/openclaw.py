"""OpenClaw agent sessions (docs/contract_sources.md): `updated_since` and a keyset cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from resources.http.client import HttpClient, MalformedPage
from resources.settings import Settings
from resources.sources.paging import Item, http_client, is_malformed, iso, listed, updated_window


class OpenClawClient:
    """OpenClaw agent sessions: `updated_since` and a keyset cursor, oldest update first."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 200) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenClawClient:
        return cls(http_client("openclaw", settings, {}, settings.openclaw_api_token), settings.openclaw_base_url)

    def sessions(self, since: datetime, until: datetime | None = None) -> Iterator[Item]:
        """Sessions updated at or after `since` (and before `until`, when given)."""
        return updated_window(self._sessions(since), until)

    def _sessions(self, since: datetime) -> Iterator[Item]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"updated_since": iso(since), "limit": self.page_size}
            if cursor:
                params["cursor"] = cursor
            page = self.http.get(f"{self.base_url}/v1/sessions", params=params)
            items = listed(page, "sessions")
            yield from items
            if isinstance(page, MalformedPage) or is_malformed(items):
                return
            cursor = page.data.get("next_cursor")
            if not cursor:
                return

    def session(self, session_id: str) -> Item:
        page = self.http.get(f"{self.base_url}/v1/sessions/{session_id}")
        return page if isinstance(page, MalformedPage) else page.data
