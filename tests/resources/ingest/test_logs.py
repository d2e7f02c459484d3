"""The log tailer: parsing, corrupt and partial lines, rotation, truncation, resuming after a kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cc_events.sources.logs import log_event_id, normalize_log_record
from resources.ingest.log_format import parse_line
from resources.ingest.log_tailer import LogTailer
from sandbox.logs import LogWriter

RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROJECT = Path(__file__).resolve().parents[3]


class MemoryCursors:
    """The cursor-store protocol in memory; values go through JSON, as a real store's would."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> dict | None:
        return json.loads(self.data[key]) if key in self.data else None

    def set(self, key: str, value: dict) -> None:
        self.data[key] = json.dumps(value)


def tailer_for(directory: Path, store: MemoryCursors, **kwargs) -> LogTailer:
    kwargs.setdefault("rotated_settle", 0.0)
    return LogTailer([str(directory / "*.log"), str(directory / "syslog")], store, **kwargs)


def drain(tailer: LogTailer, max_lines: int = 1000, incidents: list | None = None) -> list[dict]:
    """Read and commit until two reads in a row find nothing."""
    records, empty = [], 0
    while empty < 2:
        batch = tailer.read_batch(max_lines)
        records += batch.records
        if incidents is not None:
            incidents += batch.incidents
        tailer.commit(batch)
        empty = 0 if batch.records else empty + 1
    return records


def landed(records: list[dict]) -> Counter:
    return Counter((os.path.basename(r["log"]), r["raw"]) for r in records)


def written(writer: LogWriter) -> Counter:
    return Counter((w.file, as_raw(w.line)) for w in writer.written)


def as_raw(line: bytes) -> str:
    """What a record's `raw` holds for a written line: bad bytes and NULs become U+FFFD."""
    return line.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


# --- parsing -------------------------------------------------------------------------------------


def test_json_lines_in_several_dialects():
    api = parse_line(b'{"ts":"2026-11-20T09:00:00.123Z","level":"WARN","service":"api","host":"api-1",'
                     b'"msg":"GET /v1/issues 429","request_id":"req_1"}', received_at=RECEIVED)
    assert api["format"] == "json"
    assert (api["ts"], api["level"], api["service"], api["host"]) == (
        "2026-11-20T09:00:00.123000Z", "warning", "api", "api-1")
    assert api["message"] == "GET /v1/issues 429"
    assert api["fields"] == {"request_id": "req_1"}

    worker = parse_line(b'{"time":"2026-11-20 09:00:00,5","severity":"ERROR","app":"worker","message":"failed"}')
    assert (worker["ts"], worker["level"], worker["service"]) == ("2026-11-20T09:00:00.500000Z", "error", "worker")

    ecs = parse_line(b'{"@timestamp":1795165200000,"log":{"level":"crit"},"service":{"name":"charlie-alpha"},'
                     b'"message":"task failed"}')
    assert (ecs["ts"], ecs["level"], ecs["service"]) == ("2026-11-20T09:00:00.000000Z", "critical", "charlie-alpha")

    pino = parse_line(b'{"level":50,"time":1795165200,"name":"web","msg":"boom"}')
    assert (pino["level"], pino["service"], pino["message"]) == ("error", "web", "boom")


