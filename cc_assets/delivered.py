"""The delivered raw tables: what each landed webhook delivery or push carries of another source, in
the columns of the polled table it belongs to (`raw/webhooks/<source>__<entity>`, e.g.
`raw/webhooks/linear__issues`; cc_events/delivered.py), so dbt's staging reads it beside the polled
copies and a record delivered but not (yet) polled reaches the marts all the same.

Per day the asset reads the day's landed deliveries (`raw/webhooks/deliveries`) and replaces every
delivered table's partition, empty ones included, with `carried_rows` of each delivery: the very
rows the sidecar can compute when it accepts the delivery. A carried record that cannot be
flattened goes to `dead_letter/webhooks/<source>__<entity>` with the reason. Polls never write
these tables and this asset never writes the polled ones: a poll run rewrites its partitions whole.
"""

import json
from collections import defaultdict
from datetime import date, datetime

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from cc_assets.partitions import daily_partitions, single_run_backfill
from cc_events.delivered import DELIVERED_TABLES, carried_rows
from cc_events.registry import RAW_TABLES
from resources.platform import PlatformResource
from resources.storage.lake import DeadLetter, Lake, raw_schema

DELIVERIES = RAW_TABLES["webhooks", "deliveries"]
DELIVERIES_KEY = AssetKey(["raw", DELIVERIES.source, DELIVERIES.entity])


def delivered_day(lake: Lake, day: date) -> tuple[dict[tuple[str, str], list[dict]], list[DeadLetter]]:
    """The rows the deliveries landed for `day` carry, by polled table, and the carried records
    that could not be used."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    dead: list[DeadLetter] = []
    deliveries = lake.read(("raw", DELIVERIES.source, DELIVERIES.entity), day)
    if deliveries is None:
        return rows, dead
    for delivery in deliveries.select(["id", "source", "event", "received_at", "_raw"]).to_pylist():
        payload = json.loads(delivery["_raw"]).get("payload")
        rejected: list[tuple[tuple[str, str], str, str]] = []
        for key, row in carried_rows(delivery["source"], delivery["event"], payload, delivery["received_at"],
                                     rejected):
            rows[key].append(row)
        dead.extend(DeadLetter(DELIVERIES.source, f"{source}__{entity}", f"carried by {delivery['id']}: {reason}", raw)
                    for (source, entity), reason, raw in rejected)
    return rows, dead


def _key(key: tuple[str, str]) -> AssetKey:
    table = DELIVERED_TABLES[key]
    return AssetKey(["raw", table.source, table.entity])


@multi_asset(
    name="delivered_records",
    specs=[
        AssetSpec(_key(key), description=table.description, deps=[DELIVERIES_KEY], group_name="raw_webhooks",
                  kinds={"parquet", "webhooks"},
                  metadata={"lake_path": f"lake/raw/{table.source}/{table.entity}/date=YYYY-MM-DD/part-0.parquet"})
        for key, table in DELIVERED_TABLES.items()
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def delivered_records(context: AssetExecutionContext, platform: PlatformResource):
    """Land, per day, the records that day's deliveries carried, one table per polled table."""
    lake = platform.lake()
    ingested_at = datetime.utcnow().replace(microsecond=0)
    counts = dict.fromkeys(DELIVERED_TABLES, 0)
    dead_counts: dict[str, int] = defaultdict(int)
    for partition_key in context.partition_keys:
        day = date.fromisoformat(partition_key)
        rows, dead = delivered_day(lake, day)
        for key, table in DELIVERED_TABLES.items():
            written = platform.land(("raw", table.source, table.entity), day, rows.get(key, []), raw_schema(table),
                                    ingested_at)
            counts[key] += written.rows
        by_table: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in dead:
            by_table[letter.entity].append(letter)
        for entity, letters in by_table.items():
            lake.write_dead_letters(DELIVERIES.source, entity, day, letters, ingested_at)
            dead_counts[entity] += len(letters)
    if dead_counts:
        context.log.warning("%d carried record(s) could not be used; see lake/dead_letter/webhooks/",
                            sum(dead_counts.values()))
    for key, table in DELIVERED_TABLES.items():
        # A range run records these on every partition it wrote: they describe the run.
        yield MaterializeResult(asset_key=_key(key), metadata={
            "rows_in_run": counts[key], "dead_letters_in_run": dead_counts[table.entity]})
