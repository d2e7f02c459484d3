"""The delivered raw tables: the polled records a webhook delivery or a push carries, landed in the
shape of their polled table, so dbt's staging reads them beside the polled copies.

A GitHub `pull_request` delivery carries a `github/pull_requests` record, a Linear `Issue` one a
`linear/issues` record, a pushed `cron.event` a `cron/events` record. Each lands, flattened with
the very `RawTable` of its polled table, in `raw/webhooks/<source>__<entity>` (DuckDB reads the
lake, Postgres `raw.webhooks__<source>__<entity>`) and never in the polled table: a poll run
rewrites its partitions whole. Staging reads both through `polled_and_delivered`
(dbt_project/macros/polled_and_delivered.sql), and the latest-copy rule picks the newest copy.

`carried_rows` is the one definition of these rows: the assets `raw/webhooks/<source>__<entity>`
(cc_assets/delivered.py) write what it returns for each delivery `raw/webhooks/deliveries` landed,
and the streaming sidecar can call it when it accepts the delivery to know, there and then, the
rows the next landing will write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cc_events.model import InvalidRecord
from cc_events.raw_tables import RawTable, raw_json
from cc_events.registry import RAW_TABLES, SOURCES, delivery_records
from cc_events.sources.webhooks import SOURCE as WEBHOOKS

# (source, entity) of a polled table → the delivered table that holds what deliveries carry of it.
DELIVERED_TABLES: dict[tuple[str, str], RawTable] = {
    (s.name, entity): RawTable(
        WEBHOOKS.name, f"{s.name}__{entity}", RAW_TABLES[s.name, entity].columns,
        f"{s.name}/{entity} records that webhook deliveries and pushes carried (the polled table's columns).",
    )
    for s in SOURCES
    for entity in dict.fromkeys([*s.webhook_entities, *s.pushed_kinds.values()])
}

# A carried row's table, and the row: the polled table's columns, then these.
CarriedRow = tuple[tuple[str, str], dict[str, Any]]
LINEAGE_COLUMNS = ("_raw", "_partition_date", "_ingested_at")


def carried_rows(
    source: str,
    event: str,
    payload: Any,
    received_at: datetime,
    rejected: list[tuple[tuple[str, str], str, str]] | None = None,
    with_raw: bool = True,
) -> list[CarriedRow]:
    """The rows one delivery adds to the delivered raw tables: exactly what the assets
    `raw/webhooks/<source>__<entity>` write for it, in the order they write them.

    `source`, `event` and `payload` are the delivery's (as `normalize_delivery` takes them: for
    `POST /events` and `/webhooks/charlie` the source is `events`/`charlie`, the event the pushed
    kind and the payload its `data`); `received_at` is when the sidecar accepted it (the landing
    line's `_received_at`, the deliveries table's `received_at`), naive UTC or aware.

    Each item is `((source, entity), row)`: `(source, entity)` names the polled table the record
    belongs to (`("linear", "issues")`, so `DELIVERED_TABLES[source, entity]` is where it lands and
    `stg_<source>__<entity>` is the staging model that reads it); `row` has, in this order, every
    column of that polled table (`RAW_TABLES[source, entity].columns`, the names and types the
    staging SQL reads: `str`, `int`, `float`, naive-UTC `datetime`, JSON text), then
      - `_raw`: the carried record as JSON text (the record, not the whole delivery);
      - `_partition_date`: `received_at`'s (UTC) date, the partition the row lands in;
      - `_ingested_at`: `received_at` itself (naive UTC): a delivered copy counts as landed when it
        was received, so `latest_copy_rank` orders it against polled copies (landed when their
        poll ran) by when each copy was seen, after the record's own order (`updated_at desc`).
    These are the columns of the lake's Parquet (`raw_schema`) and of Postgres' raw table: the
    rows, put in a table for the delivered source (or unioned by name with the polled table's rows),
    are what the compiled staging model reads.

    A delivery that carries nothing (a ping, a label change, a kind no source pushes) gives `[]`;
    so does one whose payload lacks what its source needs (the delivery itself is a dead letter
    of the normalizer). A record that cannot be flattened (a required column missing) is left out,
    and, when `rejected` is a list, `((source, entity), reason, record JSON)` is appended to it.
    A record carried twice by one delivery (a create also read as a snapshot) is one row.

    `with_raw=False` leaves `_raw` None: the sidecar's live state reads the columns only, and
    encoding every record again as JSON was a tenth of its CPU per webhook.
    """
    try:
        records = delivery_records(source, event, payload, snapshots=True)
    except InvalidRecord:
        return []
    received_at = _naive_utc(received_at)
    lineage = {"_partition_date": received_at.date(), "_ingested_at": received_at}
    rows: list[CarriedRow] = []
    seen: set[tuple[tuple[str, str], str]] = set()
    for rec_source, entity, record, extra in records:
        key = (rec_source, entity)
        raw = raw_json(record) if with_raw else None
        same = raw if with_raw else str(id(record))
        if (key, same) in seen:
            continue
        seen.add((key, same))
        table = DELIVERED_TABLES.get(key)
        try:
            if table is None:
                raise InvalidRecord(f"no delivered table for {rec_source}/{entity} (declare the entity "
                                    "in its source's webhook_entities)")
            row = table.flatten(record, extra)
        except InvalidRecord as exc:
            if rejected is not None:
                rejected.append((key, str(exc), raw))
            continue
        rows.append((key, {**row, "_raw": raw, **lineage}))
    return rows


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