def test_syslog_rfc3164_with_and_without_pri_and_rfc5424():
    with_pri = parse_line(b"<34>Nov 20 22:14:15 web-2 su[81]: 'su root' failed for lonvick", received_at=RECEIVED)
    assert with_pri["format"] == "syslog"
    assert (with_pri["ts"], with_pri["host"], with_pri["service"]) == ("2026-11-20T22:14:15.000000Z", "web-2", "su")
    assert with_pri["level"] == "critical"  # severity 34 % 8 = 2
    assert with_pri["fields"] == {"pid": "81", "facility": 4, "severity": 2}
    assert with_pri["message"] == "'su root' failed for lonvick"

    # /var/log/syslog: no PRI; the level, if any, comes from the text. December read in January
    # belongs to the previous year.
    no_pri = parse_line(b"Dec 31 23:59:59 cc-sandbox-1 api[812]: ERROR upstream timeout",
                        received_at=datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert (no_pri["ts"], no_pri["host"], no_pri["service"], no_pri["level"]) == (
        "2026-12-31T23:59:59.000000Z", "cc-sandbox-1", "api", "error")
    kernel = parse_line(b"Nov  3 09:00:01 cc-sandbox-1 kernel: [1234.5] EXT4-fs (vda1): re-mounted",
                        received_at=RECEIVED)
    assert (kernel["ts"], kernel["service"], kernel["message"]) == (
        "2026-11-03T09:00:01.000000Z", "kernel", "[1234.5] EXT4-fs (vda1): re-mounted")

    rfc5424 = parse_line(b'<165>1 2026-11-20T22:14:15.003Z mymachine.example.com evntslog - ID47 '
                         b'[exampleSDID@32473 iut="3" eventSource="Appl\\"ication"][meta correlation_id="run-1"] '
                         b'\xef\xbb\xbfAn application event')
    assert rfc5424["format"] == "syslog"
    assert rfc5424["level"] == "notice"  # 165 % 8 = 5
    assert (rfc5424["ts"], rfc5424["host"], rfc5424["service"]) == (
        "2026-11-20T22:14:15.003000Z", "mymachine.example.com", "evntslog")
    assert rfc5424["message"] == "An application event"
    assert rfc5424["fields"]["msgid"] == "ID47"
    assert rfc5424["fields"]["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'Appl"ication'}, "meta": {"correlation_id": "run-1"}}

    rsyslog = parse_line(b"2026-11-20T09:00:00.123456+01:00 cc-sandbox-1 systemd[1]: Started x.")
    assert (rsyslog["format"], rsyslog["ts"], rsyslog["service"]) == ("syslog", "2026-11-20T08:00:00.123456Z", "systemd")

    plain = parse_line(b"2026-11-20 09:00:00 [warn] disk almost full")
    assert (plain["format"], plain["level"], plain["ts"]) == ("plain", "warning", "2026-11-20T09:00:00.000000Z")


def test_corrupt_lines_are_records_with_a_problem(tmp_path):
    lines = [
        b'{"level":"info","msg":"before"}',
        b'{"level":"info","msg":"cut in the mid',
        b'{"level":"info","msg":"bad \xff\xfe bytes"}',
        b"\x00\x00\x00\x00 zeros from a crash",
        b'{"a":' * 5_000,
        b'{"level":"error","msg":"after"}',
    ]
    (tmp_path / "app.log").write_bytes(b"\n".join(lines) + b"\n")
    records = drain(tailer_for(tmp_path, MemoryCursors()))
    assert [r["format"] for r in records] == ["json", "invalid", "invalid", "invalid", "invalid", "json"]
    assert [r["problem"] for r in records[1:5]] == [
        "invalid JSON: Unterminated string starting at", "invalid UTF-8 at byte 27", "4 NUL byte(s)",
        "invalid JSON: RecursionError"]
    assert records[3]["raw"] == "\ufffd" * 4 + " zeros from a crash"
    assert records[-1]["level"] == "error"
    assert [r["line_no"] for r in records] == [1, 2, 3, 4, 5, 6]


# --- tailing -------------------------------------------------------------------------------------


def test_a_partial_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b'{"msg":"one"}\n{"msg":"tw')
    tailer = tailer_for(tmp_path, MemoryCursors())
    assert [r["raw"] for r in drain(tailer)] == ['{"msg":"one"}']
    with open(log, "ab") as fh:
        fh.write(b'o"}\n')
    [two] = drain(tailer)
    assert (two["raw"], two["message"], two["offset"], two["line_no"]) == ('{"msg":"two"}', "two", 14, 2)


def test_long_lines_are_cut_and_flagged(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 1000 + b"\n" + b"y" * 600)  # the second one is unterminated and too long already
    tailer = tailer_for(tmp_path, MemoryCursors(), max_line_bytes=256)
    first, second = drain(tailer)
    assert first["cut"] and first["raw"] == "x" * 256 and "1000 bytes" in first["problem"]
    assert second["cut"] and second["raw"] == "y" * 256 and second["offset"] == 1001
    with open(log, "ab") as fh:
        fh.write(b"y" * 100 + b"\nnext line\n")
    assert [r["raw"] for r in drain(tailer)] == ["next line"]


def test_rotation_by_rename_loses_nothing_and_duplicates_nothing(tmp_path):
    writer = LogWriter(tmp_path, seed=1, keep=3)
    store = MemoryCursors()
    tailer = tailer_for(tmp_path, store)
    writer.write(300)
    first = tailer.read_batch(120)
    tailer.commit(first)
    for name in writer.files:
        writer.rotate(name)
    writer.write(300)
    writer.rotate("api.log")  # api.log rotated twice between reads: .2 is the file we were reading
    writer.write(100)
    incidents: list = []
    records = first.records + drain(tailer, max_lines=70, incidents=incidents)
    assert landed(records) == written(writer)
    assert len({log_event_id(r) for r in records}) == len(records)
    kinds = Counter(i["kind"] for i in incidents)
    assert kinds["rotated"] >= len(writer.files) and kinds["vanished"] == 0
    # api.log's second file was created and rotated away between two reads: found all the same.
    assert kinds["adopted"] == 1
    # Lines of one log come out in the order they were written, across its rotated files.
    api = [r["raw"] for r in records if r["log"].endswith("api.log")]
    assert api == [as_raw(line) for line in writer.lines("api.log")]
    # The sandbox's dialects all parse cleanly.
    formats = {(os.path.basename(r["log"]), r["format"]) for r in records}
    assert formats == {("api.log", "json"), ("worker.log", "json"), ("charlie.log", "json"),
                       ("syslog", "syslog"), ("relay.log", "syslog")}
    assert all(r["problem"] is None and r["ts"] and r["service"] for r in records)
    writer.close()


def test_an_unterminated_last_line_is_taken_when_its_file_is_rotated_away(tmp_path):
    writer = LogWriter(tmp_path, seed=2, files=("api.log",))
    tailer = tailer_for(tmp_path, MemoryCursors())
    writer.write(3)
    writer.append("api.log", b'{"msg":"last words')
    assert len(drain(tailer)) == 3
    writer.rotate("api.log")
    writer.write(2)
    incidents: list = []
    records = drain(tailer, incidents=incidents)
    assert [r["raw"] for r in records] == ['{"msg":"last words'] + [as_raw(x) for x in writer.lines()[3:]]
    assert records[0]["format"] == "invalid"
    assert "no newline at the end of a rotated file" in records[0]["problem"]
    assert "finished" in [i["kind"] for i in incidents]
    writer.close()


def test_copytruncate_is_detected_and_the_copy_is_finished(tmp_path):
    writer = LogWriter(tmp_path, seed=3, files=("api.log", "syslog"))
    tailer = tailer_for(tmp_path, MemoryCursors())
    writer.write(100)
    seen = drain(tailer)
    writer.write(40)  # not read before the copy: only the copy has them afterwards
    writer.copytruncate("api.log")
    writer.write(40)
    incidents: list = []
    records = seen + drain(tailer, incidents=incidents)
    assert landed(records) == written(writer)
    truncated = [i for i in incidents if i["kind"] == "truncated"]
    followed = [i for i in incidents if i["kind"] == "copy_followed"]
    assert len(truncated) == 1 and truncated[0]["path"].endswith("api.log")
    assert len(followed) == 1 and followed[0]["path"].endswith("api.log.1")
    assert followed[0]["copy_of"] == truncated[0]["path"] and followed[0]["offset"] == truncated[0]["offset"]
    writer.close()


def test_a_file_rewritten_past_the_old_offset_is_read_again(tmp_path):
    """Truncated and refilled between two reads: the size alone cannot tell, the fingerprint does."""
    log = tmp_path / "app.log"
    log.write_bytes(b"old line 1\nold line 2\n")
    tailer = tailer_for(tmp_path, MemoryCursors())
    old = drain(tailer)
    with open(log, "r+b") as fh:  # same inode, new content longer than what was read
        fh.truncate(0)
        fh.write(b"new line 1\nnew line 2\nnew line 3\n")
    incidents: list = []
    new = drain(tailer, incidents=incidents)
    assert [r["raw"] for r in new] == ["new line 1", "new line 2", "new line 3"]
    assert [i["kind"] for i in incidents] == ["truncated", "opened"]
    assert {log_event_id(r) for r in old}.isdisjoint(log_event_id(r) for r in new)


def test_rotated_history_and_compressed_files_are_not_read(tmp_path):
    import gzip

    (tmp_path / "app.log").write_bytes(b"current\n")
    (tmp_path / "app.log.1").write_bytes(b"yesterday\n")
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "app.log.1", (hour_ago, hour_ago))
    with gzip.open(tmp_path / "app.log.2.gz", "wb") as fh:
        fh.write(b"last week\n")
    tailer = tailer_for(tmp_path, MemoryCursors())
    assert [r["raw"] for r in drain(tailer)] == ["current"]


