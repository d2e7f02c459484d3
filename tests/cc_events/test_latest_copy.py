"""The latest-copy rule is written once in SQL (the dbt macro every staging model and the tier
moves use) and once in Python (the normalizer's context, the sidecar): both must keep the same copy."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from cc_events.latest import latest_copies
from resources.storage.tiers import macro


def _copies(seed: int) -> list[dict]:
    """Copies of 40 records, landed at a few ingest times into a few partitions, with ties on
    `_ingested_at` (one run writing two partitions) that only `_partition_date` breaks."""
    rng = random.Random(seed)
    runs = [datetime(2026, 12, 1, 10) + timedelta(minutes=15 * i) for i in range(4)]
    rows, seen = [], set()
    for n in range(40):
        for _ in range(rng.randint(1, 5)):
            at, day = rng.choice(runs), date(2026, 11, 28) + timedelta(days=rng.randint(0, 3))
            if (n, at, day) in seen:  # two copies equal on both would be a tie neither side can break
                continue
            seen.add((n, at, day))
            rows.append({"id": f"rec-{n}", "team": f"t{n % 3}", "name": f"name-{n}-{len(rows)}",
                         "_ingested_at": at, "_partition_date": day})
    rng.shuffle(rows)
    return rows


def _sql_pick(rows: list[dict], key) -> set[str]:
    rank = macro("latest_copy.sql", "latest_copy_rank")(key)
    with duckdb.connect() as con:
        con.register("copies", pa.Table.from_pylist(rows))
        return {r[0] for r in con.execute(
            f"select name from (select *, {rank} as copy_rank from copies) where copy_rank = 1").fetchall()}


def test_sql_and_python_keep_the_same_copy():
    for seed in range(5):
        rows = _copies(seed)
        picked = {r["name"] for r in latest_copies(rows)}
        assert picked == _sql_pick(rows, "id")
        assert len(picked) == 40


def test_composite_keys_agree_too():
    rows = _copies(7)
    assert {r["name"] for r in latest_copies(rows, ("team", "id"))} == _sql_pick(rows, ["team", "id"])


def test_the_later_partition_breaks_a_tie_on_ingest_time():
    at = datetime(2026, 12, 1, 10)
    rows = [{"id": "team-1", "name": "older day", "_ingested_at": at, "_partition_date": date(2026, 11, 30)},
            {"id": "team-1", "name": "newer day", "_ingested_at": at, "_partition_date": date(2026, 12, 1)},
            {"id": "team-1", "name": "stale run", "_ingested_at": at - timedelta(hours=1),
             "_partition_date": date(2026, 12, 2)}]
    for order in (rows, rows[::-1]):
        assert [r["name"] for r in latest_copies(order)] == ["newer day"]
        assert _sql_pick(order, "id") == {"newer day"}
