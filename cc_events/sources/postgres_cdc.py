"""The business database's changes by logical replication: raw rows in commit order, no event
(dbt reads the before/after images directly)."""

from __future__ import annotations

from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

RAW_TABLES = (
    RawTable("postgres_cdc", "changes", (
        col("commit_lsn", "str", required=True), col("seq", "int", required=True), col("lsn", "str"),
        col("xid", "int"), col("committed_at", "time", required=True), col("schema_name", "str", "schema"),
        col("table_name", "str", "table"), col("op", "str", required=True), col("before", "json"),
        col("after", "json"), col("reason", "str"),
    ), "Business database changes by logical replication, in commit order (before/after images)."),
)


SOURCE = Source("postgres_cdc", RAW_TABLES)