def test_a_restart_resumes_from_the_committed_cursor(tmp_path):
    writer = LogWriter(tmp_path, seed=4)
    writer.write(200)
    store = MemoryCursors()
    first = tailer_for(tmp_path, store)
    committed = first.read_batch(80)
    first.commit(committed)
    lost = first.read_batch(80)  # read but never committed: the process dies here
    first.close()
    writer.write(50)
    second = tailer_for(tmp_path, store)
    again = drain(second)
    assert landed(committed.records + again) == written(writer)
    # What was read but not committed is read again, under the same ids: a landing dedupes them.
    assert {log_event_id(r) for r in lost.records} <= {log_event_id(r) for r in again}
    writer.close()


def test_reset_reads_again_what_was_not_committed(tmp_path):
    (tmp_path / "app.log").write_bytes(b"one\ntwo\nthree\n")
    tailer = tailer_for(tmp_path, MemoryCursors())
    tailer.commit(tailer.read_batch(1))
    failed = tailer.read_batch(5)  # landing this one failed
    tailer.reset()
    assert [r["raw"] for r in drain(tailer)] == [r["raw"] for r in failed.records] == ["two", "three"]


def test_start_at_end_skips_what_is_already_there(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"old\nhalf a li")
    tailer = tailer_for(tmp_path, MemoryCursors(), start_at="end")
    assert drain(tailer) == []
    with open(log, "ab") as fh:
        fh.write(b"ne\nnew\n")
    assert [(r["raw"], r["line_no"]) for r in drain(tailer)] == [("half a line", None), ("new", None)]


