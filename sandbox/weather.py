"""The weather-arbitrage API: opportunities by `updated_at`, numbered pages."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from sandbox.model import AgentWorld, Opportunity, epoch, iso

DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 200


class WeatherApi:
    def __init__(self, agents: AgentWorld) -> None:
        self.opportunities = agents.opportunities  # by (updated_at, id)
        self.order = [(o.updated_at, o.id) for o in self.opportunities]
        self.by_id = {o.id: o for o in self.opportunities}

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:2] != ["v1", "opportunities"] or len(parts) > 3:
            return 404, {"error": "not_found", "message": "No such resource"}
        if len(parts) == 3:
            found = self.by_id.get(parts[2])
            if found is None:
                return 404, {"error": "not_found", "message": "No such opportunity"}
            return 200, opportunity_record(found)
        try:
            return 200, self._list(query)
        except ValueError as exc:
            return 400, {"error": "bad_request", "message": str(exc)}

    def _list(self, query: dict[str, str]) -> dict:
        """Opportunities with updated_at >= since, oldest update first, `per_page` to a page from 1."""
        try:
            page, per_page = int(query.get("page") or 1), int(query.get("per_page") or DEFAULT_PER_PAGE)
        except ValueError:
            raise ValueError("page and per_page must be integers") from None
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"page starts at 1; per_page is between 1 and {MAX_PER_PAGE}")
        lo = bisect_left(self.order, (epoch(query["since"]), "")) if query.get("since") else 0
        first = lo + (page - 1) * per_page
        items = self.opportunities[first : first + per_page]
        return {
            "opportunities": [opportunity_record(o) for o in items],
            "next_page": page + 1 if first + per_page < len(self.opportunities) else None,
        }


def opportunity_record(o: Opportunity) -> dict[str, Any]:
    return {
        "id": o.id,
        "market": o.market,
        "city": o.city,
        "contract": o.contract,
        "forecast_high_f": o.forecast_high_f,
        "market_implied_high_f": o.market_implied_high_f,
        "edge_pct": o.edge_pct,
        "confidence": o.confidence,
        "suggested_stake_usd": o.suggested_stake_usd,
        "status": o.status,
        "detected_at": iso(o.detected_at),
        "updated_at": iso(o.updated_at),
    }
