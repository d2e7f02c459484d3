"""Tail log files (JSON lines, syslog, plain text) through rotation and truncation, resumably.

`LogTailer(patterns, cursor_store).read_batch(n)` returns parsed records and the cursor that
covers them; the caller lands the records durably, then `commit(batch)`. A restart reads the
committed cursor and goes on from there: a crash between landing and committing replays what was
read since the last commit, under the same ids (`cc_events.sources.logs.log_event_id`: inode, the file's
generation, offset), which is what the landing dedupes on. Nothing is lost, nothing lands twice.

A file is known by its identity `(device, inode)` plus a fingerprint of its first bytes, not by
its name, so rotation is followed:

- Rename rotation (`app.log` → `app.log.1`, a new `app.log`): the old inode is found again among
  the rotated names beside each log (`app.log.1`, `app.log-20240115`, ...) and read to its end
  before the new file's lines (its descriptor is also kept open, so it can be finished even if
  it is deleted first); the new file is read from 0. A rotated file is done once read to its end
  and unchanged for `rotated_settle` seconds; only then is an unterminated last line taken as is.
- copytruncate (`app.log` copied to `app.log.1`, then truncated): the size drops below the
  offset, or the first bytes no longer match the fingerprint. The new content is read from 0,
  and the copy, recognised by the old fingerprint, is read on from the old offset, its lines
  named after the original file; what is written between the copy and the truncation is lost by
  copytruncate itself. An inode number reused by a new file is caught the same way.
- A rotated file never seen before (a log rotated twice while we were down) is read from 0 when
  it was written to after the cursor was first created, unless it is a copy of what we have read;
  older rotated files, and compressed ones (`.gz`, ...), are never read.

Records: `path` (the file read), `log` (the live path it belongs to), `device`, `inode`,
`file_gen`, `offset` (of the line's first byte), `line_no` (1-based, None when reading started
mid-file), `received_at`, `raw`, `format` (json | syslog | plain | invalid), `ts`, `level`,
`service`, `host`, `message`, `fields`, `problem` (None, or why the line is suspect) and `cut`.
A line that cannot be decoded or parsed is still a record (`format: "invalid"` and a `problem`),
never an exception: the tailer's job is to move every byte into the lake.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, Protocol

CURSOR_VERSION = 1
DEFAULT_MAX_LINE_BYTES = 64 * 1024
_CHUNK = 256 * 1024
# A file's generation is named by its first line (at most this many bytes): fixed once written,
# so ids stay stable, and different after the inode is reused or the file truncated.
_GEN_BYTES = 256
# The fingerprint covers a file's first bytes (up to this many; bytes once written never change in
# a file that is only appended to): a truncated and rewritten file, a reused inode and a
# copytruncate copy are told apart by it.
_FP_BYTES = 4096
# Rotated files last written this long before the cursor was created are history, not new data.
_ADOPT_MARGIN_NS = 2_000_000_000
# A tracked file missing from this many scans in a row is forgotten.
_DROP_AFTER_MISSING = 3
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".tgz", ".br")
# `app.log.1`, `app.log.1.2`, `app.log-20240115`, `app.log-2024011503`, `app.log.2024-01-15`.
_ROTATED = re.compile(
    r"[.-](?:\d{1,4}|\d{8}(?:[-_T]?\d{2,6})?|\d{4}-\d{2}-\d{2}(?:[-_T]\d{2}(?:[-:]?\d{2}){0,2})?)(?:\.\d{1,4})?$"
)


class CursorStoreProtocol(Protocol):
    """Where cursors live (resources/cursors.py provides one); `set` must be durable on return."""

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
class _File:
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
    def from_dict(cls, data: Mapping[str, Any], now: float) -> _File:
        return cls(**{name: data[name] for name in cls.PERSISTED if name in data}, changed_at=now)


@dataclass(frozen=True)
class _Seen:
    path: str
    log: str
    live: bool
    st: os.stat_result


@dataclass
class _Truncated:
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
class _Line:
    offset: int
    line_no: int | None
    data: bytes
    problem: str | None = None
    cut: bool = False


class LogTailer:
    """Reads new lines from every file matching `patterns` (globs; `**` allowed).

    Not thread-safe. Reading advances an in-memory position, so consecutive `read_batch` calls
    return consecutive lines; `commit(batch)` stores the position after that batch (and after
    every batch read before it). `reset()` goes back to the last committed cursor. Besides
    commits, the store is written when the cursor is first created and when new files are found
    (at the offsets reading them starts from, so that skips nothing).
    """

    def __init__(
        self,
        patterns: str | Iterable[str],
        cursor_store: CursorStoreProtocol,
        *,
        cursor_key: str = "logs",
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        rotated_settle: float = 2.0,
        start_at: Literal["beginning", "end"] = "beginning",
        syslog_tz: tzinfo = UTC,
        clock: Any = time.monotonic,
    ) -> None:
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if not self.patterns:
            raise ValueError("no log file patterns")
        if max_line_bytes < _GEN_BYTES:
            raise ValueError(f"max_line_bytes must be at least {_GEN_BYTES}")
        if start_at not in ("beginning", "end"):
            raise ValueError("start_at is 'beginning' or 'end'")
        self.store = cursor_store
        self.cursor_key = cursor_key
        self.max_line_bytes = max_line_bytes
        self.rotated_settle = rotated_settle
        self.start_at = start_at
        self.syslog_tz = syslog_tz
        self._clock = clock
        self._fds: dict[str, int] = {}
        self._epoch = 0
        self._load()

    # --- public ----------------------------------------------------------------------------------

    def read_batch(self, max_lines: int = 1000) -> Batch:
        """Up to `max_lines` records (blank lines are skipped and not counted)."""
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self._seq += 1
        now = self._clock()
        received_at = datetime.now(UTC)
        incidents: list[dict[str, Any]] = []
        seen = self._scan()
        self._pending += self._reconcile(seen, now, incidents)
        self._adopt(seen, now, incidents)
        for t in self._pending:
            t.scans_left -= 1
            if t.scans_left <= 0 and t.unread:
                incidents.append(_incident("lost", t.path, t.key, offset=t.offset, bytes=t.unread))
        self._pending = [t for t in self._pending if t.scans_left > 0]
        self._received_iso = iso_utc(received_at)
        records = self._read(max_lines, received_at, now, incidents)
        self._first_scan = False
        cursor = self._cursor()
        changed = cursor != self._last_cursor
        self._last_cursor = cursor
        return Batch(records, incidents, cursor, self._seq, changed, self._epoch)

    def commit(self, batch: Batch) -> None:
        """Store the batch's cursor: call it only once the batch's records are landed."""
        if batch.epoch != self._epoch:
            raise ValueError("this batch was read before reset(); read it again")
        if batch.seq < self._committed_seq:
            raise ValueError(f"batch {batch.seq} is older than the committed batch {self._committed_seq}")
        if batch.seq == self._committed_seq:
            return
        self.store.set(self.cursor_key, batch.cursor)
        self._committed_seq = batch.seq
        self._committed = batch.cursor

    def reset(self) -> None:
        """Forget what was read since the last commit (after a failed landing)."""
        self.close()
        self._epoch += 1
        self._load()

    def close(self) -> None:
        for key in list(self._fds):
            self._close(key)

    def __enter__(self) -> LogTailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # --- state -----------------------------------------------------------------------------------

    def _load(self) -> None:
        cursor = self.store.get(self.cursor_key)
        self._first_scan = cursor is None
        if cursor is None:
            # Stored at once: rotated files written after this moment are new data even if this
            # process dies before its first commit.
            cursor = {"version": CURSOR_VERSION, "since_ns": time.time_ns(), "files": {}}
            self.store.set(self.cursor_key, cursor)
        if cursor.get("version") != CURSOR_VERSION:
            raise ValueError(f"log cursor {self.cursor_key!r} has version {cursor.get('version')!r}, "
                             f"expected {CURSOR_VERSION}")
        now = self._clock()
        self._since_ns = int(cursor["since_ns"])
        self._files = {key: _File.from_dict(data, now) for key, data in (cursor.get("files") or {}).items()}
        self._pending = [_Truncated(**t) for t in cursor.get("truncated") or []]
        self._history: dict[str, int] = {}  # rotated files skipped as history, by mtime
        self._errors: set[tuple[str, str]] = set()
        self._seq = self._committed_seq = 0
        self._last_cursor = self._cursor()
        self._committed = json.loads(json.dumps(cursor))  # what the store holds
        self._committed.setdefault("files", {})

    def _cursor(self) -> dict[str, Any]:
        return {
            "version": CURSOR_VERSION,
            "since_ns": self._since_ns,
            "files": {key: f.to_dict() for key, f in sorted(self._files.items())},
            "truncated": [t.to_dict() for t in self._pending],
        }

    # --- discovery -------------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Seen]:
        matched: set[str] = set()
        for pattern in self.patterns:
            for path in glob.glob(pattern, recursive=True):
                if not path.lower().endswith(_COMPRESSED):
                    matched.add(os.path.abspath(path))
        known_logs = {f.log for f in self._files.values()}
        live: list[str] = []
        rotated: dict[str, str] = {}
        for path in sorted(matched):
            base = rotation_base(path)
            if base is not None and (base in matched or base in known_logs):
                rotated[path] = base
            else:
                live.append(path)
        listings: dict[str, list[str]] = {}
        for log in sorted(set(live) | known_logs):
            for sibling in _rotated_siblings(log, listings):
                rotated.setdefault(sibling, log)
        seen: dict[str, _Seen] = {}
        candidates = [(p, p, True) for p in live] + [(p, log, False) for p, log in sorted(rotated.items())]
        for path, log, is_live in candidates:
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated away between the listing and the stat: the next scan sees it
            if stat.S_ISREG(st.st_mode):
                seen.setdefault(_key(st), _Seen(path, log, is_live, st))
        return seen

    def _reconcile(self, seen: dict[str, _Seen], now: float, incidents: list) -> list[_Truncated]:
        """Follow tracked files to where they are now; detect truncation; forget vanished files."""
        truncated: list[_Truncated] = []
        for key, f in list(self._files.items()):
            s = seen.get(key)
            if s is None:
                st = self._fstat(key) if not f.done else None
                if st is not None:  # deleted or moved out of sight, but still open: finish it
                    f.live, f.missing = False, 0
                    _observe(f, st.st_size, st.st_mtime_ns, now)
                    continue
                f.missing += 1
                if f.missing >= _DROP_AFTER_MISSING:
                    self._forget(key, f, incidents)
                continue
            f.missing = 0
            moved = s.path != f.path
            touched = moved or s.st.st_size != f.size or s.st.st_mtime_ns != f.mtime_ns
            last_size = f.size
            _observe(f, s.st.st_size, s.st.st_mtime_ns, now)
            if f.done and not touched:
                continue
            if f.size < f.offset or (f.fp_len > 0 and not self._prefix_matches(key, s.path, f)):
                # Truncated (copytruncate, perhaps renamed since), or deleted and its inode number
                # given to a new file: either way this content is new to us and is adopted afresh,
                # and the old content's copy, if one turns up, is read on from where we were.
                truncated.append(_Truncated(key, f.path, f.fp, f.fp_len, f.offset, f.line_no, f.skip_to_newline,
                                            f.gen, max(0, last_size - f.offset)))
                incidents.append(_incident("replaced" if moved else "truncated", s.path, key,
                                           offset=f.offset, size=f.size, previous_path=f.path))
                self._close(key)
                del self._files[key]
                continue
            if moved:
                incidents.append(_incident("rotated" if f.live and not s.live else "moved", s.path, key,
                                           previous_path=f.path, offset=f.offset))
                f.path = s.path
            f.log, f.live = s.log, s.live
            if f.done and f.size > f.offset:
                f.done = False  # written to again after we finished it
        return truncated

    def _forget(self, key: str, f: _File, incidents: list) -> None:
        self._close(key)
        del self._files[key]
        if not f.done:
            incidents.append(_incident("vanished", f.path, key, offset=f.offset, size=f.size))

    def _adopt(self, seen: dict[str, _Seen], now: float, incidents: list) -> None:
        """Start tracking files seen for the first time (or seen again with new content)."""
        live_by_log: dict[str, list[_Seen]] = {}
        for s in seen.values():
            if s.live:
                live_by_log.setdefault(s.log, []).append(s)
        discovered: list[str] = []
        for key, s in seen.items():
            if key in self._files:
                continue
            dev, ino = s.st.st_dev, s.st.st_ino
            if s.live:
                f = _File(dev, ino, s.path, s.log, live=True)
                if self._first_scan and self.start_at == "end":
                    f.offset, f.line_no = self._end_of_last_line(s.path, key, s.st.st_size), None
                _observe(f, s.st.st_size, s.st.st_mtime_ns, now)
                self._files[key] = f
                self._fingerprint(key, f)
                discovered.append(key)
                incidents.append(_incident("opened", s.path, key, offset=f.offset))
                continue
            if self._history.get(key) == s.st.st_mtime_ns:
                continue
            found = self._head_and_size(s.path, key)
            if not found or not found[0]:
                continue  # nothing to read, and nothing to tell a new file from a copy being made
            head, size = found
            f = _File(dev, ino, s.path, s.log)
            copied = next((t for t in self._pending if t.fp_len and len(head) >= t.fp_len
                           and size >= t.offset and _sha(head[:t.fp_len]) == t.fp), None)
            if copied is not None:
                # The copy of a file truncated under us: go on from where we were in the original.
                self._pending.remove(copied)
                f.offset, f.line_no, f.skip_to_newline = copied.offset, copied.line_no, copied.skip_to_newline
                f.gen, f.copy_of = copied.gen, copied.key
                incidents.append(_incident("copy_followed", s.path, key, offset=f.offset, copy_of=copied.path))
            elif self._is_copy_of_tracked(head, live_by_log.get(s.log, ())):
                continue  # a copy of what we read (copytruncate under way): never read it twice
            elif s.st.st_mtime_ns >= self._since_ns - _ADOPT_MARGIN_NS:
                discovered.append(key)
                incidents.append(_incident("adopted", s.path, key, offset=0))
            else:
                self._history[key] = s.st.st_mtime_ns
                continue
            _observe(f, size, s.st.st_mtime_ns, now)
            f.fp, f.fp_len = _sha(head), len(head)
            self._files[key] = f
        if discovered:
            self._remember(discovered)

    def _remember(self, keys: list[str]) -> None:
        """Store newly found files before any of their lines is handed out.

        Their offsets are where reading starts, so this skips nothing; but should the caller land
        lines from them and die before committing, the restarted tailer knows the file, and so
        recognises its copytruncate copy and names the copy's lines as it named the original's.
        """
        cursor = json.loads(json.dumps(self._committed))
        cursor.setdefault("truncated", [])
        for key in keys:
            old = cursor["files"].get(key)
            if old and old.get("fp_len") and old.get("fp") != self._files[key].fp:
                # Replacing a committed entry whose file was truncated: keep looking for its copy
                # from the committed offset, so that a restart neither loses nor re-names lines.
                cursor["truncated"].append(_Truncated(
                    key, old["path"], old["fp"], old["fp_len"], old["offset"], old.get("line_no"),
                    bool(old.get("skip_to_newline")), old.get("gen"),
                    max(0, int(old.get("size") or 0) - old["offset"])).to_dict())
            cursor["files"][key] = self._files[key].to_dict()
        self.store.set(self.cursor_key, cursor)
        self._committed = cursor

    def _remember_fingerprint(self, key: str, f: _File) -> None:
        """The committed entry, with the fingerprint of a file that was empty when first stored."""
        entry = self._committed["files"].get(key)
        if entry is None or entry.get("fp_len"):
            return
        cursor = json.loads(json.dumps(self._committed))
        cursor["files"][key].update(fp=f.fp, fp_len=f.fp_len, gen=f.gen)
        self.store.set(self.cursor_key, cursor)
        self._committed = cursor

    def _fingerprint(self, key: str, f: _File) -> None:
        head = self._read_head(f.path, key)
        if head:
            f.fp, f.fp_len = _sha(head), len(head)

    def _is_copy_of_tracked(self, head: bytes, live: Iterable[_Seen]) -> bool:
        for f in self._files.values():
            if f.fp_len and len(head) >= f.fp_len and _sha(head[:f.fp_len]) == f.fp:
                return True
        for s in live:
            other = self._read_head(s.path, _key(s.st)) or b""
            n = min(len(head), len(other))
            if n and head[:n] == other[:n] and (n == len(head) or n >= 32):
                return True
        return False

    # --- reading ---------------------------------------------------------------------------------

    def _read(self, budget: int, received_at: datetime, now: float, incidents: list) -> list[dict[str, Any]]:
        logs = sorted({f.log for f in self._files.values() if not f.done})
        if logs:  # start with a different log each batch, so one busy log cannot starve the rest
            k = self._seq % len(logs)
            logs = logs[k:] + logs[:k]
        records: list[dict[str, Any]] = []
        for log in logs:
            # Rotated files first, oldest first: a log's lines come out in the order written.
            members = sorted(((key, f) for key, f in self._files.items() if f.log == log and not f.done),
                             key=lambda kf: (kf[1].live, kf[1].mtime_ns, kf[1].path))
            for key, f in members:
                if len(records) >= budget:
                    return records
                records.extend(self._read_file(key, f, budget - len(records), received_at, now, incidents))
        return records

    def _read_file(self, key: str, f: _File, budget: int, received_at: datetime, now: float,
                   incidents: list) -> list[dict[str, Any]]:
        fd = self._fd(key, f, incidents)
        if fd is None:
            return []
        size = f.size
        final = not f.live and now - f.changed_at >= self.rotated_settle
        if f.offset >= size:
            if final:
                self._finish(key, f, incidents)
            return []
        try:
            head = os.pread(fd, _FP_BYTES, 0)
            if f.fp_len and (len(head) < f.fp_len or _sha(head[:f.fp_len]) != f.fp):
                return []  # truncated or rewritten since the scan: the next scan restarts it
            gen = f.gen or _generation(head, final)
            if gen is None:
                return []  # not one complete line yet
            lines, pos, line_no, skip = self._split(fd, f, size, budget, final)
            if pos == f.offset:
                return []
            # The content must not have changed while we read it: a truncate and rewrite would
            # have handed us the new bytes at the old offset.
            new_fp_len = len(head)  # every byte there is final in a file only ever appended to
            check = max(f.fp_len, new_fp_len)
            if len(head) < check or os.pread(fd, check, 0) != head[:check]:
                return []
        except OSError as exc:
            self._error(incidents, f.path, key, exc)
            return []
        f.gen = gen
        if new_fp_len > f.fp_len:
            first = not f.fp_len
            f.fp, f.fp_len = _sha(head[:new_fp_len]), new_fp_len
            if first:  # found empty: the store must know its fingerprint before its lines go out
                self._remember_fingerprint(key, f)
        f.offset, f.line_no, f.skip_to_newline = pos, line_no, skip
        if final and f.offset >= size:
            self._finish(key, f, incidents)
        return [self._record(f, line, received_at) for line in lines]

    def _split(self, fd: int, f: _File, size: int, budget: int, final: bool):
        """Complete lines from `f.offset` up to `size`: (lines, new offset, line_no, skip)."""
        limit = self.max_line_bytes
        pos, line_no, skip = f.offset, f.line_no, f.skip_to_newline
        lines: list[_Line] = []
        buf, i, read_pos = b"", 0, pos  # buf[i] is the byte at file offset `pos`
        while len(lines) < budget:
            nl = buf.find(b"\n", i)
            if nl < 0:
                rest = len(buf) - i
                if skip and rest:  # the tail of a cut line: drop it
                    pos, buf, i, rest = pos + rest, b"", 0, 0
                if read_pos < size and rest <= limit:
                    chunk = os.pread(fd, min(_CHUNK, size - read_pos), read_pos)
                    if not chunk:
                        break
                    buf, i, read_pos = buf[i:] + chunk, 0, read_pos + len(chunk)
                    continue
                if rest == 0:
                    break
                if rest > limit:  # too long and still unterminated: keep its start, drop the rest
                    line_no = _next(line_no)
                    lines.append(_Line(pos, line_no, buf[i:i + limit], f"line longer than {limit} bytes: cut",
                                       cut=True))
                    pos, buf, i, skip = pos + rest, b"", 0, True
                    continue
                if final and read_pos >= size:  # the file is rotated and quiet: take it as it is
                    line_no = _next(line_no)
                    lines.append(_Line(pos, line_no, buf[i:], "no newline at the end of a rotated file"))
                    pos, buf, i = pos + rest, b"", 0
                break  # wait for the newline
            line, start = buf[i:nl], pos
            pos, i = pos + nl + 1 - i, nl + 1
            if skip:
                skip = False
                continue
            line_no = _next(line_no)
            if len(line) > limit:
                lines.append(_Line(start, line_no, line[:limit],
                                   f"line of {len(line)} bytes, longer than {limit}: cut", cut=True))
            elif line.strip(b" \t\r"):
                lines.append(_Line(start, line_no, line))
        return lines, pos, line_no, skip

    def _record(self, f: _File, line: _Line, received_at: datetime) -> dict[str, Any]:
        parsed = parse_line(line.data, received_at=received_at, tz=self.syslog_tz)
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
            "received_at": self._received_iso,
            **parsed,
            "problem": problem,
            "cut": line.cut,
        }

    def _finish(self, key: str, f: _File, incidents: list) -> None:
        f.done = True
        self._close(key)
        incidents.append(_incident("finished", f.path, key, offset=f.offset))

    def _end_of_last_line(self, path: str, key: str, size: int) -> int:
        """Where `start_at="end"` starts: after the last complete line."""
        fd = self._fd_path(path, key)
        if fd is None:
            return size
        try:
            start = max(0, size - _CHUNK)
            tail = os.pread(fd, size - start, start)
        finally:
            os.close(fd)
        return start + tail.rfind(b"\n") + 1 if b"\n" in tail else start

    # --- file handles ----------------------------------------------------------------------------

    def _fd(self, key: str, f: _File, incidents: list | None = None) -> int | None:
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = self._fd_path(f.path, key)
            except OSError as exc:
                if incidents is not None:
                    self._error(incidents, f.path, key, exc)
                return None
            if fd is not None:
                self._fds[key] = fd
        return fd

    @staticmethod
    def _fd_path(path: str, key: str) -> int | None:
        """An open descriptor on `path` if it is still the file `key` names (it may have moved)."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if _key(os.fstat(fd)) != key:
            os.close(fd)
            return None
        return fd

    def _fstat(self, key: str) -> os.stat_result | None:
        fd = self._fds.get(key)
        if fd is None:
            return None
        try:
            return os.fstat(fd)
        except OSError:
            self._close(key)
            return None

    def _close(self, key: str) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)

    def _prefix_matches(self, key: str, path: str, f: _File) -> bool:
        head = self._read_head(path, key)
        if head is None:
            return True  # cannot tell; the size check still applies
        return len(head) >= f.fp_len and _sha(head[:f.fp_len]) == f.fp

    def _read_head(self, path: str, key: str) -> bytes | None:
        found = self._head_and_size(path, key)
        return None if found is None else found[0]

    def _head_and_size(self, path: str, key: str) -> tuple[bytes, int] | None:
        """The file's first bytes and its size now (not at the scan: a copy may be under way)."""
        fd = self._fds.get(key)
        try:
            if fd is not None:
                return os.pread(fd, _FP_BYTES, 0), os.fstat(fd).st_size
            fd = self._fd_path(path, key)
            if fd is None:
                return None
            try:
                return os.pread(fd, _FP_BYTES, 0), os.fstat(fd).st_size
            finally:
                os.close(fd)
        except OSError:
            return None

    def _error(self, incidents: list, path: str, key: str, exc: OSError) -> None:
        if (key, type(exc).__name__) not in self._errors:  # once per file and kind, not every scan
            self._errors.add((key, type(exc).__name__))
            incidents.append(_incident("unreadable", path, key, error=f"{type(exc).__name__}: {exc}"))