def test_committing_an_older_batch_is_refused(tmp_path):
    LogWriter(tmp_path, seed=4).write(10)
    tailer = tailer_for(tmp_path, MemoryCursors())
    older, newer = tailer.read_batch(5), tailer.read_batch(5)
    tailer.commit(newer)
    with pytest.raises(ValueError, match="older"):
        tailer.commit(older)


DRIVER = r'''
"""Tail, land (append JSON lines + fsync), then commit the cursor (tmp + fsync + rename)."""
import json, os, sys, time
from pathlib import Path

from cc_events.sources.logs import log_event_id
from resources.ingest.log_tailer import LogTailer


class JsonFileCursors:
    def __init__(self, path):
        self.path = Path(path)

    def _load(self):
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, key):
        return self._load().get(key)

    def set(self, key, value):
        data = self._load()
        data[key] = value
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


log_dir, state, max_lines = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
landed = state / "landed.jsonl"
ids = set()
if landed.exists():  # a kill may have cut the last line short: drop it, it was never committed
    data = landed.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(landed, "r+b") as fh:
            fh.truncate(len(complete))
    ids = {json.loads(line)["id"] for line in complete.splitlines()}
tailer = LogTailer([f"{log_dir}/*.log", f"{log_dir}/syslog"], JsonFileCursors(state / "cursor.json"),
                   rotated_settle=0.2)
replayed = 0
with open(landed, "ab") as out:
    while True:
        batch = tailer.read_batch(max_lines)
        fresh = []
        for record in batch.records:
            rid = log_event_id(record)
            if rid in ids:  # landed before the kill, cursor not yet committed
                replayed += 1
                continue
            ids.add(rid)
            fresh.append(json.dumps({"id": rid, "log": os.path.basename(record["log"]), "raw": record["raw"]}))
        if fresh:
            out.write(("\n".join(fresh) + "\n").encode())
            out.flush()
            os.fsync(out.fileno())
        if batch.changed:
            tailer.commit(batch)
        if replayed:
            # Written aside and renamed: a SIGKILL mid-write must not leave a torn count.
            tmp = state / f".replayed.{os.getpid()}.tmp"
            tmp.write_text(str(replayed))
            os.replace(tmp, state / f"replayed.{os.getpid()}")
        if not batch.records:
            time.sleep(0.01)
'''


