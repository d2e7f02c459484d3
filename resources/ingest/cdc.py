"""Postgres change data capture by logical replication: the built-in `pgoutput` plugin, protocol 1.

`CdcReader` turns a publication's tables into an ordered stream of change dicts: first an initial
snapshot, then every insert, update, delete and truncate in commit order.

- No gap, no overlap: the slot is created with `EXPORT_SNAPSHOT` and the snapshot is read in a
  REPEATABLE READ transaction that imports exactly that snapshot. Every transaction committed
  before the slot's consistent point is in the snapshot, every later one is in the stream.
- Exactly once: every change has a position `(commit_lsn, seq)` (`commit_lsn` is the end LSN of
  its transaction's commit record, `seq` its place in the transaction; snapshot rows share the
  slot's consistent point). `confirm(batch)` is called once the batch is durably landed: it
  writes the position to a `CursorStore` (atomic, fsynced) and only then tells the server that
  the slot may drop the WAL. On restart the slot resends from its confirmed LSN, which may be
  behind the cursor, and every change at or before the cursor is skipped. A lander that can name
  its own last landed position (`landed=`) closes the remaining window, a crash between
  landing and confirming.
- A snapshot interrupted before its last batch was confirmed cannot be resumed (its snapshot is
  gone), so the slot is recreated and a fresh snapshot starts with `Batch.reset` set: the lander
  discards what it landed from this slot before. The same happens when the slot disappeared.

Values come from pgoutput's text format, typed by the column's type OID: integers as int, float
types as float, bool as bool, numeric (and everything else) as the exact text Postgres printed,
timestamps as ISO 8601 (timestamptz in UTC), json/jsonb as JSON text, SQL NULL as None.
Changes to tables outside the expected list, or to a relation the stream never described, are
kept raw (`raw` JSON text, `reason`) in their place in the stream.
"""


from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import psycopg
import psycopg.adapt
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg import sql

from resources.ingest.cdc_snapshot import Snapshot
from resources.ingest.pgoutput import PgOutputDecoder, Position, format_lsn, parse_lsn
from resources.storage.cursors import CursorStore

log = logging.getLogger(__name__)

PLUGIN = "pgoutput"
# Both connections print values the same way, so snapshot rows and streamed rows are alike.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=3"


# --- the reader ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """Changes in commit order, whole transactions only (one larger than `max_changes` comes alone)."""

    number: int
    changes: list[dict[str, Any]]
    position: Position | None  # the last change's position; None when the batch has none
    flush_lsn: int | None  # once landed, the slot may release WAL up to here
    reset: bool = False  # a fresh snapshot starts: discard what was landed from this slot before
    snapshot_done: bool = False  # the batch that completes the initial snapshot


