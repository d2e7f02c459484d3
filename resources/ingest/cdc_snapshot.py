"""The CDC source's initial snapshot: the published tables as of the slot's exported snapshot.

Read in chunks through server-side cursors inside the REPEATABLE READ transaction that imported
the slot's snapshot, so every row is in exactly one of the snapshot and the stream.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.adapt
from psycopg import sql

from resources.ingest.pgoutput import decode_value, format_lsn, make_change, raw_json


class _TextLoader(psycopg.adapt.Loader):
    def load(self, data: Any) -> str:
        return bytes(data).decode()


class Snapshot:
    """The published tables as of the slot's exported snapshot, read in chunks."""

    def __init__(self, conn: psycopg.Connection, lsn: int, taken_at: str,
                 tables: list[tuple[str, str]], expected: frozenset[tuple[str, str]] | None) -> None:
        self.conn, self.lsn, self.taken_at = conn, lsn, taken_at
        self.pending, self.expected = list(tables), expected
        self.seq = 0
        self._cursor: psycopg.ServerCursor | None = None
        self._table: tuple[str, str] | None = None
        self._columns: list[tuple[str, int]] = []

    @property
    def done(self) -> bool:
        return self._cursor is None and not self.pending

    def read(self, max_rows: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < max_rows and not self.done:
            if self._cursor is None:
                self._open(self.pending.pop(0))
            assert self._cursor is not None and self._table is not None
            rows = self._cursor.fetchmany(max_rows - len(out))
            if not rows:
                self._cursor.close()
                self._cursor = None
                continue
            schema, table = self._table
            unexpected = self.expected is not None and self._table not in self.expected
            for row in rows:
                if unexpected:
                    change = make_change(
                        "snapshot", lsn=self.lsn, schema=schema, table=table,
                        raw=raw_json(columns=[[n, t] for n, t in self._columns], values=list(row)),
                        reason=f"table {schema}.{table} is not one of the expected tables")
                else:
                    change = make_change("snapshot", lsn=self.lsn, schema=schema, table=table, after={
                        name: None if text is None else decode_value(type_oid, text)
                        for (name, type_oid), text in zip(self._columns, row, strict=True)})
                change.update(commit_lsn=format_lsn(self.lsn), committed_at=self.taken_at, seq=self.seq)
                self.seq += 1
                out.append(change)
        if self.done:
            self.conn.rollback()
            self.conn.close()
        return out

    def _open(self, table: tuple[str, str]) -> None:
        # The same columns pgoutput publishes: generated columns are not replicated.
        self._columns = [(name, int(oid)) for name, oid in self.conn.execute(
            "select attname, atttypid from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped and attgenerated = ''"
            " order by attnum", (sql.Identifier(*table).as_string(self.conn),)).fetchall()]
        query = sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(sql.Identifier(n) for n, _ in self._columns), sql.Identifier(*table))
        self._table = table
        self._cursor = self.conn.cursor(name=f"cc_cdc_snapshot_{self.seq}")
        # Each type's output function, as pgoutput uses it: a `::text` cast differs for some
        # types (bool prints `true`, inet adds its netmask).
        for _, type_oid in self._columns:
            self._cursor.adapters.register_loader(type_oid, _TextLoader)
        self._cursor.execute(query)