# --- helpers ---------------------------------------------------------------------------------------


def rotation_base(path: str) -> str | None:
    """`/var/log/app.log.1` → `/var/log/app.log`; None when the name has no rotation suffix."""
    directory, name = os.path.split(path)
    match = _ROTATED.search(name)
    return os.path.join(directory, name[:match.start()]) if match and match.start() > 0 else None


def _rotated_siblings(log: str, listings: dict[str, list[str]]) -> list[str]:
    directory, name = os.path.split(log)
    if directory not in listings:
        try:
            listings[directory] = os.listdir(directory or ".")
        except OSError:
            listings[directory] = []
    return [os.path.join(directory, n) for n in listings[directory]
            if n.startswith(name) and len(n) > len(name) and _ROTATED.fullmatch(n[len(name):])
            and not n.lower().endswith(_COMPRESSED)]


def _key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _sha(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _generation(head: bytes, final: bool) -> str | None:
    nl = head.find(b"\n", 0, _GEN_BYTES)
    if nl >= 0:
        head = head[:nl + 1]
    elif len(head) < _GEN_BYTES and not final:
        return None
    return _sha(head[:_GEN_BYTES])[:12]


def _next(line_no: int | None) -> int | None:
    return None if line_no is None else line_no + 1


def _observe(f: _File, size: int, mtime_ns: int, now: float) -> None:
    if size != f.size or mtime_ns != f.mtime_ns:
        f.size, f.mtime_ns, f.changed_at = size, mtime_ns, now


def _incident(kind: str, path: str, key: str, **detail: Any) -> dict[str, Any]:
    device, inode = (int(x) for x in key.split(":"))
    return {"kind": kind, "path": path, "device": device, "inode": inode,
            "at": iso_utc(datetime.now(UTC)), **detail}


def iso_utc(moment: datetime) -> str:
    """`2024-01-15T09:00:00.123000Z`: aware times converted to UTC, naive ones taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- parsing ---------------------------------------------------------------------------------------

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
# Syslog severities 0..7 (RFC 5424 §6.2.1).
SYSLOG_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
_LEVEL_NAMES = {
    "trace": "trace", "debug": "debug", "dbg": "debug", "info": "info", "information": "info",
    "informational": "info", "notice": "notice", "warn": "warning", "warning": "warning",
    "err": "error", "error": "error", "severe": "error", "crit": "critical", "critical": "critical",
    "fatal": "critical", "alert": "alert", "emerg": "emergency", "emergency": "emergency", "panic": "emergency",
}
# pino / bunyan numeric levels.
_NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warning", 50: "error", 60: "critical"}
_LEVEL_WORD = re.compile(
    r"(?:^|[\s\[(<|])(?:(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|CRIT(?:ICAL)?|FATAL|ALERT|EMERG|PANIC)"
    r"|(?i:(?:level|lvl|severity)=|\[|<)((?i:trace|debug|info|notice|warn(?:ing)?|error|err|crit(?:ical)?|fatal"
    r"|alert|emerg)))"
    r"(?=[\s\]):|>,;]|$)"
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_RFC5424 = re.compile(r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?(.*)", re.DOTALL)
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? (.*)", re.DOTALL)
_RSYSLOG_ISO = re.compile(
    r"(?:<(\d{1,3})>)?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})) (.*)", re.DOTALL)
_TAG = re.compile(r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?: ?(.*)", re.DOTALL)
_LEADING_TIME = re.compile(
    r"\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)\]?")

_JSON_KEYS = {
    "ts": ("ts", "time", "timestamp", "@timestamp", "datetime", "date", "t", "asctime"),
    "level": ("level", "severity", "lvl", "loglevel", "log_level", "levelname", "level_name",
              "log.level", "@level"),
    "service": ("service", "service.name", "app", "application", "logger", "logger_name", "component",
                "name", "syslog.appname"),
    "host": ("host", "hostname", "host.name", "host.hostname"),
    "message": ("msg", "message", "@message", "log", "text", "event"),
}


def parse_line(data: bytes, *, received_at: datetime | None = None, tz: tzinfo = UTC) -> dict[str, Any]:
    """One line (without its newline) → `raw, format, ts, level, service, host, message, fields,
    problem`. Never raises: what cannot be read is `format: "invalid"` with the reason."""
    received_at = received_at or datetime.now(UTC)
    if data.endswith(b"\r"):
        data = data[:-1]
    problems = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        problems.append(f"invalid UTF-8 at byte {exc.start}")
    if "\x00" in text:
        # Kept visible but storable: Postgres text cannot hold NUL.
        problems.append(f"{text.count(chr(0))} NUL byte(s)")
        text = text.replace("\x00", "\ufffd")
    if problems:
        return _parsed(text, "invalid", message=text, problem="; ".join(problems))
    stripped = text.strip()
    if stripped.startswith("{"):
        return _parse_json(text, stripped, tz)
    for parser in (_parse_rfc5424, _parse_rsyslog_iso, _parse_rfc3164):
        parsed = parser(text, received_at, tz)
        if parsed is not None:
            return parsed
    return _parse_plain(text, tz)


def _parsed(raw: str, fmt: str, *, ts: str | None = None, level: str | None = None, service: str | None = None,
            host: str | None = None, message: str | None = None, fields: dict | None = None,
            problem: str | None = None) -> dict[str, Any]:
    return {"raw": raw, "format": fmt, "ts": ts, "level": level, "service": service, "host": host,
            "message": message, "fields": fields or {}, "problem": problem}


def _parse_json(text: str, stripped: str, tz: tzinfo) -> dict[str, Any]:
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        return _parsed(text, "invalid", message=text, problem=f"invalid JSON: {reason}")
    if not isinstance(obj, dict):
        return _parsed(text, "invalid", message=text, problem="invalid JSON: not an object")
    ts_value = _take(obj, _JSON_KEYS["ts"])
    ts = parse_timestamp(ts_value, tz)
    if ts_value is not None and ts is None:
        obj["ts"] = ts_value  # unreadable: keep it among the fields
    level_value = _take(obj, _JSON_KEYS["level"])
    message = _take(obj, _JSON_KEYS["message"])
    message = None if message is None else str(message).rstrip("\n")
    level = normalize_level(level_value)
    if level is None and level_value is not None:
        obj["level"] = level_value
    if level is None and message:
        level = level_in_text(message)
    service, host = _take(obj, _JSON_KEYS["service"]), _take(obj, _JSON_KEYS["host"])
    return _parsed(text, "json", ts=ts, level=level, service=None if service is None else str(service),
                   host=None if host is None else str(host), message=message, fields=obj)


def _take(obj: dict[str, Any], names: Iterable[str]) -> Any:
    """The first scalar under one of `names` (`a.b` also reaches into `{"a": {"b": ...}}`), removed."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            del obj[name]
            return value
        head, _, tail = name.partition(".")
        inner = obj.get(head)
        if tail and isinstance(inner, dict):
            value = inner.get(tail)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                del inner[tail]
                if not inner:
                    del obj[head]
                return value
    return None


def _parse_rfc5424(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    m = _RFC5424.fullmatch(text)
    if not m or int(m.group(1)) > 191:
        return None
    pri, version, stamp, host, app, procid, msgid, rest = m.groups()
    ts = None if stamp == "-" else parse_timestamp(stamp, tz)
    if stamp != "-" and ts is None:
        return None
    fields: dict[str, Any] = {"facility": int(pri) // 8, "severity": int(pri) % 8, "version": int(version)}
    if procid != "-":
        fields["pid"] = procid
    if msgid != "-":
        fields["msgid"] = msgid
    sd, message = _structured_data(rest)
    if sd:
        fields["structured_data"] = sd
    if message.startswith("\ufeff"):
        message = message[1:]
    return _parsed(text, "syslog", ts=ts, level=SYSLOG_SEVERITIES[int(pri) % 8],
                   service=None if app == "-" else app, host=None if host == "-" else host,
                   message=message, fields=fields)


def _structured_data(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    """RFC 5424 STRUCTURED-DATA (`-` or `[id k="v" ...]...`) and the message after it."""
    if rest.startswith("-"):
        return {}, rest[2:] if rest.startswith("- ") else rest[1:]
    elements: dict[str, dict[str, str]] = {}
    i, n = 0, len(rest)
    while i < n and rest[i] == "[":
        m = re.compile(r"\[([^\s\]=\"]+)").match(rest, i)
        if not m:
            return elements, rest[i:]
        params: dict[str, str] = {}
        i = m.end()
        while i < n and rest[i] == " ":
            pm = re.compile(r" ([^\s\]=\"]+)=\"").match(rest, i)
            if not pm:
                return elements, rest  # malformed: keep everything as the message
            i, value = pm.end(), []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n and rest[i + 1] in '"\\]':
                    i += 1
                value.append(rest[i])
                i += 1
            params[pm.group(1)] = "".join(value)
            i += 1
        if i >= n or rest[i] != "]":
            return elements, rest
        elements[m.group(1)] = params
        i += 1
    return elements, rest[i + 1:] if rest[i:i + 1] == " " else rest[i:]


def _parse_rsyslog_iso(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    """rsyslog's high-precision file format: `2024-01-15T09:00:00.123456+00:00 host tag[pid]: msg`."""
    m = _RSYSLOG_ISO.fullmatch(text)
    if not m:
        return None
    pri, stamp, rest = m.groups()
    ts = parse_timestamp(stamp, tz)
    if ts is None:
        return None
    return _syslog_body(text, pri, ts, rest)


def _parse_rfc3164(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    m = _RFC3164.fullmatch(text)
    if not m or m.group(2) not in _MONTHS or (m.group(1) and int(m.group(1)) > 191):
        return None
    pri, month, day, hh, mm, ss, frac, rest = m.groups()
    ts = _year_less_time(_MONTHS[month], int(day), int(hh), int(mm), int(ss), frac, received_at, tz)
    return _syslog_body(text, pri, ts, rest)


def _syslog_body(text: str, pri: str | None, ts: str | None, rest: str) -> dict[str, Any]:
    """`host tag[pid]: message` (the host may be missing when a tag follows the time directly)."""
    host: str | None = None
    first, _, after = rest.partition(" ")
    if after and not first.endswith(":") and "[" not in first:
        host, rest = first, after
    fields: dict[str, Any] = {}
    service = None
    tag = _TAG.fullmatch(rest)
    if tag:
        service, pid, message = tag.group(1), tag.group(2), tag.group(3)
        if pid:
            fields["pid"] = pid
    else:
        message = rest
    level = None
    if pri is not None:
        fields["facility"], fields["severity"] = int(pri) // 8, int(pri) % 8
        level = SYSLOG_SEVERITIES[int(pri) % 8]
    else:
        level = level_in_text(message)
    return _parsed(text, "syslog", ts=ts, level=level, service=service, host=host, message=message,
                   fields=fields)


def _year_less_time(month: int, day: int, hh: int, mm: int, ss: int, frac: str | None,
                    received_at: datetime, tz: tzinfo) -> str | None:
    """RFC 3164 has no year: the one that puts the time closest before (or just after) receipt."""
    received = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    micro = int((frac or "0").ljust(6, "0")[:6])
    for year in (received.year, received.year - 1):
        try:
            moment = datetime(year, month, day, hh, mm, ss, micro, tzinfo=tz)
        except ValueError:
            continue  # Feb 29 in a common year, or a bad day
        if moment <= received + timedelta(days=2):
            return iso_utc(moment)
    return None


def _parse_plain(text: str, tz: tzinfo) -> dict[str, Any]:
    ts = None
    m = _LEADING_TIME.match(text)
    if m:
        ts = parse_timestamp(m.group(1), tz)
    return _parsed(text, "plain", ts=ts, level=level_in_text(text), message=text)


def parse_timestamp(value: Any, tz: tzinfo = UTC) -> str | None:
    """ISO 8601 text or epoch seconds/ms/µs/ns → `...Z` in UTC; naive times are in `tz`."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\d{9,19}(\.\d+)?", value)):
            number = float(value)
            for scale in (1e9, 1e6, 1e3):
                if number > scale * 1e8:  # past ~1973 in that unit
                    number /= scale
                    break
            return iso_utc(datetime.fromtimestamp(number, UTC))
        if isinstance(value, str):
            text = value.strip().replace(",", ".")
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # nanoseconds: Python takes microseconds
            text = re.sub(r" ?(Z|z)$", "+00:00", text)
            text = re.sub(r" ([+-]\d{2}:?\d{2})$", r"\1", text)
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            return iso_utc(moment)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def normalize_level(value: Any) -> str | None:
    """`WARN`, `Warning`, `40` (pino), `3` (syslog severity) → one of LEVELS; None if unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(float(value))
        if 0 <= number <= 7:
            return SYSLOG_SEVERITIES[number]
        return _NUMERIC_LEVELS.get(number)
    return _LEVEL_NAMES.get(str(value).strip().lower())


def level_in_text(text: str) -> str | None:
    """A level named near the start of free text: `ERROR ...`, `[warn]`, `level=info`."""
    m = _LEVEL_WORD.search(text[:80])
    return None if m is None else normalize_level(m.group(1) or m.group(2))
