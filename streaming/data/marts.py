"""Reading the warm marts: the serving snapshot on DuckDB, or the dbt schema on Postgres.

- `DuckDBSnapshot` reads the serving snapshot (`resources/storage/serving.py`), never the warehouse file
  that dbt holds open while it builds; `PostgresMarts` reads `CC_PG_SCHEMA` directly.
  Both take SQL with `%(name)s` parameters: every filter is a bound value, never SQL text.
- `plain` and `json_value` turn the values they give back into JSON-ready Python.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from resources.storage.history import ENGINE
from resources.storage.serving import snapshot_path
from resources.settings import Settings

Row = dict[str, Any]

_PARAM = re.compile(r"%\((\w+)\)s")


class MartsUnavailable(RuntimeError):
    """No dbt build has been served yet (no snapshot, or the marts do not exist)."""


class WarehouseUnreachable(MartsUnavailable):
    """The warehouse holding the marts cannot be reached (Postgres down or restarting): unlike no
    build yet, the live state alone is no answer, since the built workflows exist and are missing."""



class Marts(Protocol):
    def version(self) -> str | None:
        """Changes whenever the marts were rebuilt; None while there are none."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def in_list(self, column: str, param: str) -> str:
        """A condition `column` is one of the list bound to `param`."""

    def close(self) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DuckDBSnapshot:
    """The serving snapshot file, read through the process's one DuckDB (`resources.storage.history.ENGINE`),
    which attaches each new version the build swaps in.

    Not `duckdb.connect(path)`: DuckDB's instance cache hands back the database of the file that
    was at `path` while anything in the process still holds it, so after the first build a
    long-running sidecar kept answering from the snapshot it had opened first."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> str | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        with ENGINE.snapshot(self.path) as snapshot:
            if snapshot is None:
                raise MartsUnavailable(f"no serving snapshot at {self.path} yet: run a dbt build (transform_job)")
            cursor, _tables = snapshot
            cursor.execute(_PARAM.sub(r"$\1", sql), params or {})
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def in_list(self, column: str, param: str) -> str:
        # Not `list_contains(list, column)`: a function call per row, where `= any` is a join
        # against the list (50 workflows' events out of 10.8M rows: 224 against 431 ms).
        return f"{column} = any(%({param})s)"

    def close(self) -> None:
        pass


class PostgresMarts:
    """The dbt schema on Postgres, through a few pooled autocommit connections."""

    def __init__(self, url: str, schema: str, pool_size: int = 4, check_every_s: float = 1.0) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.url, self.schema = url, schema
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._check_every_s = check_every_s
        self._checked_at = 0.0
        self._version: str | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5,
                               options=f"-c search_path={self.schema}")

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg

        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                raise
            else:
                self._pool.put(conn)

    def _drop_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def version(self) -> str | None:
        now = time.monotonic()
        if now - self._checked_at < self._check_every_s:
            return self._version
        with self._lock:
            if now - self._checked_at >= self._check_every_s:
                # Every build rewrites the one-row overview with its own as-of time.
                try:
                    rows = self._query("select as_of_at from dashboard_overview")
                    self._version = str(rows[0]["as_of_at"]) if rows else None
                except MartsUnavailable:
                    self._version = None
                self._checked_at = now
        return self._version

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        """A read; one that failed on a pooled connection (Postgres restarted since it was pooled,
        which broke the others too) is read again on a fresh one. Unreachable is `MartsUnavailable`."""
        import psycopg

        try:
            try:
                with self._conn() as conn:
                    return list(conn.execute(sql, params or {}).fetchall())
            except psycopg.errors.QueryCanceled:
                raise  # the query's own fault (a timeout): not worth a second try
            except psycopg.OperationalError:
                self._drop_pool()
                with self._slots:
                    conn = self._connect()
                    try:
                        rows = list(conn.execute(sql, params or {}).fetchall())
                    except BaseException:
                        conn.close()
                        raise
                    self._pool.put(conn)
                    return rows
        except psycopg.errors.UndefinedTable as exc:
            raise MartsUnavailable(f"the marts are not built in schema {self.schema} yet: {exc}") from exc
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.OperationalError as exc:
            raise WarehouseUnreachable(f"the warehouse is unavailable: {exc}".splitlines()[0]) from exc

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return self._query(sql, params)

    def in_list(self, column: str, param: str) -> str:
        return f"{column} = any(%({param})s)"

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def marts_from_settings(settings: Settings) -> Marts:
    if settings.warehouse == "postgres":
        return PostgresMarts(settings.pg_url, settings.pg_schema)
    return DuckDBSnapshot(snapshot_path(settings))



def plain(value: Any) -> Any:
    """Warehouse values as JSON-ready Python: Decimal -> float; JSON text stays text."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def json_value(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


def iso(ts: datetime | None) -> str | None:
    """A time as the API writes it: UTC, ISO 8601 with a `Z`."""
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat() + "Z"


def where(conditions: list[str]) -> str:
    return (" where " + " and ".join(conditions)) if conditions else ""