def test_killed_mid_way_and_restarted_lands_every_line_exactly_once(tmp_path):
    """SIGKILL the tailer again and again while the writer keeps writing and rotating."""
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    state.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    max_lines = 200

    def launch() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(driver), str(logs), str(state), str(max_lines)],
                                cwd=PROJECT, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(PROJECT)})

    def landed_lines() -> list[dict]:
        data = (state / "landed.jsonl").read_bytes() if (state / "landed.jsonl").exists() else b""
        return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]

    proc = launch()
    deadline = time.monotonic() + 10
    while not (state / "cursor.json").exists():  # the cursor's birth time separates history from news
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writer = LogWriter(logs, seed=5, keep=20, corrupt_rate=0.02, split_rate=0.05)
    writer.start(rate=1000, rotate_every=120, copytruncate_share=0.3)
    rng = random.Random(5)
    kills = 4
    try:
        for k in range(kills):
            time.sleep(rng.uniform(0.3, 0.7))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(0.8 if k == 1 else 0.1)  # the writer goes on, rotating more than once
            proc = launch()
        time.sleep(0.5)
        writer.stop()
        expected = written(writer)
        deadline = time.monotonic() + 15
        while sum(1 for _ in landed_lines()) < sum(expected.values()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(0.3)  # anything landed twice would show up now
    finally:
        writer.close()
        proc.kill()
        proc.wait()
    got = landed_lines()
    assert len({r["id"] for r in got}) == len(got)
    assert Counter((r["log"], r["raw"]) for r in got) == expected
    assert {kind for _, kind in writer.rotations} == {"rename", "copytruncate"}
    replayed = sum(int(p.read_text()) for p in state.glob("replayed.*"))
    assert replayed <= kills * max_lines


# --- the writer and the normalizer ---------------------------------------------------------------


def test_the_writer_is_deterministic_by_seed(tmp_path):
    def run(directory: Path, seed: int) -> dict[str, bytes]:
        with LogWriter(directory, seed=seed, corrupt_rate=0.05, compress=True, keep=2) as writer:
            writer.write(100)
            writer.rotate("api.log")
            writer.write(50)
            writer.copytruncate("syslog")
            writer.write(50)
            writer.rotate("api.log")
            writer.rotate("api.log")
        return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}

    a, b, c = run(tmp_path / "a", 7), run(tmp_path / "b", 7), run(tmp_path / "c", 8)
    assert a == b and a != c
    assert {"api.log.1", "api.log.2.gz", "syslog.1"} <= set(a)


def test_a_log_record_normalizes_to_a_log_event():
    record = {
        "path": "/var/log/charlie.log.1", "log": "/var/log/charlie.log", "device": 2049, "inode": 1234,
        "file_gen": "abcdef012345", "offset": 4096, "line_no": 17, "received_at": "2026-11-23T12:00:00.000000Z",
        **parse_line(b'{"@timestamp":"2026-11-20T09:00:00.250Z","lvl":"error","logger":"charlie-alpha",'
                     b'"msg":"task for eng-12 failed; see acme/api#45 (UTF-8 ok)","correlation_id":"run-9"}'),
        "problem": None, "cut": False,
    }
    event = normalize_log_record(record, {"ENG"})
    assert event.id == "logs:1234.abcdef012345:4096"
    assert (event.source, event.type, event.timestamp) == ("logs", "log.error", datetime(2026, 11, 20, 9, 0, 0, 250000))
    assert (event.actor.id, event.actor.name, event.actor.type) == ("logs:charlie-alpha", "charlie-alpha", "bot")
    assert (event.target.type, event.target.id) == ("log", "/var/log/charlie.log")
    assert [k.key for k in event.keys] == ["github:acme/api#45", "linear:ENG-12"]
    assert event.correlation_id == "run-9"
    assert normalize_log_record(record, {"ENG"}).id == event.id  # the same line, read again

    broken = {**record, **parse_line(b'{"msg":"cut sho'), "problem": "invalid JSON"}
    invalid = normalize_log_record(broken)
    assert invalid.type == "log.invalid" and invalid.payload["raw"] == '{"msg":"cut sho'
    assert invalid.timestamp == datetime(2026, 11, 23, 12, 0)  # no time in the line: when it was read

    syslog = {**record, **parse_line(b"Nov 20 09:00:01 cc-sandbox-1 sshd[1]: Accepted publickey",
                                      received_at=RECEIVED), "problem": None}
    assert normalize_log_record(syslog).type == "log.unknown"
