"""Delivery ids landed or being landed, kept beside the landing log so a restart neither forgets
them nor re-reads the log.

A "duplicate" answer promises the sender its delivery is on disk, so the index tells the two
states apart: a key is *in flight* from its claim until its landing write is fsynced (then
*durable*) or fails (then free again). A copy that finds its key in flight waits for that write.

Durable keys are persisted per landing file, in `<landing>/_index/<stream>/date=D.ids`: one
JSON string per key, and after each group commit a checkpoint `[<landing offset>, <crc32>]` saying
"every line of the landing file before this offset has its keys above" (the CRC is of the whole
id file before the checkpoint, so one check vouches for all of it). The writer thread
appends them after the fsync and the acks, with no fsync of its own (an ack still means the
landing line is on disk, and the hot path keeps one fsync per batch). At start only the landing
bytes past the last checkpoint whose segment checks out are read: a crash between the landing
fsync and the id write, or a power cut that tore the id file, costs a short scan, never a key.
Files older than the redelivery window are neither read nor kept.

Workers sharing a data dir each write their own landing files (`resources.storage.landing`), so
each id file has one writer too: at start a worker reads every writer's files of the window, and
repairs (truncates, extends) only its own.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from resources.storage.landing import LandingLog

log = logging.getLogger(__name__)

INDEX_DIR = "_index"
_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})(?:\.[A-Za-z0-9_-]+)?\.(?:ids|jsonl)$")
_ID = re.compile(rb'^\{"id":("(?:[^"\\]|\\.)*")')


def id_path(landing_path: Path) -> Path:
    """The id file of a landing file `<root>/<stream>/date=D[.<writer>].jsonl`."""
    return landing_path.parent.parent / INDEX_DIR / landing_path.parent.name / (landing_path.stem + ".ids")


def encode_keys(keys: Iterable[str], end_offset: int, crc: int) -> tuple[bytes, int]:
    """Keys and the checkpoint that says the landing file is indexed up to `end_offset`, to
    append to an id file whose bytes so far have CRC `crc`; and the CRC after them."""
    segment = b"".join(orjson.dumps(k) + b"\n" for k in keys)
    crc = zlib.crc32(segment, crc)
    checkpoint = b"[%d,%d]\n" % (end_offset, crc)
    return segment + checkpoint, zlib.crc32(checkpoint, crc)


def line_keys(line: bytes) -> list[str]:
    """A landing line's keys: its `id` and `aliases` (a torn line has none)."""
    match = _ID.match(line)
    if match is not None and b'"aliases":' not in line:
        return [orjson.loads(match.group(1))]
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(record, dict) or not record.get("id"):
        return []
    aliases = record.get("aliases")
    return [str(record["id"]), *(str(a) for a in aliases if a)] if isinstance(aliases, list) else [str(record["id"])]


@dataclass
class Loaded:
    keys: list[str] = field(default_factory=list)
    scanned_bytes: int = 0  # landing bytes read because no checkpoint covered them


_MAX_CHECKS = 64


def _verified(data: bytes, landing_size: int) -> tuple[list[str], int, int] | None:
    """Keys up to the last checkpoint that checks out, its landing offset and its end in the id
    file; None if a good checkpoint points past the landing file (it was replaced or cut: trust
    nothing). Searched from the end: only a torn or stray tail is ever skipped."""
    pos = data.rfind(b"\n") + 1  # a last piece without its newline is torn
    checks = 0
    while pos > 0 and checks < _MAX_CHECKS:
        start = data.rfind(b"\n", 0, pos - 1) + 1
        line = data[start:pos - 1]
        pos_next = start
        if line.startswith(b"["):
            checks += 1
            try:
                offset, expected = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                offset, expected = -1, -1
            if expected == zlib.crc32(data[:start]):
                if offset > landing_size:
                    return None
                # Keys and checkpoints are all JSON: one parse, then the checkpoints dropped.
                try:
                    items = orjson.loads(b"[" + data[:start - 1].replace(b"\n", b",") + b"]") if start else []
                except orjson.JSONDecodeError:
                    return None
                return [k for k in items if type(k) is str], offset, pos
        pos = pos_next
    return [], 0, 0


