"""Weather-market arbitrage opportunities (docs/contract_sources.md), polled or pushed to
`POST /events` as `weather.opportunity`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import parse_time, require
from cc_events.model import Actor, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

WEATHER_FIELDS = ("market", "city", "contract", "forecast_high_f", "market_implied_high_f", "edge_pct",
                  "confidence", "suggested_stake_usd", "status")


def weather_opportunity(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "detected_at")
    oid = str(record["id"])
    payload = {k: record.get(k) for k in WEATHER_FIELDS}
    title = " ".join(str(record[k]) for k in ("city", "contract") if record.get(k)) or oid
    event = NormalizedEvent(
        f"weather:opportunity:{oid}", parse_time(record["detected_at"], "detected_at"), "weather",
        "weather.opportunity.detected", Actor(id="weather:scanner", name="weather arbitrage scanner", type="bot"),
        Target("opportunity", oid, title, ""), payload,
        tags=tuple(str(record[k]) for k in ("market", "city") if record.get(k)))
    return [event]


RAW_TABLES = (
    RawTable("weather", "opportunities", (
        col("id", "str", required=True), col("market", "str"), col("city", "str"), col("contract", "str"),
        col("forecast_high_f", "float"), col("market_implied_high_f", "float"), col("edge_pct", "float"),
        col("confidence", "float"), col("suggested_stake_usd", "float"), col("status", "str"),
        col("detected_at", "time", required=True), col("updated_at", "time", required=True),
    ), "Weather-market arbitrage opportunities, one snapshot per day they were updated."),
)


SOURCE = Source("weather", RAW_TABLES, normalizers={"opportunities": weather_opportunity},
                pushed_kinds={"weather.opportunity": "opportunities"})
