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


# Values a CSV stream could get wrong: NULL next to '', quotes, the delimiter, newlines (also a
# line holding only `\.`, COPY's end-of-data mark), backslashes, `\N`, unicode, the int64 ends,
# doubles that only print exactly in their shortest form, and timestamps to the microsecond.
AWKWARD_TEXT = [None, "", '"', 'say "hi", then go', "a,b", "one\ntwo", "crlf\r\nline", "\\", "\\N", "NULL",
                "a\n\\.\nb", "\\.", "é 漢字 🙂", "  padded  ", "{\"json\": [1, \"x\"]}"]
AWKWARD_SCHEMA = pa.schema([
    pa.field("id", pa.int64()), pa.field("text", pa.string()), pa.field("big", pa.int64()),
    pa.field("ratio", pa.float64()), pa.field("at", pa.timestamp("us")), pa.field("on", pa.date32()),
    pa.field("_partition_date", pa.date32()),
])


def awkward_partition(day: date) -> pa.Table:
    n = len(AWKWARD_TEXT)
    bigs = [None, 0, 2**63 - 1, -(2**63), 2**53 + 1]
    ratios = [None, 0.1, 1 / 3, 1e300, 5e-324, -0.0, float("inf"), float("-inf"), float("nan"), 123456789.123456789]
    ats = [None, datetime(2026, 11, 20, 23, 59, 59, 999999), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59),
           datetime(2026, 1, 1, 0, 0, 0, 1)]
    ons = [None, date(1, 1, 1), date(9999, 12, 31), date(2026, 2, 28)]
    return pa.table({
        "id": list(range(n)), "text": AWKWARD_TEXT, "big": [bigs[i % len(bigs)] for i in range(n)],
        "ratio": [ratios[i % len(ratios)] for i in range(n)], "at": [ats[i % len(ats)] for i in range(n)],
        "on": [ons[i % len(ons)] for i in range(n)], "_partition_date": [day] * n,
    }, schema=AWKWARD_SCHEMA)


def test_awkward_values_round_trip_exactly_and_a_rerun_replaces(warehouse):
    day = date(2026, 11, 22)
    data = awkward_partition(day)
    warehouse.load_partition("awkward", day, data)
    warehouse.load_partition("awkward", day, data)  # a re-run of the same partition
    query = sql.SQL("select id, text, big, ratio, at, {}, _partition_date from {} order by id").format(
        sql.Identifier("on"), sql.Identifier(warehouse.schema, "awkward"))
    with warehouse.connect() as conn:
        back = conn.execute(query).fetchall()
    expected = [tuple(row.values()) for row in data.to_pylist()]
    assert len(back) == len(expected)
    for got, want in zip(back, expected, strict=True):
        # repr tells -0.0 from 0.0 and shows every digit of a double; text compares byte for byte.
        assert repr(got) == repr(want)
    assert [r[1] for r in back].count(None) == 1 and [r[1] for r in back].count("") == 1


def test_a_partition_larger_than_one_copy_chunk_loads_whole(warehouse, monkeypatch):
    monkeypatch.setattr("resources.storage.postgres.COPY_CHUNK_ROWS", 4)
    day = date(2026, 11, 23)
    warehouse.load_partition("linear__teams", day, partition(day, *(f"K{i}" for i in range(10))))
    assert sorted(r[1] for r in rows(warehouse) if r[0] == day) == sorted(f"K{i}" for i in range(10))


def test_a_column_added_to_the_contract_arrives_as_a_new_nullable_column(warehouse):
    d1, d2 = date(2026, 11, 24), date(2026, 11, 25)
    warehouse.load_partition("linear__teams", d1, partition(d1, "ENG"))
    wider = partition(d2, "OPS").append_column("color", pa.array(["#fff"]))
    warehouse.load_partition("linear__teams", d2, wider)
    query = sql.SQL("select key, color from {} where _partition_date >= %s order by 1").format(
        sql.Identifier(warehouse.schema, "linear__teams"))
    with warehouse.connect() as conn:
        assert conn.execute(query, (d1,)).fetchall() == [("ENG", None), ("OPS", "#fff")]