def _scan(path: Path, start: int) -> tuple[list[str], int, int]:
    """Keys of the complete landing lines from `start`; the offset after the last and bytes read."""
    keys: list[str] = []
    offset = start
    with path.open("rb") as handle:
        handle.seek(start)
        for line in handle:
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            if line.strip():
                keys.extend(line_keys(line))
    return keys, offset, offset - start


def load(landing_root: Path, stream: str, days: int, today: date | None = None,
         writer: str | None = None) -> Loaded:
    """The keys of `days` (and tomorrow's, for clock skew) of `stream`, every writer's, from the
    id files and the landing bytes they do not cover yet; `writer`'s own files are then indexed
    so that its next start skips those bytes (another writer's are its own to repair)."""
    today = today or datetime.now(UTC).date()
    wanted = {(today - timedelta(days=n)).isoformat() for n in range(-1, days + 1)}
    loaded = Loaded()
    index_dir = landing_root / INDEX_DIR / stream
    if index_dir.is_dir():  # the redelivery window bounds the index: older days are dropped
        for old in index_dir.glob("date=*.ids"):
            match = _DAY.search(old.name)
            if match and match.group(1) not in wanted and match.group(1) < min(wanted):
                old.unlink(missing_ok=True)
    everyone, mine = LandingLog(landing_root), LandingLog(landing_root, writer)
    for day in sorted(wanted):
        own = mine.path(stream, date.fromisoformat(day))
        if not own.exists():  # a landing file made again later must not inherit old keys
            id_path(own).unlink(missing_ok=True)
        for landing in everyone.files(stream, date.fromisoformat(day)):
            _load_file(landing, landing == own, loaded)
    return loaded


def _load_file(landing: Path, own: bool, loaded: Loaded) -> None:
    ids = id_path(landing)
    # The id file before the landing file's size: a checkpoint its writer adds meanwhile covers
    # bytes already landed, never bytes past the size read.
    data = ids.read_bytes() if ids.exists() else b""
    size = landing.stat().st_size
    keys, start, keep = _verified(data, size) or ([], 0, 0)
    loaded.keys.extend(keys)
    tail, end, scanned = _scan(landing, start)
    if scanned:
        # Lines a crash left unacknowledged may not be on disk yet: a "duplicate" answer for
        # them must mean they are.
        _fsync(landing)
    loaded.keys.extend(tail)
    loaded.scanned_bytes += scanned
    if own and (keep != len(data) or end != start):
        ids.parent.mkdir(parents=True, exist_ok=True)
        with ids.open("r+b" if ids.exists() else "wb") as handle:
            handle.truncate(keep)  # an unverified tail would hide every checkpoint after it
            handle.seek(keep)
            if end != start:
                handle.write(encode_keys(tail, end, zlib.crc32(data[:keep]))[0])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RECEIVED = re.compile(rb'"_received_at":"([^"]+)"')


def find_landed(landing_root: Path, stream: str, writer: str | None, key: str, since: datetime) -> Path | None:
    """The file of `writer` holding a complete line with `key` received since `since`, searched
    from the files' ends back (a worker that died holding the key's claim wrote it last, if at
    all); the file is fsynced first, so a "duplicate" answer on the strength of it holds."""
    log = LandingLog(landing_root, writer)
    needle = orjson.dumps(key)
    stop = since.isoformat().encode()
    for day in sorted({since.date(), datetime.now(UTC).date(), since.date() + timedelta(days=1)}, reverse=True):
        path = log.path(stream, day)
        if not path.exists() or not path.stat().st_size:
            continue
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            newline = data.rfind(b"\n")
            while newline > 0:
                start = data.rfind(b"\n", 0, newline) + 1
                line = data[start:newline]
                newline = start - 1
                stamp = _RECEIVED.search(line)
                if stamp is not None and stamp.group(1) < stop:
                    break
                if needle in line and key in line_keys(line):
                    _fsync(path)
                    return path
    return None


