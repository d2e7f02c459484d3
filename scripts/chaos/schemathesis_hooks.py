"""Schemathesis hooks (`SCHEMATHESIS_HOOKS=scripts.chaos.schemathesis_hooks`): the rules between
query parameters that OpenAPI cannot state, applied to the requests schemathesis means as valid.

Three have them, documented in /openapi.json (400s, and the widget config's description):
- `/dashboard/metrics`: `from` and `to` go with `timeRange=custom` only, custom needs both,
  `from` before `to`, at most 366 days apart;
- `/api/workflows`: a `cursor` or an `offset`, not both;
- a widget's `config` (creating a dashboard or a widget, changing a widget): what its type reads.
A schema-valid request is made to obey them; every value it had is otherwise kept, so the fuzzing
still reaches every time format and cursor the document allows. Invalid requests are left alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import schemathesis
from schemathesis.generation import GenerationMode

from streaming.data.metrics import FILTER_KEYS, PRESETS

MAX_SPAN = timedelta(days=366)


def _time(value: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    try:
        return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
    except OverflowError:
        return None


def _metrics(query: dict) -> None:
    if query.get("timeRange", "24h") != "custom":
        query.pop("from", None)
        query.pop("to", None)
        return
    lo, hi = _time(str(query.get("from", ""))), _time(str(query.get("to", "")))
    if lo is not None and hi is not None and lo < hi <= lo + MAX_SPAN:
        return
    anchor = lo or hi or datetime(2026, 1, 1)
    step = timedelta(hours=1)
    new_lo, new_hi = (anchor, anchor + step) if anchor < datetime.max - step else (anchor - step, anchor)
    if new_lo != lo:
        query["from"] = new_lo.isoformat()
    if new_hi != hi:
        query["to"] = new_hi.isoformat()


TIME_RANGES = (*PRESETS, "custom")


def _widget_config(config) -> None:
    """A widget's config as its description states it (`streaming.schemas.WIDGET_CONFIG`): keys a
    type reads with values of the wrong kind are dropped, and the time range made to obey the rules
    /dashboard/metrics has; every other key is kept."""
    if not isinstance(config, dict):
        return
    if config.get("timeRange") is not None and config["timeRange"] not in TIME_RANGES:
        config.pop("timeRange")
    for name in ("from", "to"):
        if config.get(name) is not None and (not isinstance(config[name], str) or _time(config[name]) is None):
            config.pop(name)
    if config.get("timeRange") == "custom" or config.get("from") is not None or config.get("to") is not None:
        _metrics(config)
    filters = config.get("filters")
    if filters and not (isinstance(filters, dict) and all(
            k in FILTER_KEYS and (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)))
            for k, v in filters.items())):
        config.pop("filters")
    if config.get("limit") is not None and (isinstance(config["limit"], bool) or not isinstance(config["limit"], int)):
        config.pop("limit")
    for name in ("workflow", "status", "assignee", "provider"):
        if config.get(name) is not None and not isinstance(config[name], str):
            config.pop(name)


def _widgets(case) -> None:
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if case.path == "/dashboard/dashboards":
        for widget in body.get("widgets") or []:
            if isinstance(widget, dict):
                _widget_config(widget.get("config"))
    else:
        _widget_config(body.get("config"))


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if case.method.upper() in ("POST", "PUT") and case.path in (
            "/dashboard/dashboards", "/dashboard/dashboards/{dashboard_id}/widgets", "/dashboard/widgets/{widget_id}"):
        _widgets(case)
        return case
    if case.query is None:
        return case
    if case.path == "/dashboard/metrics":
        _metrics(case.query)
    elif case.path == "/api/workflows" and case.query.get("cursor") is not None:
        case.query.pop("offset", None)
    return case
