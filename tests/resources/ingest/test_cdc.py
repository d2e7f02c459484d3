"""Postgres CDC against a real, throwaway logical-replication cluster: snapshot + stream without gap
or overlap, commit order with before/after, unknown tables kept raw, and exactly-once resume
after the reader is killed. Also the cursor store every source keeps its position in.

Run as a script (`python test_cdc.py '<json>'`) this module is the lander the kill tests kill.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from resources.ingest.cdc import Batch, CdcReader, drop_slot
from resources.ingest.pgoutput import PgOutputDecoder, Position, decode_value, parse_lsn
from resources.storage.cursors import CursorStore
from sandbox.pg_cluster import find_pg_bin, throwaway_cluster
from sandbox.source_db import KEYS, TABLES, ChangeGenerator, setup_source_db

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SNAPSHOT_ROWS = 146  # the seed's rows: 40 todos, 6 system_state, 60 trades, 40 signals


# --- fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """A logical-replication cluster for this module; outside CI missing binaries skip, in CI they fail."""
    if find_pg_bin() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl, postgres) for a wal_level=logical cluster"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the CDC tests: {reason}")
        pytest.skip(reason)
    with throwaway_cluster(tmp_path_factory.mktemp("pg")) as dsn:
        yield dsn


@pytest.fixture
def source(cluster) -> str:
    """A fresh database with the seeded business schema; its DSN."""
    name = f"cdc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = f"{cluster.rsplit('/', 1)[0]}/{name}"
    setup_source_db(dsn)
    return dsn


@pytest.fixture
def cursors(tmp_path) -> CursorStore:
    return CursorStore(tmp_path / "cursors.json")


def key_of(table: str, row: dict[str, Any]) -> Any:
    return row[KEYS[table]]


class Replica:
    """Applies changes strictly: an insert of a present key, or an update or delete whose `before`
    differs from the replica's row, fails. A gap or an overlap between snapshot and stream, a
    duplicate or a change out of order therefore cannot go unnoticed."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, dict[str, Any]]] = {t: {} for t in TABLES}

    def apply(self, change: dict[str, Any]) -> None:
        assert change["reason"] is None, change
        rows = self.tables[change["table"]]
        op, before, after = change["op"], change["before"], change["after"]
        if op in ("snapshot", "insert"):
            key = key_of(change["table"], after)
            assert key not in rows, f"{op} of an existing row: {change}"
            rows[key] = after
        elif op == "update":
            key = key_of(change["table"], before)
            assert rows.get(key) == before, f"update whose before is not the current row: {change}"
            del rows[key]
            rows[key_of(change["table"], after)] = after
        elif op == "delete":
            key = key_of(change["table"], before)
            assert rows.pop(key, None) == before, f"delete whose before is not the current row: {change}"
        elif op == "truncate":
            rows.clear()
        else:
            raise AssertionError(f"unexpected op {op}")


def source_state(dsn: str) -> dict[str, dict[Any, dict[str, Any]]]:
    """The tables as they are now, typed the way the reader types them."""
    state = {}
    with psycopg.connect(dsn, options="-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3") as conn:
        for table in TABLES:
            cols = conn.execute(
                "select attname, atttypid from pg_attribute where attrelid = %s::regclass and attnum > 0"
                " and not attisdropped order by attnum", (table,)).fetchall()
            result = conn.execute(sql.SQL("select * from {}").format(sql.Identifier(table))).pgresult
            rows = {}
            for i in range(result.ntuples):  # the raw text of each value, as the server printed it
                texts = [result.get_value(i, j) for j in range(len(cols))]
                row = {c: None if v is None else decode_value(int(t), v.decode())
                       for (c, t), v in zip(cols, texts, strict=True)}
                rows[key_of(table, row)] = row
            state[table] = rows
    return state


