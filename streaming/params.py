"""The REST API's query parameters that FastAPI cannot check alone: parameters a route does not
take, time ranges, `filters` (JSON in a query parameter), ISO times. Each is a 400 that names the
parameter and the expected form."""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from streaming.data.marts import utcnow
from streaming.data.metrics import FILTER_KEYS, PRESETS

MAX_CUSTOM_SPAN = timedelta(days=366)

# The query parameters that take a time: the document says `date-time` (RFC 3339), and every
# RFC 3339 time is read (lower-case `t`/`z` too); anything else is a 400 that says so.
ISO_TIME = {"format": "date-time"}

_FILTER_VALUE = {"type": "string", "minLength": 1, "maxLength": 200}
# `filters` is JSON in a query parameter: declared with its media type and schema (FastAPI would
# only say "a string"), so the document says which filters are valid.
FILTERS_PARAMETER = {
    "name": "filters", "in": "query", "required": False,
    "description": 'A JSON object, e.g. {"source": ["github"], "host": "web-1"}: each key a string or a '
                   "non-empty list of strings.",
    "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {key: {"anyOf": [_FILTER_VALUE, {"type": "array", "items": _FILTER_VALUE, "minItems": 1}]}
                       for key in FILTER_KEYS}}}},
}


UNKNOWN_PARAMETER = "a query parameter the route does not take (the message names it, and those the route takes)"


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads: its own and its dependencies' (as sent: aliases)."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def taken_parameters(route: APIRoute) -> set[str]:
    """What `route` takes in its query: what it reads, and what its document adds (`filters`)."""
    extra = (route.openapi_extra or {}).get("parameters", [])
    return _query_names(route.dependant) | {p["name"] for p in extra if p.get("in") == "query"}


async def known_parameters(request: Request) -> None:
    """400 for a query parameter the route does not take: FastAPI ignores those, so a misspelt
    filter (`?Status=active`, `?timerange=7d`) answered as if it had not been sent, unfiltered."""
    if not request.scope.get("query_string"):
        return  # most reads: nothing to check
    route = request.scope["route"]
    taken = taken_parameters(route)
    unknown = sorted({name for name in request.query_params if name not in taken})
    if not unknown:
        return
    what = ", ".join(f"`{name}`" for name in unknown)
    hints = [f"`{close[0]}` for `{name}`?" for name in unknown
             if (close := difflib.get_close_matches(name, sorted(taken), n=1))]
    takes = f"takes {', '.join(f'`{name}`' for name in sorted(taken))}" if taken else "takes no query parameters"
    raise HTTPException(400, f"unknown query parameter{'s' if len(unknown) > 1 else ''} {what}: "
                             f"{request.method} {route.path_format} {takes}"
                             + (f" (did you mean {' '.join(hints)})" if hints else ""))


def parse_time(name: str, value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(400, f"`{name}` is not an ISO 8601 time: {value!r}") from exc
    if ts.tzinfo is None:
        return ts
    try:
        return ts.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # within a day of year 1 or 9999 with an offset: the range's end is as good
        return datetime.min if ts.year == 1 else datetime.max


def resolve_range(time_range: str, start: str | None, end: str | None,
                  now: datetime | None = None) -> tuple[datetime, datetime]:
    """The [from, to) window of a `timeRange`; HTTP 400 with the reason for anything else."""
    if time_range == "custom":
        if start is None or end is None:
            raise HTTPException(400, "timeRange=custom needs both `from` and `to` (ISO 8601)")
        lo, hi = parse_time("from", start), parse_time("to", end)
        if lo >= hi:
            raise HTTPException(400, "`from` must be before `to`")
        if hi - lo > MAX_CUSTOM_SPAN:
            raise HTTPException(400, f"a custom range spans at most {MAX_CUSTOM_SPAN.days} days")
        return lo, hi
    if time_range not in PRESETS:
        raise HTTPException(400, f"timeRange must be one of 1h, 24h, 7d, 30d, custom; not {time_range!r}")
    if start is not None or end is not None:  # `to=` (empty) too: it is not "no `to`"
        raise HTTPException(400, "`from` and `to` go with timeRange=custom only")
    hi = now or utcnow()
    return hi - PRESETS[time_range], hi


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """`filters` is a JSON object (the seeds' `type: object`): source, eventType, actorType, host."""
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"`filters` is not JSON: {exc}") from exc
    except RecursionError as exc:  # a few kilobytes of brackets exhaust the parser's stack
        raise HTTPException(400, "`filters` is nested too deeply: it is an object of strings or lists of strings") from exc
    if not isinstance(value, dict):
        raise HTTPException(400, "`filters` must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, item in value.items():
        if key not in FILTER_KEYS:
            raise HTTPException(400, f"unknown filter {key!r}; known: {', '.join(FILTER_KEYS)}")
        items = item if isinstance(item, list) else [item]
        if not items or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in items):
            raise HTTPException(400, f"filter {key!r} takes a string or a list of strings")
        out[key] = items
    return out


# What each widget type reads from its config, checked when a widget is stored so that a stored
# widget's data can always be read (schemathesis found a widget accepted at creation whose data
# then answered 400).
_TEXT_KEYS = {"recent_events": ("workflow",), "workflows": ("status", "assignee", "provider")}


def check_widget_config(kind: str, config: dict, where: tuple = ("body", "config")) -> None:
    """A 422 (FastAPI's validation shape, as documented) naming what the widget's `config` gets
    wrong for its type; returns when the config can be read."""
    def refuse(key: str, detail: str) -> None:
        raise RequestValidationError([{"loc": (*where, key), "msg": f"widget config for {kind!r}: {detail}",
                                       "type": "value_error", "input": config.get(key)}])

    if kind in ("event_volume", "system_metrics"):
        time_range = config.get("timeRange") or "24h"
        if not isinstance(time_range, str):
            refuse("timeRange", "`timeRange` is one of 1h, 24h, 7d, 30d, custom")
        for name in ("from", "to"):
            if config.get(name) is not None and not isinstance(config[name], str):
                refuse(name, f"`{name}` is an ISO 8601 time")
        try:
            resolve_range(time_range, config.get("from"), config.get("to"))
        except HTTPException as exc:
            refuse("timeRange", str(exc.detail))
        if config.get("filters"):
            try:
                parse_filters(json.dumps(config["filters"]))
            except HTTPException as exc:
                refuse("filters", str(exc.detail))
    if kind in ("recent_events", "workflows") and config.get("limit") is not None:
        limit = config["limit"]
        if isinstance(limit, bool) or not isinstance(limit, int):
            refuse("limit", "`limit` is an integer")
    for name in _TEXT_KEYS.get(kind, ()):
        if config.get(name) is not None and not isinstance(config[name], str):
            refuse(name, f"`{name}` is a string")
