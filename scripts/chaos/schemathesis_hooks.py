"""Schemathesis hooks (`SCHEMATHESIS_HOOKS=scripts.chaos.schemathesis_hooks`): the rules between
query parameters that OpenAPI cannot state, applied to the requests schemathesis means as valid.

Two routes have them, both documented as 400s in /openapi.json:
- `/dashboard/metrics`: `from` and `to` go with `timeRange=custom` only, custom needs both,
  `from` before `to`, at most 366 days apart;
- `/api/workflows`: a `cursor` or an `offset`, not both.
A schema-valid request is made to obey them; every value it had is otherwise kept, so the fuzzing
still reaches every time format and cursor the document allows. Invalid requests are left alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import schemathesis
from schemathesis.generation import GenerationMode

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


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or case.query is None:
        return case
    if case.path == "/dashboard/metrics":
        _metrics(case.query)
    elif case.path == "/api/workflows" and case.query.get("cursor") is not None:
        case.query.pop("offset", None)
    return case