class IdWriter:
    """Appends keys and checkpoints to the id files; used by the landing writer thread only."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[int, int]] = {}  # id file -> (fd, CRC of its bytes)
        self._paths: dict[Path, Path] = {}  # landing file -> its id file (a Path built per commit otherwise)

    def record(self, landing_path: Path, keys: list[str], end_offset: int) -> None:
        path = self._paths.get(landing_path)
        if path is None:
            if len(self._paths) >= 64:
                self._paths.clear()
            path = self._paths[landing_path] = id_path(landing_path)
        try:
            fd, crc = self._files.get(path) or self._open(path)
            data, crc = encode_keys(keys, end_offset, crc)
            os.write(fd, data)
            self._files[path] = (fd, crc)
        except Exception:  # never the writer thread's end: the line is durable, the next start scans it
            log.exception("could not index %s", landing_path)
            stale = self._files.pop(path, None)
            if stale is not None:
                os.close(stale[0])

    def _open(self, path: Path) -> tuple[int, int]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        if len(self._files) >= 8:  # past days' files are done with
            for old in list(self._files):
                os.close(self._files.pop(old)[0])
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read()
        if data and not data.endswith(b"\n"):  # torn by a crash: end it, it will not verify
            os.write(fd, b"\n")
            data += b"\n"
        return fd, zlib.crc32(data)

    def close(self) -> None:
        for fd, _ in self._files.values():
            os.close(fd)
        self._files.clear()


class Claim:
    """The claim of one delivery's keys, until its write settles."""

    def __init__(self, keys: tuple[str, ...], settled: asyncio.Future) -> None:
        self.keys = keys
        self.settled = settled  # True once durable, False if the write failed


class DeliveryIndex:
    """The keys of deliveries landed within the redelivery window (GitHub redelivers for up to 3
    days; 7 are kept), and of those being landed now."""

    def __init__(self, landing_root: Path | None, stream: str, days: int = 7, writer: str | None = None) -> None:
        """`landing_root` None: no files to read (the shared landing in Postgres is the authority,
        this index only holds what this process landed and what it waits for)."""
        started = time.monotonic()
        loaded = load(landing_root, stream, days, writer=writer) if landing_root is not None else Loaded()
        self._durable: set[str] = set(loaded.keys)
        self._in_flight: dict[str, Claim] = {}
        self.waiting = 0  # copies waiting for an earlier copy's write
        self.startup = {"keys": len(self._durable), "landing_bytes_scanned": loaded.scanned_bytes,
                        "seconds": round(time.monotonic() - started, 3)}

    def durable(self, keys: Iterable[str]) -> bool:
        return any(k in self._durable for k in keys)

    async def claim(self, keys: tuple[str, ...]) -> Claim | None:
        """A claim on `keys`, or None once a copy holding one of them is durable (a duplicate).

        A copy still being written is waited for; if its write fails, this copy claims instead."""
        while True:
            if self.durable(keys):
                return None
            pending = next((self._in_flight[k] for k in keys if k in self._in_flight), None)
            if pending is None:
                claim = Claim(keys, asyncio.get_running_loop().create_future())
                for key in keys:
                    self._in_flight[key] = claim
                return claim
            self.waiting += 1
            try:
                await asyncio.shield(pending.settled)
            finally:
                self.waiting -= 1

    def settle(self, claim: Claim, durable: bool) -> None:
        """The claim's write is fsynced (`durable`) or failed: its keys become durable or free."""
        for key in claim.keys:
            if self._in_flight.get(key) is claim:
                del self._in_flight[key]
            if durable:
                self._durable.add(key)
        if not claim.settled.done():
            claim.settled.set_result(durable)

    def in_flight(self) -> int:
        return len({id(c) for c in self._in_flight.values()})

    def __contains__(self, key: str) -> bool:
        return key in self._durable

    def __len__(self) -> int:
        return len(self._durable)