def drain(reader: CdcReader, until: Any, timeout_s: float = 20.0, max_changes: int = 500) -> list[dict[str, Any]]:
    """Read and confirm batches until `until(changes_so_far)` holds."""
    changes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while not until(changes):
        assert time.monotonic() < deadline, f"stream stalled after {len(changes)} changes"
        batch = reader.read_batch(max_changes, timeout_s=0.2)
        changes.extend(batch.changes)
        reader.confirm(batch)
    return changes


def read_snapshot(reader: CdcReader, max_changes: int = 500) -> list[Batch]:
    batches = []
    while not (batches and batches[-1].snapshot_done):
        batches.append(reader.read_batch(max_changes))
        reader.confirm(batches[-1])
    return batches


# --- snapshot + stream ------------------------------------------------------------------------------

def test_snapshot_and_stream_rebuild_the_final_state_while_writes_race_the_slot(source, cursors):
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with ChangeGenerator(source, seed=3) as gen:
                while not stop.is_set():
                    gen.step()
                    time.sleep(0.001)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.3)  # the slot is created and the snapshot taken while transactions commit
        with CdcReader(source, "race", "race_pub", cursors, tables=TABLES) as reader:
            snapshot = [c for b in read_snapshot(reader) for c in b.changes]
            time.sleep(0.3)
            stop.set()
            writer.join()
            assert not errors, errors
            with psycopg.connect(source) as conn:  # a last, known change: everything before it arrived
                conn.execute("insert into system_state values ('test.done', '{}', now())")
            stream = drain(reader, lambda cs: any(c["after"] and c["after"].get("key") == "test.done" for c in cs))
    finally:
        stop.set()
        writer.join()

    assert {c["op"] for c in snapshot} == {"snapshot"} and len(stream) > 50
    replica = Replica()
    for change in snapshot + stream:
        replica.apply(change)
    assert replica.tables == source_state(source)
    positions = [Position.of(c) for c in snapshot + stream]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_changes_arrive_in_commit_order_with_typed_before_and_after(source, cursors):
    with CdcReader(source, "order", "order_pub", cursors, tables=TABLES) as reader:
        snapshot = {(c["table"], key_of(c["table"], c["after"])): c["after"]
                    for b in read_snapshot(reader) for c in b.changes}
        with psycopg.connect(source) as a, psycopg.connect(source) as b, psycopg.connect(source) as c:
            a.execute("insert into todos values (1001, 'Interleaved', 'todo', 'ada', 1, true, '2026-11-10',"
                      " '2026-11-05 10:00:00.123456+02', '2026-11-05 10:00:00.123456+02')")
            b.execute("update todos set status = 'done', assignee = null where id = 1")
            b.commit()  # commits first although it started writing after `a`
            a.execute("update todos set priority = 4, is_blocked = false where id = 1001")
            a.commit()
            c.execute("delete from trades where id = 2")
            c.commit()
            c.execute("insert into trades values (9001, 'SPY', 'buy', 1.5, 512.25, null, '2026-11-06 15:30:00+00', 'paper')")
            c.execute("""update system_state set value = '{"b": [1, 2], "a": null}' where key = 'bot.version'""")
            c.execute("insert into signals values (9001, 'QQQ', 'hold', 0.125, '2026-11-06 15:31:00+00')")
            c.commit()
            # A TOASTed value survives an update that does not touch it (the old row carries it).
            c.execute("update todos set title = (select string_agg(md5(i::text), '') from generate_series(1, 400) i)"
                      " where id = 3")
            c.commit()
            c.execute("update todos set status = 'in_progress' where id = 3")
            c.commit()
        stream = drain(reader, lambda cs: len(cs) >= 9)

    got = [(ch["table"], ch["op"], key_of(ch["table"], ch["before"] or ch["after"])) for ch in stream]
    assert got == [("todos", "update", 1), ("todos", "insert", 1001), ("todos", "update", 1001),
                   ("trades", "delete", 2), ("trades", "insert", 9001), ("system_state", "update", "bot.version"),
                   ("signals", "insert", 9001), ("todos", "update", 3), ("todos", "update", 3)]
    update_1, insert_1001, update_1001, delete_2, trade, state, signal_, _, toast = stream

    # Commit order, not WAL order: `a`'s insert was written before `b`'s update.
    assert parse_lsn(insert_1001["lsn"]) < parse_lsn(update_1["lsn"])
    assert parse_lsn(update_1["commit_lsn"]) < parse_lsn(insert_1001["commit_lsn"])
    assert (insert_1001["xid"], insert_1001["seq"], update_1001["seq"]) == (update_1001["xid"], 0, 1)
    assert insert_1001["commit_lsn"] == update_1001["commit_lsn"] != update_1["commit_lsn"]
    assert datetime.fromisoformat(update_1["committed_at"]).utcoffset().total_seconds() == 0

    assert update_1["before"] == snapshot[("todos", 1)]
    assert update_1["after"] == {**snapshot[("todos", 1)], "status": "done", "assignee": None}
    assert insert_1001["before"] is None
    assert insert_1001["after"] == {
        "id": 1001, "title": "Interleaved", "status": "todo", "assignee": "ada", "priority": 1, "is_blocked": True,
        "due_on": "2026-11-10", "created_at": "2026-11-05T08:00:00.123456+00:00",
        "updated_at": "2026-11-05T08:00:00.123456+00:00"}
    assert update_1001["before"] == insert_1001["after"]
    assert update_1001["after"] == {**insert_1001["after"], "priority": 4, "is_blocked": False}
    assert delete_2["before"] == snapshot[("trades", 2)] and delete_2["after"] is None
    assert trade["after"] == {"id": 9001, "symbol": "SPY", "side": "buy", "qty": "1.500000", "price": "512.250000",
                              "pnl": None, "executed_at": "2026-11-06T15:30:00+00:00", "mode": "paper"}
    assert json.loads(state["before"]["value"]) == json.loads(snapshot[("system_state", "bot.version")]["value"])
    assert json.loads(state["after"]["value"]) == {"a": None, "b": [1, 2]}  # jsonb as JSON text
    assert signal_["after"]["strength"] == 0.125
    assert len(toast["after"]["title"]) == 12_800 and toast["after"]["title"] == toast["before"]["title"]
    assert toast["after"]["status"] == "in_progress" and toast["unchanged_toast"] == []


