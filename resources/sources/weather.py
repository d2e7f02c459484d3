"""Weather-market arbitrage opportunities (docs/contract_sources.md): `since`, numbered pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from resources.http.client import HttpClient, MalformedPage
from resources.settings import Settings
from resources.sources.paging import Item, http_client, is_malformed, iso, listed, updated_window


class WeatherClient:
    """Weather-market arbitrage opportunities: `since` on `updated_at`, numbered pages."""

    def __init__(self, http: HttpClient, base_url: str, page_size: int = 100) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> WeatherClient:
        return cls(http_client("weather", settings, {}, settings.weather_api_token), settings.weather_base_url)

    def opportunities(self, since: datetime, until: datetime | None = None) -> Iterator[Item]:
        """Opportunities updated at or after `since` (and before `until`, when given)."""
        return updated_window(self._opportunities(since), until)

    def _opportunities(self, since: datetime) -> Iterator[Item]:
        number: int | None = 1
        while number:
            params = {"since": iso(since), "page": number, "per_page": self.page_size}
            page = self.http.get(f"{self.base_url}/v1/opportunities", params=params)
            items = listed(page, "opportunities")
            yield from items
            if isinstance(page, MalformedPage) or is_malformed(items):
                return
            following = page.data.get("next_page")
            number = following if isinstance(following, int) and following > number else None
