"""One module per source: what its records look like in the lake and how they become events.

Each module ends with its `SOURCE`, a `Source` naming its raw tables (the flattened columns of
docs/contract.md §4), its normalizers by entity, and what it contributes to webhook deliveries;
`cc_events.registry` lists the modules. None of them imports another source or the registry.

What a delivery carries reaches two places: its records' events (`webhook_records`, and
`webhook_events` for what the poll learns another way) and its records' delivered raw tables,
`raw/webhooks/<source>__<entity>` (`webhook_records` and `webhook_snapshots`, one table per entity
of `webhook_entities` and of `pushed_kinds`; cc_events/delivered.py), which staging reads beside
the polled ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import Normalizer, SourceRecord
from cc_events.model import NormalizedEvent
from cc_events.raw_tables import RawTable

# A delivery's (event, payload) → the polled records it carries, normalized as if polled.
WebhookRecords = Callable[[str, Mapping[str, Any]], list[SourceRecord]]
# A delivery's (event, payload, ctx) → events the poll learns another way (no record to share).
WebhookEvents = Callable[[str, Mapping[str, Any], NormalizeContext], list[NormalizedEvent]]


@dataclass(frozen=True)
class Source:
    name: str
    raw_tables: tuple[RawTable, ...]
    normalizers: Mapping[str, Normalizer] = field(default_factory=dict)  # entity → normalizer
    pushed_kinds: Mapping[str, str] = field(default_factory=dict)  # `POST /events` kind → entity
    webhook_records: WebhookRecords | None = None
    webhook_events: WebhookEvents | None = None
    # A delivery's (event, payload) → the record's new state that an update carries: a newer copy
    # of a polled record for staging, but no event (its event, if any, comes from webhook_events).
    webhook_snapshots: WebhookRecords | None = None
    # The entities webhook_records and webhook_snapshots yield: each has a delivered raw table.
    webhook_entities: tuple[str, ...] = ()