# --- unknown tables -------------------------------------------------------------------------------

def test_a_change_to_an_unexpected_table_is_kept_raw_in_its_place(source, cursors):
    with psycopg.connect(source) as conn:
        conn.execute("create table audit_log (id int primary key, note text)")
        conn.execute("create table scratch (id int primary key)")
    with CdcReader(source, "unknown", "unknown_pub", cursors, tables=TABLES) as reader:
        read_snapshot(reader)
        with psycopg.connect(source, autocommit=True) as conn:
            # Someone adds a table to the publication that this reader has no schema for.
            conn.execute("alter publication unknown_pub add table audit_log")
            conn.execute("insert into audit_log values (1, 'hello')")
            conn.execute("insert into scratch values (1)")  # not published: never streamed
            conn.execute("insert into signals values (777, 'SPY', 'buy', 0.5, now())")
        stream = drain(reader, lambda cs: any(c["table"] == "signals" for c in cs))

    assert [(c["table"], c["op"]) for c in stream] == [("audit_log", "insert"), ("signals", "insert")]
    raw = stream[0]
    assert raw["reason"] == "table public.audit_log is not one of the expected tables"
    assert raw["before"] is None and raw["after"] is None
    kept = json.loads(raw["raw"])
    assert kept["new"] == ["1", "hello"]
    assert [c[0] for c in kept["relation"]["columns"]] == ["id", "note"]
    assert stream[1]["reason"] is None and stream[1]["after"]["id"] == 777


