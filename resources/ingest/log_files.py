"""The log tailer's file bookkeeping: what it remembers per file, how it names files and rotations,
and how it cuts a file's new bytes into lines (resources/ingest/log_tailer.py uses all of it)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from resources.ingest.log_format import iso_utc, parse_line

CURSOR_VERSION = 1
DEFAULT_MAX_LINE_BYTES = 64 * 1024
CHUNK = 256 * 1024
# A file's generation is named by its first line (at most this many bytes): fixed once written,
# so ids stay stable, and different after the inode is reused or the file truncated.
GEN_BYTES = 256
# The fingerprint covers a file's first bytes (up to this many; bytes once written never change in
# a file that is only appended to): a truncated and rewritten file, a reused inode and a
# copytruncate copy are told apart by it.
FP_BYTES = 4096
# Rotated files last written this long before the cursor was created are history, not new data.
ADOPT_MARGIN_NS = 2_000_000_000
# A tracked file missing from this many scans in a row is forgotten.
DROP_AFTER_MISSING = 3
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".tgz", ".br")
# `app.log.1`, `app.log.1.2`, `app.log-20240115`, `app.log-2024011503`, `app.log.2024-01-15`.
ROTATED = re.compile(
    r"[.-](?:\d{1,4}|\d{8}(?:[-_T]?\d{2,6})?|\d{4}-\d{2}-\d{2}(?:[-_T]\d{2}(?:[-:]?\d{2}){0,2})?)(?:\.\d{1,4})?$"
)


class CursorStoreProtocol(Protocol):
    """Where cursors live (resources/storage/cursors.py provides one); `set` must be durable on return."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Batch:
    """Records read since the previous batch and the cursor to commit once they are landed.

    `incidents` are file-level happenings worth keeping, each `{kind, path, device, inode, at,
    ...}`: opened, adopted, rotated, moved, finished, truncated, replaced, copy_followed, lost,
    vanished, unreadable. `changed` is False when committing would store the same cursor again.
    """

    records: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    cursor: dict[str, Any]
    seq: int
    changed: bool
    epoch: int = 0


@dataclass
class LogFile:
    device: int
    inode: int
    path: str  # where it was last seen
    log: str  # the live path it belongs to (itself, or the log it was rotated from)
    offset: int = 0  # every byte before it is read and, once committed, landed
    line_no: int | None = 0  # lines before `offset`; None when reading started mid-file
    gen: str | None = None
    fp: str | None = None
    fp_len: int = 0
    skip_to_newline: bool = False  # inside a line that was cut at max_line_bytes
    done: bool = False
    copy_of: str | None = None  # a copytruncate copy: the file its lines were written to
    size: int = 0
    # What this process has seen; not part of the cursor.
    live: bool = False
    mtime_ns: int = 0
    changed_at: float = 0.0
    missing: int = 0

    # `size` is the last size seen: after a restart it still tells how much a vanished file had.
    PERSISTED = ("device", "inode", "path", "log", "offset", "line_no", "gen", "fp", "fp_len",
                 "skip_to_newline", "done", "copy_of", "size")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PERSISTED}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], now: float) -> LogFile:
        return cls(**{name: data[name] for name in cls.PERSISTED if name in data}, changed_at=now)


@dataclass(frozen=True)
class Seen:
    path: str
    log: str
    live: bool
    st: os.stat_result


@dataclass
class Truncated:
    """Where we were in a file found truncated, kept until its copytruncate copy turns up."""

    key: str
    path: str
    fp: str | None
    fp_len: int
    offset: int
    line_no: int | None
    skip_to_newline: bool
    gen: str | None
    unread: int = 0  # bytes seen past `offset` before the truncation: lost unless a copy turns up
    # The copy is made before the truncation, but the scan that saw the truncation may have listed
    # the folder before the copy existed: the next scans look for it too.
    scans_left: int = 3

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Line:
    offset: int
    line_no: int | None
    data: bytes
    problem: str | None = None
    cut: bool = False


def rotation_base(path: str) -> str | None:
    """`/var/log/app.log.1` → `/var/log/app.log`; None when the name has no rotation suffix."""
    directory, name = os.path.split(path)
    match = ROTATED.search(name)
    return os.path.join(directory, name[:match.start()]) if match and match.start() > 0 else None


def rotated_siblings(log: str, listings: dict[str, list[str]]) -> list[str]:
    directory, name = os.path.split(log)
    if directory not in listings:
        try:
            listings[directory] = os.listdir(directory or ".")
        except OSError:
            listings[directory] = []
    return [os.path.join(directory, n) for n in listings[directory]
            if n.startswith(name) and len(n) > len(name) and ROTATED.fullmatch(n[len(name):])
            and not n.lower().endswith(COMPRESSED)]


