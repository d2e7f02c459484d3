"""GET /dashboard/metrics: event volume (from the tier that holds each part of the window),
workflow throughput and host metrics."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from streaming.data.marts import iso
from streaming.data.metrics import in_hot_window, read_metrics, truncate
from streaming.data.serving import TTL, Serving
from streaming.deps import Data
from streaming.params import FILTERS_PARAMETER, ISO_TIME, parse_filters, resolve_range
from streaming.responses import cached_response, encode
from streaming.schemas import Metrics

router = APIRouter(prefix="/dashboard", tags=["dashboard"])


def metrics_body(data: Serving, time_range: str, start: str | None, end: str | None,
                 filters: str | None) -> tuple[bytes, str]:
    lo, hi = resolve_range(time_range, start, end)
    parsed = parse_filters(filters)
    key, ttl = cache_plan(time_range, lo, hi, parsed)
    return data.cached(key, ttl, lambda: encode(read_metrics(data, time_range, lo, hi, parsed)), live=True)


def cache_plan(time_range: str, lo: datetime, hi: datetime, parsed: dict[str, list[str]]) -> tuple[str, float]:
    """The cache key and TTL of a metrics read (REST's body, GraphQL's model)."""
    # Presets slide with the clock: cache them by the minute they end in.
    key = json.dumps(["metrics", time_range, iso(lo) if time_range == "custom" else None,
                      iso(hi) if time_range == "custom" else iso(truncate(hi, "minute")), parsed], sort_keys=True)
    # The hot tier changes apart from the marts (hot_job, every 5 minutes): recount it soon.
    return key, Serving.HOT_REFRESH_S if in_hot_window(time_range, lo) else TTL["metrics"]


@router.get("/metrics", response_model=Metrics,
            summary="Event volume, workflow throughput and host metrics over a time range",
            responses={400: {"description": "`from`/`to` without timeRange=custom (or custom without both), "
                                            "`from` not before `to`, a custom range over 366 days, or `filters` "
                                            "that are not the JSON object described"}},
            openapi_extra={"parameters": [FILTERS_PARAMETER]})
def dashboard_metrics(
    request: Request, data: Data,
    time_range: Annotated[Literal["1h", "24h", "7d", "30d", "custom"], Query(alias="timeRange")] = "24h",
    start: Annotated[str | None, Query(alias="from", description="With timeRange=custom",
                                       json_schema_extra=ISO_TIME)] = None,
    end: Annotated[str | None, Query(alias="to", description="Exclusive; with timeRange=custom",
                                     json_schema_extra=ISO_TIME)] = None,
    filters: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Response:
    encoded = metrics_body(data, time_range, start, end, filters)
    return cached_response(request, encoded, TTL["metrics"])