def _begin(xid: int = 700) -> bytes:
    return b"B" + (1000).to_bytes(8, "big") + (0).to_bytes(8, "big") + xid.to_bytes(4, "big")


def _commit() -> bytes:
    return b"C\0" + (1000).to_bytes(8, "big") + (1100).to_bytes(8, "big") + (0).to_bytes(8, "big")


def _relation(oid: int, identity: bytes = b"d") -> bytes:
    cols = [(1, b"id", 23), (0, b"body", 25)]
    body = b"".join(bytes([f]) + n + b"\0" + t.to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True)
                    for f, n, t in cols)
    return b"R" + oid.to_bytes(4, "big") + b"public\0docs\0" + identity + len(cols).to_bytes(2, "big") + body


def _tuple(*values: str | None | bytes) -> bytes:
    out = len(values).to_bytes(2, "big")
    for v in values:
        if v is None:
            out += b"n"
        elif v == b"u":
            out += b"u"
        else:
            out += b"t" + len(v.encode()).to_bytes(4, "big") + v.encode()
    return out


def test_decoder_keeps_a_change_for_an_undescribed_relation_raw_and_handles_unchanged_toast():
    decoder = PgOutputDecoder(expected={("public", "docs")})
    decoder.feed(_begin(), 900)
    decoder.feed(b"I" + (42).to_bytes(4, "big") + b"N" + _tuple("1", "x"), 901)  # no Relation for oid 42
    decoder.feed(_relation(7), 902)
    decoder.feed(b"U" + (7).to_bytes(4, "big") + b"N" + _tuple("1", b"u"), 903)  # no old row: value unknown
    decoder.feed(b"U" + (7).to_bytes(4, "big") + b"O" + _tuple("1", "long") + b"N" + _tuple("1", b"u"), 904)
    decoder.feed(b"D" + (7).to_bytes(4, "big") + b"K" + _tuple("1", None), 905)  # identity key only
    decoder.feed(b"Z", 906)
    txn = decoder.feed(_commit(), 907)

    unknown, no_old, full_old, delete, odd = txn.changes
    assert unknown["op"] == "insert" and unknown["reason"] == "no Relation message for relation oid 42"
    assert json.loads(unknown["raw"])["message"].startswith(b"I".hex())
    assert (no_old["after"], no_old["unchanged_toast"]) == ({"id": 1}, ["body"])
    assert (full_old["before"], full_old["after"]) == ({"id": 1, "body": "long"}, {"id": 1, "body": "long"})
    assert delete["before"] == {"id": 1} and delete["after"] is None
    assert odd["reason"] == "unknown pgoutput message type 'Z'"
    assert [c["seq"] for c in txn.changes] == [0, 1, 2, 3, 4]
    assert {c["commit_lsn"] for c in txn.changes} == {"00000000/0000044C"} and txn.changes[0]["xid"] == 700


def test_values_are_typed_from_the_text_format():
    assert decode_value(20, "9007199254740993") == 9007199254740993
    assert decode_value(16, "t") is True and decode_value(16, "f") is False
    assert decode_value(1700, "12.3400") == "12.3400" and decode_value(1700, "NaN") == "NaN"
    assert decode_value(701, "0.1") == 0.1
    assert decode_value(1184, "2026-11-05 08:00:00.5+00") == "2026-11-05T08:00:00.500000+00:00"
    assert decode_value(1114, "2026-11-05 08:00:00") == "2026-11-05T08:00:00"
    assert decode_value(1184, "infinity") == "infinity"
    assert decode_value(3802, '{"a": 1}') == '{"a": 1}'


# --- restarts -------------------------------------------------------------------------------------

