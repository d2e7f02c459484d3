"""Raw partitions loaded into a real Postgres: idempotent per partition, atomic on failure."""

import uuid
from datetime import date, datetime

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from cc_events.registry import RAW_TABLES
from resources.storage.lake import raw_schema
from resources.storage.postgres import PostgresWarehouse

pytestmark = pytest.mark.postgres

SCHEMA = raw_schema(RAW_TABLES["linear", "teams"])


def partition(day: date, *keys: str) -> pa.Table:
    return pa.Table.from_pylist([
        {"id": f"id-{k}", "key": k, "name": k.title(), "_raw": "{}", "_partition_date": day,
         "_ingested_at": datetime(2026, 11, 20, 12)} for k in keys
    ], schema=SCHEMA)


@pytest.fixture
def warehouse(pg_database) -> PostgresWarehouse:
    # A schema of its own: the session's database is shared with the pipeline tests.
    return PostgresWarehouse(pg_database, schema=f"raw_{uuid.uuid4().hex[:8]}")


def rows(warehouse: PostgresWarehouse) -> list[tuple]:
    query = sql.SQL("select _partition_date, key from {} order by 1, 2").format(
        sql.Identifier(warehouse.schema, "linear__teams"))
    with warehouse.connect() as conn:
        return conn.execute(query).fetchall()


def test_load_is_idempotent_per_partition(warehouse):
    d1, d2 = date(2026, 11, 19), date(2026, 11, 20)
    warehouse.load_partition("linear__teams", d1, partition(d1, "ENG", "OPS"))
    warehouse.load_partition("linear__teams", d2, partition(d2, "ENG"))
    warehouse.load_partition("linear__teams", d1, partition(d1, "ENG", "OPS", "DATA"))
    assert rows(warehouse) == [(d1, "DATA"), (d1, "ENG"), (d1, "OPS"), (d2, "ENG")]


def test_failed_load_keeps_previous_rows(warehouse):
    day = date(2026, 11, 21)
    warehouse.load_partition("linear__teams", day, partition(day, "ENG"))
    # Postgres refuses NUL in text halfway through the COPY, after the partition's delete ran.
    with pytest.raises(psycopg.Error):
        warehouse.load_partition("linear__teams", day, partition(day, "OPS", "BAD\x00KEY"))
    assert [r for r in rows(warehouse) if r[0] == day] == [(day, "ENG")]