def _qualified(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


class CdcReader:
    """Snapshot, then the change stream of one publication through one logical replication slot.

    Use as a context manager (or `open()` / `close()`); call `read_batch`, land the batch
    durably, then `confirm` it. Batches are confirmed in the order they were read.
    """

    def __init__(
        self,
        dsn: str,
        slot: str,
        publication: str,
        cursors: CursorStore,
        *,
        tables: Sequence[str] | None = None,
        cursor_key: str | None = None,
        landed: Position | None = None,
        status_interval_s: float = 10.0,
        busy_timeout_s: float = 30.0,
        connect_timeout_s: int = 10,
    ) -> None:
        """`tables` ("schema.table" or "table" for public) are the ones expected: changes to any
        other published table are kept raw. `landed` is the lander's own last durably landed
        position, when it can tell (it wins over an older cursor)."""
        self.dsn, self.slot, self.publication, self.cursors = dsn, slot, publication, cursors
        self.tables = None if tables is None else [_qualified(t) for t in tables]
        self.cursor_key = cursor_key or f"postgres_cdc/{slot}"
        self.landed = landed
        self.status_interval_s = status_interval_s
        self.busy_timeout_s = busy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        expected = None if self.tables is None else frozenset(self.tables)
        self._decoder = PgOutputDecoder(expected)
        self._expected = expected
        self._state: dict[str, Any] = {}
        self._repl: Any = None  # psycopg2 LogicalReplicationConnection
        self._cur: Any = None  # its ReplicationCursor, once streaming
        self._snapshot: Snapshot | None = None
        self._reset = False
        self._last: Position | None = None  # last position handed out (or already landed)
        self._start_lsn = 0
        self._read_number = 0
        self._confirmed_number = 0
        self._confirmed_flush = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> CdcReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        with self._connect() as conn:
            self._ensure_publication(conn)
            slot = conn.execute(
                "select plugin, database = current_database() from pg_replication_slots where slot_name = %s",
                (self.slot,)).fetchone()
        if slot is not None and (slot[0] != PLUGIN or not slot[1]):
            raise ValueError(f"replication slot {self.slot!r} exists with plugin {slot[0]} "
                             "or in another database")
        state = self.cursors.get(self.cursor_key)
        if slot is not None and state and state.get("snapshot_done"):
            self._resume(state)
            return
        if state and slot is None:
            log.warning("slot %s is gone: a fresh snapshot replaces what was landed", self.slot)
        elif state:
            log.warning("slot %s: the initial snapshot was interrupted; taking a fresh one", self.slot)
        if slot is not None:
            self._drop_slot()
        self._create_slot(reset=state is not None or self.landed is not None)

    def close(self) -> None:
        """Close the connections; the slot stays and keeps its WAL for the next reader."""
        if self._snapshot is not None and not self._snapshot.conn.closed:
            self._snapshot.conn.close()
        self._snapshot = None
        self._close_replication()

    def drop(self) -> None:
        """Close, drop the slot and forget the cursor: the next reader starts with a fresh snapshot."""
        self.close()
        self._drop_slot()
        self.cursors.delete(self.cursor_key)

    # -- reading ------------------------------------------------------------------------------

    @property
    def position(self) -> Position | None:
        """The last position read (not necessarily confirmed)."""
        return self._last

    @property
    def in_snapshot(self) -> bool:
        """The initial snapshot is still being read (it is not resumable mid-way: finish it)."""
        return self._snapshot is not None

    @property
    def confirmed_lsn(self) -> int:
        return self._confirmed_flush

    def read_batch(self, max_changes: int = 1000, timeout_s: float = 1.0) -> Batch:
        """Up to about `max_changes` changes; waits at most `timeout_s` for the first one, then
        returns as soon as no further message is waiting."""
        number = self._read_number + 1
        if self._snapshot is not None:
            snapshot, reset = self._snapshot, self._reset
            changes = snapshot.read(max_changes)
            self._reset = False
            done = snapshot.done
            if done:
                self._snapshot = None
            if changes:
                self._last = Position.of(changes[-1])
            batch = Batch(number, changes, self._last if changes else None, snapshot.lsn if done else None,
                          reset=reset, snapshot_done=done)
        else:
            if self._cur is None:
                self._start_streaming()
            changes, flush = self._read_stream(max_changes, timeout_s)
            batch = Batch(number, changes, Position.of(changes[-1]) if changes else None, flush)
        self._read_number = number
        return batch

    def confirm(self, batch: Batch) -> None:
        """The batch is durably landed: persist its position, then let the slot release its WAL."""
        if batch.number != self._confirmed_number + 1:
            raise ValueError(f"confirm batches in the order read: expected {self._confirmed_number + 1}, "
                             f"got {batch.number}")
        state = dict(self._state)
        if batch.position is not None:
            state.update(commit_lsn=format_lsn(batch.position.lsn), seq=batch.position.seq)
        if batch.flush_lsn is not None and batch.flush_lsn > self._confirmed_flush:
            state["flush_lsn"] = format_lsn(batch.flush_lsn)
        if batch.snapshot_done:
            state["snapshot_done"] = True
        if state != self._state:
            self.cursors.set(self.cursor_key, state)
            self._state = state
        self._confirmed_number = batch.number
        if batch.flush_lsn is not None and batch.flush_lsn > self._confirmed_flush:
            self._confirmed_flush = batch.flush_lsn
            if self._cur is not None:
                try:
                    self._cur.send_feedback(write_lsn=batch.flush_lsn, flush_lsn=batch.flush_lsn, force=True)
                except psycopg2.Error as exc:
                    # The cursor is durable already; the next connection sends this position.
                    log.warning("feedback to slot %s failed (%s); reconnecting on the next read", self.slot, exc)
                    self._close_replication()

    # -- internals ----------------------------------------------------------------------------

    def _connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=kwargs.pop("autocommit", True), options=SESSION_OPTIONS,
                               connect_timeout=self.connect_timeout_s, **kwargs)

    def _connect_replication(self) -> Any:
        return psycopg2.connect(self.dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection,
                                options=SESSION_OPTIONS, connect_timeout=self.connect_timeout_s,
                                application_name=f"cc_cdc_{self.slot}")

    def _ensure_publication(self, conn: psycopg.Connection) -> None:
        if conn.execute("select 1 from pg_publication where pubname = %s", (self.publication,)).fetchone():
            if self.tables:
                published = set(conn.execute(
                    "select schemaname, tablename from pg_publication_tables where pubname = %s",
                    (self.publication,)).fetchall())
                missing = [f"{s}.{t}" for s, t in self.tables if (s, t) not in published]
                if missing:
                    log.warning("publication %s does not publish %s", self.publication, ", ".join(missing))
            return
        name = sql.Identifier(self.publication)
        if self.tables:
            targets = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in self.tables)
            conn.execute(sql.SQL("create publication {} for table {}").format(name, targets))
        else:
            conn.execute(sql.SQL("create publication {} for all tables").format(name))
        for schema, table in self.tables or []:
            identity = conn.execute("select relreplident from pg_class where oid = %s::regclass",
                                    (sql.Identifier(schema, table).as_string(conn),)).fetchone()
            if identity and identity[0] != "f":
                log.warning("%s.%s lacks REPLICA IDENTITY FULL: updates and deletes carry no full old row",
                            schema, table)

    def _create_slot(self, reset: bool) -> None:
        repl = self._connect_replication()
        try:
            cur = repl.cursor()
            cur.execute(f"CREATE_REPLICATION_SLOT {psycopg2.extensions.quote_ident(self.slot, cur)} "
                        f"LOGICAL {PLUGIN} EXPORT_SNAPSHOT")
            _, consistent_point, snapshot_name, _ = cur.fetchone()
            # The exported snapshot lives until this connection runs its next command: import it now.
            snap = self._connect(autocommit=False)
            snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snap.read_only = True
            snap.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot_name)))
        except BaseException:
            repl.close()
            raise
        taken_at = snap.execute("select now()").fetchone()[0].astimezone(UTC).isoformat()
        tables = [tuple(r) for r in snap.execute(
            "select schemaname, tablename from pg_publication_tables where pubname = %s order by 1, 2",
            (self.publication,)).fetchall()]
        lsn = parse_lsn(consistent_point)
        self._state = {"slot": self.slot, "snapshot_lsn": format_lsn(lsn), "snapshot_done": False,
                       "commit_lsn": None, "seq": None, "flush_lsn": None}
        # Recorded before any row is handed out, so a crash from here on is seen as an
        # interrupted snapshot (and the next one is flagged `reset`).
        self.cursors.set(self.cursor_key, self._state)
        self._repl, self._snapshot, self._reset = repl, Snapshot(snap, lsn, taken_at, tables, self._expected), reset
        self._start_lsn = lsn
        self._last = Position(lsn, -1)
        log.info("slot %s created at %s; snapshot of %d tables", self.slot, format_lsn(lsn), len(tables))

    def _resume(self, state: dict[str, Any]) -> None:
        self._state = dict(state)
        snapshot_lsn = parse_lsn(state["snapshot_lsn"])
        last = Position(snapshot_lsn, -1)
        if state.get("commit_lsn"):
            last = Position(parse_lsn(state["commit_lsn"]), state["seq"])
        if self.landed is not None and self.landed > last and self.landed.lsn >= snapshot_lsn:
            last = self.landed
        self._last = last
        self._start_lsn = parse_lsn(state["flush_lsn"]) if state.get("flush_lsn") else snapshot_lsn
        self._confirmed_flush = self._start_lsn
        log.info("slot %s resumes from %s, skipping up to %s", self.slot, format_lsn(self._start_lsn), last)

    def _start_streaming(self) -> None:
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            repl, self._repl = self._repl or self._connect_replication(), None
            cur = repl.cursor()
            try:
                cur.start_replication(slot_name=self.slot, decode=False, start_lsn=self._start_lsn,
                                      options={"proto_version": "1", "publication_names": self.publication},
                                      status_interval=self.status_interval_s)
                break
            except psycopg2.errors.ObjectInUse:
                # The walsender of a killed reader may hold the slot for a moment.
                repl.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._repl, self._cur = repl, cur
        self._decoder.discard_open_transaction()
        if self._confirmed_flush:
            cur.send_feedback(write_lsn=self._confirmed_flush, flush_lsn=self._confirmed_flush, force=True)

    def _drop_slot(self) -> None:
        drop_slot(self.dsn, self.slot, self.busy_timeout_s)

    def _close_replication(self) -> None:
        if self._repl is not None:
            with contextlib.suppress(psycopg2.Error):
                self._repl.close()
        self._repl = self._cur = None
        self._start_lsn = max(self._start_lsn, self._confirmed_flush)

    def _read_stream(self, max_changes: int, timeout_s: float) -> tuple[list[dict[str, Any]], int | None]:
        deadline = time.monotonic() + timeout_s
        out: list[dict[str, Any]] = []
        flush: int | None = None
        last = self._last
        reconnected = False
        try:
            while len(out) < max_changes:
                try:
                    msg = self._cur.read_message()
                except (psycopg2.DatabaseError, psycopg2.InterfaceError) as exc:
                    # A dropped connection (e.g. wal_sender_timeout while the caller landed slowly):
                    # resume from the confirmed position; what was read already is skipped. A
                    # terminated walsender can surface as a bare DatabaseError ("error with status
                    # PGRES_COPY_BOTH and no message from the libpq"), not only OperationalError;
                    # a second failure in a row is raised.
                    if reconnected:
                        raise
                    log.warning("replication connection for %s lost (%s); reconnecting", self.slot, exc)
                    self._close_replication()
                    self._start_streaming()
                    reconnected = True
                    continue
                if msg is None:
                    remaining = deadline - time.monotonic()
                    if out or remaining <= 0:
                        break
                    select.select([self._cur.connection], [], [], min(remaining, self.status_interval_s))
                    continue
                txn = self._decoder.feed(msg.payload, msg.data_start)
                if txn is None:
                    continue
                flush = txn.end_lsn
                for change in txn.changes:
                    position = Position(txn.end_lsn, change["seq"])
                    if last is None or position > last:
                        out.append(change)
                        last = position
        except BaseException:
            # Nothing of this read was handed out: the next read starts over from the confirmed
            # position on a fresh connection.
            self._close_replication()
            raise
        self._last = last
        return out, flush


def drop_slot(dsn: str, slot: str, timeout_s: float = 30.0) -> bool:
    """Drop a replication slot if it exists, waiting for its walsender to let go; True if dropped."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            try:
                row = conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                                   " where slot_name = %s", (slot,)).fetchone()
                return row is not None
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