def test_an_interrupted_snapshot_or_a_lost_slot_starts_a_fresh_snapshot_flagged_reset(source, cursors):
    with CdcReader(source, "resnap", "resnap_pub", cursors, tables=TABLES) as first:
        partial = first.read_batch(20)
        first.confirm(partial)
    assert not partial.reset and len(partial.changes) == 20

    with CdcReader(source, "resnap", "resnap_pub", cursors, tables=TABLES) as second:
        batches = read_snapshot(second, max_changes=1000)
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    rows = [c for b in batches for c in b.changes]
    assert [c["seq"] for c in rows] == list(range(SNAPSHOT_ROWS))
    assert Position.of(rows[0]).lsn > partial.position.lsn

    drop_slot(source, "resnap")  # e.g. an operator dropped it: changes since are unknowable
    with CdcReader(source, "resnap", "resnap_pub", cursors, tables=TABLES) as third:
        assert read_snapshot(third)[0].reset


def test_a_dropped_replication_connection_is_resumed_within_the_same_reader(source, cursors):
    with CdcReader(source, "dropped", "dropped_pub", cursors, tables=TABLES) as reader, \
            ChangeGenerator(source, seed=9) as gen:
        read_snapshot(reader)
        gen.run(10)
        first = reader.read_batch(3, timeout_s=5)  # read, not yet confirmed, when the link drops
        with psycopg.connect(source, autocommit=True) as conn:
            killed = conn.execute("select pg_terminate_backend(pid) from pg_stat_replication"
                                  " where application_name = 'cc_cdc_dropped'").fetchall()
        assert killed == [(True,)]
        reader.confirm(first)
        gen.run(10)
        rest = drain(reader, lambda cs: len(first.changes) + len(cs) >= len(gen.changes))
    landed = first.changes + rest
    assert [(c["table"], c["op"]) for c in landed] == [(c.table, c.op) for c in gen.changes]


def _recover(landed: Path) -> Position | None:
    """The lander's own last durable position; a line torn by the kill is cut off."""
    if not landed.exists():
        return None
    data = landed.read_bytes()
    if not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
        with open(landed, "r+b") as f:
            f.truncate(len(data))
            os.fsync(f.fileno())
    lines = data.splitlines()
    return Position.of(json.loads(lines[-1])) if lines else None


class _DyingCursorStore(CursorStore):
    """Dies right after its n-th durable write: the cursor moved, the server was not told yet."""

    def __init__(self, path: str, die_after: int | None) -> None:
        super().__init__(path)
        self.die_after, self.writes = die_after, 0

    def set(self, key: str, value: Any) -> None:
        super().set(key, value)
        self.writes += 1
        if self.writes == self.die_after:
            os.kill(os.getpid(), signal.SIGKILL)


def _worker(args: dict[str, Any]) -> None:
    """Land the stream into a JSONL file (append + fsync, then confirm) until killed or `until` lines."""
    landed = Path(args["landed"])
    position = _recover(landed)
    with CdcReader(args["dsn"], args["slot"], args["publication"],
                   _DyingCursorStore(args["cursors"], args.get("crash_after_cursor")), tables=TABLES,
                   landed=position if args.get("use_landed", True) else None) as reader:
        count = len(landed.read_bytes().splitlines()) if landed.exists() else 0
        batches = 0
        while not (args.get("until") and count >= args["until"]):
            batch = reader.read_batch(args.get("max_changes", 40), timeout_s=0.2)
            lines = [json.dumps(c).encode() + b"\n" for c in batch.changes]
            torn = args.get("crash_mid_land") and any(c["seq"] > 0 for c in batch.changes)
            if torn:
                # Die halfway through a transaction, with a torn line after the last whole one.
                cut = next(i for i, c in enumerate(batch.changes) if c["seq"] > 0)
                lines = [*lines[:cut], lines[cut][:20]]
            with open(landed, "wb" if batch.reset else "ab") as f:
                count = 0 if batch.reset else count
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
            if torn:
                os.kill(os.getpid(), signal.SIGKILL)
            count += len(batch.changes)
            batches += 1
            if batches == args.get("crash_after_land"):
                os.kill(os.getpid(), signal.SIGKILL)  # landed, not yet confirmed
            reader.confirm(batch)