def file_key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def sha(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def generation(head: bytes, final: bool) -> str | None:
    nl = head.find(b"\n", 0, GEN_BYTES)
    if nl >= 0:
        head = head[:nl + 1]
    elif len(head) < GEN_BYTES and not final:
        return None
    return sha(head[:GEN_BYTES])[:12]


def next_line_no(line_no: int | None) -> int | None:
    return None if line_no is None else line_no + 1


def observe(f: LogFile, size: int, mtime_ns: int, now: float) -> None:
    if size != f.size or mtime_ns != f.mtime_ns:
        f.size, f.mtime_ns, f.changed_at = size, mtime_ns, now


def incident(kind: str, path: str, key: str, **detail: Any) -> dict[str, Any]:
    device, inode = (int(x) for x in key.split(":"))
    return {"kind": kind, "path": path, "device": device, "inode": inode,
            "at": iso_utc(datetime.now(UTC)), **detail}


def split_lines(fd: int, f: LogFile, size: int, budget: int, final: bool, limit: int):
    """Complete lines from `f.offset` up to `size`, each cut at `limit` bytes:
    (lines, new offset, line_no, skip)."""
    pos, line_no, skip = f.offset, f.line_no, f.skip_to_newline
    lines: list[Line] = []
    buf, i, read_pos = b"", 0, pos  # buf[i] is the byte at file offset `pos`
    while len(lines) < budget:
        nl = buf.find(b"\n", i)
        if nl < 0:
            rest = len(buf) - i
            if skip and rest:  # the tail of a cut line: drop it
                pos, buf, i, rest = pos + rest, b"", 0, 0
            if read_pos < size and rest <= limit:
                chunk = os.pread(fd, min(CHUNK, size - read_pos), read_pos)
                if not chunk:
                    break
                buf, i, read_pos = buf[i:] + chunk, 0, read_pos + len(chunk)
                continue
            if rest == 0:
                break
            if rest > limit:  # too long and still unterminated: keep its start, drop the rest
                line_no = next_line_no(line_no)
                lines.append(Line(pos, line_no, buf[i:i + limit], f"line longer than {limit} bytes: cut",
                                   cut=True))
                pos, buf, i, skip = pos + rest, b"", 0, True
                continue
            if final and read_pos >= size:  # the file is rotated and quiet: take it as it is
                line_no = next_line_no(line_no)
                lines.append(Line(pos, line_no, buf[i:], "no newline at the end of a rotated file"))
                pos, buf, i = pos + rest, b"", 0
            break  # wait for the newline
        line, start = buf[i:nl], pos
        pos, i = pos + nl + 1 - i, nl + 1
        if skip:
            skip = False
            continue
        line_no = next_line_no(line_no)
        if len(line) > limit:
            lines.append(Line(start, line_no, line[:limit],
                               f"line of {len(line)} bytes, longer than {limit}: cut", cut=True))
        elif line.strip(b" \t\r"):
            lines.append(Line(start, line_no, line))
    return lines, pos, line_no, skip


def open_if_same(path: str, key: str) -> int | None:
    """An open descriptor on `path` if it is still the file `key` names (it may have moved)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    if file_key(os.fstat(fd)) != key:
        os.close(fd)
        return None
    return fd



def end_of_last_line(path: str, key: str, size: int) -> int:
    """Where `start_at="end"` starts: after the last complete line."""
    fd = open_if_same(path, key)
    if fd is None:
        return size
    try:
        start = max(0, size - CHUNK)
        tail = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    return start + tail.rfind(b"\n") + 1 if b"\n" in tail else start



def head_and_size(fd: int | None, path: str, key: str) -> tuple[bytes, int] | None:
    """The file's first bytes and its size now, through `fd` when it is open (not at the scan: a copy may be under way)."""
    try:
        if fd is not None:
            return os.pread(fd, FP_BYTES, 0), os.fstat(fd).st_size
        fd = open_if_same(path, key)
        if fd is None:
            return None
        try:
            return os.pread(fd, FP_BYTES, 0), os.fstat(fd).st_size
        finally:
            os.close(fd)
    except OSError:
        return None



def line_record(f: LogFile, line: Line, received_at: datetime, received_iso: str, tz: tzinfo) -> dict[str, Any]:
    parsed = parse_line(line.data, received_at=received_at, tz=tz)
    problem = "; ".join(p for p in (parsed.pop("problem"), line.problem) if p) or None
    # A copy's lines are named after the file they were written to: read again from the copy
    # after a crash, they keep the ids they had when read from the original.
    device, inode = (int(x) for x in f.copy_of.split(":")) if f.copy_of else (f.device, f.inode)
    return {
        "path": f.path,
        "log": f.log,
        "device": device,
        "inode": inode,
        "file_gen": f.gen,
        "offset": line.offset,
        "line_no": line.line_no,
        "received_at": received_iso,
        **parsed,
        "problem": problem,
        "cut": line.cut,
    }
