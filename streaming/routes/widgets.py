"""GET /dashboard/widgets/{widget_id}/data: the data a widget shows, read as the route of its type
would read it (the overview, metrics, Charlie instances, events or workflows)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response

from streaming import grants
from streaming.data.marts import iso, utcnow
from streaming.data.metrics import read_metrics
from streaming.data.queries import read_events, read_instances, read_overview, read_workflows
from streaming.data.serving import TTL, Serving
from streaming.deps import Data, User
from streaming.params import parse_filters, resolve_range
from streaming.responses import cached_response, encode
from streaming.schemas import WidgetData

router = APIRouter(prefix="/dashboard/widgets", tags=["dashboard"])


def widget_payload(data: Serving, widget: dict) -> Any:
    config, kind = widget["config"], widget["type"]
    if kind in ("overview", "system_status", "workflow_status"):
        overview = read_overview(data)
        if kind == "overview":
            return overview.model_dump(by_alias=True)
        if kind == "system_status":
            return overview.system_status.model_dump(by_alias=True) if overview.system_status else None
        return overview.workflows.model_dump(by_alias=True)
    if kind in ("event_volume", "system_metrics"):
        time_range = str(config.get("timeRange") or "24h")
        lo, hi = resolve_range(time_range, config.get("from"), config.get("to"))
        metrics = read_metrics(data, time_range, lo, hi, parse_filters(json.dumps(config["filters"]))
                               if config.get("filters") else {})
        if kind == "event_volume":
            return metrics.events.model_dump(by_alias=True)
        return [b.model_dump(by_alias=True) for b in metrics.system]
    if kind == "charlie_workload":
        return read_instances(data).model_dump(by_alias=True)["instances"]
    if kind == "recent_events":
        limit = min(max(int(config.get("limit") or 20), 1), 1000)
        return read_events(data, config.get("workflow"), None, limit).model_dump(by_alias=True)["events"]
    if kind == "workflows":
        limit = min(max(int(config.get("limit") or 10), 1), 500)
        return read_workflows(data, config.get("status"), config.get("assignee"), config.get("provider"),
                              limit, 0).model_dump(by_alias=True)
    raise HTTPException(500, f"widget type {kind!r} has no data")


@router.get("/{widget_id}/data", response_model=WidgetData,
            summary="The data a widget shows, from its type and config",
            responses={404: {"description": "Unknown widget"},
                       400: {"description": "The widget's config names a bad range or filter"}})
def widget_data(request: Request, data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)]) -> Response:
    widget = data.store.widget(widget_id)
    if widget is None:
        raise HTTPException(404, f"no widget {widget_id!r}")
    refused = grants.refusal(user, grants.widget_need(widget["type"], widget["config"] or {}))
    if refused:
        raise HTTPException(403, refused)

    def compute() -> tuple[bytes, str]:
        return encode(WidgetData(widget_id=widget["id"], type=widget["type"], title=widget["title"],
                                 generated_at=iso(utcnow()), data=widget_payload(data, widget)))

    # Keyed by the widget's definition too, so an edited widget is recomputed at once.
    key = json.dumps(["widget", widget["id"], widget["type"], widget["config"]], sort_keys=True, default=str)
    encoded = data.cached(key, TTL["widget"], compute, live=True)
    return cached_response(request, encoded, TTL["widget"])