def _start_worker(tmp_path: Path, **args: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    args = {"landed": str(tmp_path / "landed.jsonl"), "cursors": str(tmp_path / "cursors.json"),
            "slot": "killed", "publication": "killed_pub", **args}
    with open(tmp_path / "worker.log", "ab") as log:
        return subprocess.Popen([sys.executable, __file__, json.dumps(args)], env=env, cwd=PROJECT_ROOT, stderr=log)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _wait(proc: subprocess.Popen, landed: Path, lines: int, log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _lines(landed) < lines:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"only {_lines(landed)} of {lines} lines landed"
        time.sleep(0.02)


def test_a_killed_reader_resumes_without_losing_or_duplicating_a_change(source, tmp_path):
    landed, log, cursor_file = tmp_path / "landed.jsonl", tmp_path / "worker.log", tmp_path / "cursors.json"
    procs: list[subprocess.Popen] = []
    stop = threading.Event()
    gen = ChangeGenerator(source, seed=5)

    def write() -> None:
        for _ in range(500):
            if stop.is_set():
                return
            gen.step()
            time.sleep(0.002)

    writer = threading.Thread(target=write)
    try:
        # 1. Killed during the snapshot, after landing its third batch and before confirming it.
        procs.append(_start_worker(tmp_path, dsn=source, crash_after_land=3))
        assert procs[-1].wait(timeout=30) == -signal.SIGKILL
        assert _lines(landed) == 120 and json.loads(cursor_file.read_text())["postgres_cdc/killed"]["seq"] == 79

        # 2. A fresh snapshot replaces the partial one; then the stream, killed from outside.
        procs.append(_start_worker(tmp_path, dsn=source))
        _wait(procs[-1], landed, SNAPSHOT_ROWS, log)
        writer.start()
        _wait(procs[-1], landed, SNAPSHOT_ROWS + 300, log)
        procs[-1].kill()
        procs[-1].wait()

        # 3. Killed after writing the cursor, before the server heard of it: the slot resends
        #    what the cursor already covers. The next reader resumes from the cursor alone and is
        #    killed between landing and confirming: the lander's own position covers that.
        procs.append(_start_worker(tmp_path, dsn=source, crash_after_cursor=3, max_changes=10))
        assert procs[-1].wait(timeout=30) == -signal.SIGKILL
        procs.append(_start_worker(tmp_path, dsn=source, use_landed=False, crash_after_land=4, max_changes=15))
        assert procs[-1].wait(timeout=30) == -signal.SIGKILL
        # Killed halfway through landing a transaction: the rest of it comes again, its start does not.
        procs.append(_start_worker(tmp_path, dsn=source, crash_mid_land=True, max_changes=15))
        assert procs[-1].wait(timeout=30) == -signal.SIGKILL
        assert not landed.read_bytes().endswith(b"\n")

        # 4. Killed from outside once more, mid-stream.
        procs.append(_start_worker(tmp_path, dsn=source, max_changes=7))
        _wait(procs[-1], landed, _lines(landed) + 200, log)
        procs[-1].kill()
        procs[-1].wait()

        writer.join()
        # 5. Runs until it has landed every change, then stops.
        expected = gen.changes
        procs.append(_start_worker(tmp_path, dsn=source, until=SNAPSHOT_ROWS + len(expected)))
        assert procs[-1].wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        gen.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    rows = [json.loads(line) for line in landed.read_text().splitlines()]
    positions = [Position.of(c) for c in rows]
    assert len(set(positions)) == len(positions), "a change was landed twice"
    assert positions == sorted(positions), "changes were landed out of commit order"
    snapshot, stream = rows[:SNAPSHOT_ROWS], rows[SNAPSHOT_ROWS:]
    assert {c["op"] for c in snapshot} == {"snapshot"}
    assert [(c["table"], c["op"], key_of(c["table"], c["before"] or c["after"])) for c in stream] == [
        (c.table, c.op, c.key) for c in expected]
    replica = Replica()
    for change in rows:
        replica.apply(change)
    assert replica.tables == source_state(source)
    # The cursor file survived every kill and now names the last landed change.
    cursor = json.loads(cursor_file.read_text())["postgres_cdc/killed"]
    assert (cursor["commit_lsn"], cursor["seq"]) == (rows[-1]["commit_lsn"], rows[-1]["seq"])
    assert cursor["snapshot_done"] is True


# --- lag ------------------------------------------------------------------------------------------

def test_commit_to_landed_lag_for_single_row_transactions(source, cursors, tmp_path, capsys, record_property):
    """Measured, not asserted: commit timestamp to the moment its change is fsynced in a JSONL file."""
    count = 1000
    with CdcReader(source, "lag", "lag_pub", cursors, tables=TABLES) as reader:
        read_snapshot(reader)

        # The writer is a process of its own (it does not share this one's GIL with the reader),
        # paced at about 500 commits a second: latency, not a backlog, is what is measured.
        write = ("import sys, time, psycopg\nwith psycopg.connect(sys.argv[1], autocommit=True) as conn:\n"
                 f"    for i in range({count}):\n"
                 "        conn.execute(\"insert into signals values (%s, 'SPY', 'buy', 0.5, now())\", (100_000 + i,))\n"
                 "        time.sleep(0.002)")
        writer = subprocess.Popen([sys.executable, "-c", write, source])
        lags: list[float] = []
        deadline = time.monotonic() + 30
        with open(tmp_path / "lag.jsonl", "ab") as out:
            while len(lags) < count and time.monotonic() < deadline:
                batch = reader.read_batch(500, timeout_s=0.5)
                if batch.changes:
                    out.write(b"".join(json.dumps(c).encode() + b"\n" for c in batch.changes))
                    out.flush()
                    os.fsync(out.fileno())
                landed_at = time.time()
                reader.confirm(batch)
                lags += [landed_at - datetime.fromisoformat(c["committed_at"]).timestamp() for c in batch.changes]
        assert writer.wait(timeout=30) == 0
    assert len(lags) == count
    lags.sort()
    median, p99 = statistics.median(lags) * 1000, lags[int(len(lags) * 0.99) - 1] * 1000
    record_property("cdc_lag_median_ms", round(median, 2))
    record_property("cdc_lag_p99_ms", round(p99, 2))
    with capsys.disabled():
        print(f"\nCDC commit->landed lag over {count} single-row transactions: "
              f"median {median:.1f} ms, p99 {p99:.1f} ms")


# --- cursor store ---------------------------------------------------------------------------------

def test_cursor_store_is_atomic_durable_and_shared_between_processes(tmp_path):
    path = tmp_path / "state" / "cursors.json"
    store = CursorStore(path)
    assert store.get("github/acme/api", "none") == "none"
    store.set("github/acme/api", {"since": "2026-11-01T00:00:00Z", "etag": 'W/"abc"'})
    store.set("linear", {"updated_at": "2026-11-02T00:00:00Z"})
    assert CursorStore(path).get("github/acme/api")["etag"] == 'W/"abc"'
    with pytest.raises(TypeError):
        store.set("bad", object())
    assert CursorStore(path).all().keys() == {"github/acme/api", "linear"}
    store.delete("linear")
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    # Four processes update their own keys at once: no update is lost to another's write.
    bump = "import sys; from resources.storage.cursors import CursorStore; s = CursorStore(sys.argv[1])\n" \
           "for i in range(30): s.set(sys.argv[2], i)"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", bump, str(path), f"log/{i}"], env=env) for i in range(4)]
    assert [p.wait(timeout=30) for p in procs] == [0] * 4
    assert CursorStore(path).all() == {"github/acme/api": store.get("github/acme/api"),
                                       **{f"log/{i}": 29 for i in range(4)}}


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
