"""The registry: which sources exist, and from them the tables every caller dispatches on.

- `NORMALIZERS`: (source, entity) → the normalizer of one raw record (docs/contract.md §2);
- `RAW_TABLES`: (source, entity) → the flattened columns of its raw table (§4);
- `PUSHED_KINDS` and `WEBHOOK_SOURCES`: what a webhook delivery of a kind carries (§4, `raw/webhooks`).

Adding a source is its module under `cc_events/sources/` and one line in `SOURCES`.

`normalize_delivery` is here rather than in `sources/webhooks.py`: a delivery's normalizer
dispatches over all the other sources, so it lives with the tables it dispatches on (a webhooks
module importing the registry that lists it would be a cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import Normalizer, SourceRecord
from cc_events.model import InvalidRecord, NormalizedEvent
from cc_events.raw_tables import RawTable
from cc_events.sources import (
    Source,
    charlie,
    cron,
    github,
    linear,
    logs,
    openclaw,
    postgres_cdc,
    system,
    weather,
)
from cc_events.sources import webhooks as webhook_deliveries

# The batch normalizer reads the tables in this order and a later copy of an event id wins, so
# the deliveries (the webhook twins of polled records) come last.
SOURCES: tuple[Source, ...] = (
    logs.SOURCE,
    github.SOURCE,
    linear.SOURCE,
    charlie.SOURCE,
    openclaw.SOURCE,
    cron.SOURCE,
    weather.SOURCE,
    system.SOURCE,
    postgres_cdc.SOURCE,
    webhook_deliveries.SOURCE,
)

RAW_TABLES: dict[tuple[str, str], RawTable] = {(t.source, t.entity): t for s in SOURCES for t in s.raw_tables}

# `POST /events` and `POST /webhooks/charlie` kinds (what bots, cron runners and agents push) →
# the (source, entity) of the polled table such a record belongs to.
PUSHED_KINDS: dict[str, tuple[str, str]] = {
    kind: (s.name, entity) for s in SOURCES for kind, entity in s.pushed_kinds.items()
}
# Deliveries of these sources carry their records in a source-specific payload.
WEBHOOK_SOURCES: dict[str, Source] = {
    s.name: s for s in SOURCES if s.webhook_records or s.webhook_events or s.webhook_snapshots
}
# Deliveries of these carry pushed records, `{kind, data}`, of any source.
PUSHING_SOURCES = ("events", "charlie")


def normalize(
    source: str,
    entity: str,
    record: Mapping[str, Any],
    ctx: NormalizeContext,
    extra: Mapping[str, Any] | None = None,
) -> list[NormalizedEvent]:
    """Normalize one source record; `InvalidRecord` says why a record cannot be used."""
    try:
        normalizer = NORMALIZERS[(source, entity)]
    except KeyError:
        raise InvalidRecord(f"no normalizer for {source}/{entity}") from None
    if type(record) is not dict and not isinstance(record, Mapping):
        raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
    try:
        return normalizer(record, ctx, extra or {})
    except InvalidRecord:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidRecord(f"{type(exc).__name__}: {exc}") from exc


def pushed_records(kind: str, data: Any) -> list[SourceRecord]:
    """`POST /events` / `POST /webhooks/charlie`: one record, or a list of them, of a known kind."""
    if kind not in PUSHED_KINDS:
        return []
    source, entity = PUSHED_KINDS[kind]
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidRecord(f"{kind}: a record is a {type(item).__name__}, not an object")
    return [(source, entity, item, {}) for item in items]


def normalize_delivery(source: str, event: str, payload: Any, ctx: NormalizeContext) -> list[NormalizedEvent]:
    """A delivery's events: each record it carries through the very normalizer the polled record
    goes through (so a PR seen by webhook and by the poll has one event id, and staging's dedupe on
    `event_id` counts it once), plus what the poll learns another way (a Linear state change).
    A kind with no normalizer (ping, releases, removes, …) is stored raw: no event. A known kind
    whose payload lacks what the normalizer needs raises `InvalidRecord`: a dead letter, not a crash."""
    records = delivery_records(source, event, payload)
    carrier = WEBHOOK_SOURCES.get(source) if source not in PUSHING_SOURCES else None
    events = carrier.webhook_events(event, payload, ctx) if carrier and carrier.webhook_events else []
    for rec_source, entity, record, extra in records:
        events.extend(normalize(rec_source, entity, record, ctx, extra))
    return events


def delivery_records(source: str, event: str, payload: Any, snapshots: bool = False) -> list[SourceRecord]:
    """The polled records a delivery carries: a pushed `{kind, data}`'s, or a webhook source's
    `webhook_records`; with `snapshots`, also the records an update carries in their new state
    (`webhook_snapshots`: staging's newer copy, no event). `InvalidRecord` for a payload that is
    not an object, or that lacks what its source needs to find the record."""
    if source in PUSHING_SOURCES:
        return pushed_records(event, payload)
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise InvalidRecord(f"payload is a {type(payload).__name__}, not an object")
    carrier = WEBHOOK_SOURCES.get(source)
    if carrier is None:
        return []
    records = carrier.webhook_records(event, payload) if carrier.webhook_records else []
    if snapshots and carrier.webhook_snapshots:
        records = [*records, *carrier.webhook_snapshots(event, payload)]
    return records


def webhook_delivery(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """Normalizer of `raw/webhooks/deliveries`: the envelope the sidecar landed."""
    if not record.get("source") or not record.get("event"):
        raise InvalidRecord("delivery without source or event")
    return normalize_delivery(str(record["source"]), str(record["event"]), record.get("payload"), ctx)


NORMALIZERS: dict[tuple[str, str], Normalizer] = {
    **{(s.name, entity): normalizer for s in SOURCES for entity, normalizer in s.normalizers.items()},
    (webhook_deliveries.SOURCE.name, "deliveries"): webhook_delivery,
}
