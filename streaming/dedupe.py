"""Delivery ids landed or being landed, kept beside the landing log so a restart neither forgets
them nor re-reads the log.

A "duplicate" answer promises the sender its delivery is on disk, so the index tells the two
states apart: a key is *in flight* from its claim until its landing write is fsynced (then
*durable*) or fails (then free again). A copy that finds its key in flight waits for that write.

Durable keys are persisted per landing file, in `<landing>/_index/<stream>/date=D.ids`: one
JSON string per key, and after each group commit a checkpoint `#<landing offset> <crc32>` saying
"every line of the landing file before this offset has its keys above". The writer thread
appends them after the fsync and the acks, with no fsync of its own (an ack still means the
landing line is on disk, and the hot path keeps one fsync per batch). At start only the landing
bytes past the last checkpoint whose segment checks out are read: a crash between the landing
fsync and the id write, or a power cut that tore the id file, costs a short scan, never a key.
Files older than the redelivery window are neither read nor kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

INDEX_DIR = "_index"
_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})\.(?:ids|jsonl)$")
_ID = re.compile(rb'^\{"id":("(?:[^"\\]|\\.)*")')


def id_path(landing_path: Path) -> Path:
    """The id file of a landing file `<root>/<stream>/date=D.jsonl`."""
    return landing_path.parent.parent / INDEX_DIR / landing_path.parent.name / (landing_path.stem + ".ids")


def encode_keys(keys: Iterable[str], end_offset: int) -> bytes:
    """Keys and the checkpoint that says the landing file is indexed up to `end_offset`."""
    segment = b"".join(orjson.dumps(k) + b"\n" for k in keys)
    return segment + b"#%d %08x\n" % (end_offset, zlib.crc32(segment))


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


def _verified(data: bytes, landing_size: int) -> tuple[list[str], int, int] | None:
    """Keys up to the last checkpoint whose segment checks out, that checkpoint's landing offset
    and its end in the id file; None if a checkpoint points past the landing file (it was
    replaced or cut: trust nothing)."""
    keys: list[str] = []
    segment: list[bytes] = []
    offset = end = pos = 0
    for raw in data.split(b"\n")[:-1]:  # a last piece without its newline is torn
        pos += len(raw) + 1
        if raw.startswith(b"#"):
            try:
                at, crc = raw[1:].split(b" ")
                at_offset, at_crc = int(at), int(crc, 16)
            except ValueError:
                break
            if at_crc != zlib.crc32(b"".join(s + b"\n" for s in segment)):
                break
            if at_offset > landing_size:
                return None
            try:
                keys.extend(orjson.loads(s) for s in segment)
            except orjson.JSONDecodeError:
                break
            segment.clear()
            offset, end = at_offset, pos
        else:
            segment.append(raw)
    return keys, offset, end


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


def load(landing_root: Path, stream: str, days: int, today: date | None = None) -> Loaded:
    """The keys of `days` (and tomorrow's, for clock skew) of `stream`, from the id files and the
    landing bytes they do not cover yet, which are then indexed so the next start skips them."""
    today = today or datetime.now(UTC).date()
    wanted = {(today - timedelta(days=n)).isoformat() for n in range(-1, days + 1)}
    loaded = Loaded()
    index_dir = landing_root / INDEX_DIR / stream
    if index_dir.is_dir():  # the redelivery window bounds the index: older days are dropped
        for old in index_dir.glob("date=*.ids"):
            match = _DAY.search(old.name)
            if match and match.group(1) not in wanted and match.group(1) < min(wanted):
                old.unlink(missing_ok=True)
    for day in sorted(wanted):
        landing = landing_root / stream / f"date={day}.jsonl"
        if not landing.exists():
            continue
        ids = id_path(landing)
        size = landing.stat().st_size
        data = ids.read_bytes() if ids.exists() else b""
        verified = _verified(data, size) or ([], 0, 0)
        keys, start, keep = verified
        loaded.keys.extend(keys)
        tail, end, scanned = _scan(landing, start)
        loaded.keys.extend(tail)
        loaded.scanned_bytes += scanned
        if keep != len(data) or end != start:
            ids.parent.mkdir(parents=True, exist_ok=True)
            with ids.open("r+b" if ids.exists() else "wb") as handle:
                handle.truncate(keep)  # an unverified tail would hide every checkpoint after it
                handle.seek(keep)
                if end != start:
                    handle.write(encode_keys(tail, end))
    return loaded


class IdWriter:
    """Appends keys and checkpoints to the id files; used by the landing writer thread only."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def record(self, landing_path: Path, keys: list[str], end_offset: int) -> None:
        path = id_path(landing_path)
        try:
            fd = self._fds.get(path)
            if fd is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                if len(self._fds) >= 8:
                    for old in list(self._fds):
                        os.close(self._fds.pop(old))
                self._fds[path] = fd
            os.write(fd, encode_keys(keys, end_offset))
        except OSError:  # the landing line is durable; the next start scans it instead
            log.exception("could not index %s", landing_path)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class Claim:
    """The claim of one delivery's keys, until its write settles."""

    def __init__(self, keys: tuple[str, ...], settled: asyncio.Future) -> None:
        self.keys = keys
        self.settled = settled  # True once durable, False if the write failed


class DeliveryIndex:
    """The keys of deliveries landed within the redelivery window (GitHub redelivers for up to 3
    days; 7 are kept), and of those being landed now."""

    def __init__(self, landing_root: Path, stream: str, days: int = 7) -> None:
        started = time.monotonic()
        loaded = load(landing_root, stream, days)
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

