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
import json
import os
import stat
import time
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from resources.ingest.log_files import (
    ADOPT_MARGIN_NS,
    COMPRESSED,
    CURSOR_VERSION,
    DEFAULT_MAX_LINE_BYTES,
    DROP_AFTER_MISSING,
    FP_BYTES,
    GEN_BYTES,
    Batch,
    CursorStoreProtocol,
    LogFile,
    Seen,
    Truncated,
    end_of_last_line,
    file_key,
    generation,
    head_and_size,
    incident,
    line_record,
    observe,
    open_if_same,
    rotated_siblings,
    rotation_base,
    sha,
    split_lines,
)
from resources.ingest.log_format import iso_utc


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
        if max_line_bytes < GEN_BYTES:
            raise ValueError(f"max_line_bytes must be at least {GEN_BYTES}")
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
                incidents.append(incident("lost", t.path, t.key, offset=t.offset, bytes=t.unread))
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
        self._files = {key: LogFile.from_dict(data, now) for key, data in (cursor.get("files") or {}).items()}
        self._pending = [Truncated(**t) for t in cursor.get("truncated") or []]
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

    def _scan(self) -> dict[str, Seen]:
        matched: set[str] = set()
        for pattern in self.patterns:
            for path in glob.glob(pattern, recursive=True):
                if not path.lower().endswith(COMPRESSED):
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
            for sibling in rotated_siblings(log, listings):
                rotated.setdefault(sibling, log)
        seen: dict[str, Seen] = {}
        candidates = [(p, p, True) for p in live] + [(p, log, False) for p, log in sorted(rotated.items())]
        for path, log, is_live in candidates:
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated away between the listing and the stat: the next scan sees it
            if stat.S_ISREG(st.st_mode):
                seen.setdefault(file_key(st), Seen(path, log, is_live, st))
        return seen

    def _reconcile(self, seen: dict[str, Seen], now: float, incidents: list) -> list[Truncated]:
        """Follow tracked files to where they are now; detect truncation; forget vanished files."""
        truncated: list[Truncated] = []
        for key, f in list(self._files.items()):
            s = seen.get(key)
            if s is None:
                st = self._fstat(key) if not f.done else None
                if st is not None:  # deleted or moved out of sight, but still open: finish it
                    f.live, f.missing = False, 0
                    observe(f, st.st_size, st.st_mtime_ns, now)
                    continue
                f.missing += 1
                if f.missing >= DROP_AFTER_MISSING:
                    self._forget(key, f, incidents)
                continue
            f.missing = 0
            moved = s.path != f.path
            touched = moved or s.st.st_size != f.size or s.st.st_mtime_ns != f.mtime_ns
            last_size = f.size
            observe(f, s.st.st_size, s.st.st_mtime_ns, now)
            if f.done and not touched:
                continue
            if f.size < f.offset or (f.fp_len > 0 and not self._prefix_matches(key, s.path, f)):
                # Truncated (copytruncate, perhaps renamed since), or deleted and its inode number
                # given to a new file: either way this content is new to us and is adopted afresh,
                # and the old content's copy, if one turns up, is read on from where we were.
                truncated.append(Truncated(key, f.path, f.fp, f.fp_len, f.offset, f.line_no, f.skip_to_newline,
                                            f.gen, max(0, last_size - f.offset)))
                incidents.append(incident("replaced" if moved else "truncated", s.path, key,
                                           offset=f.offset, size=f.size, previous_path=f.path))
                self._close(key)
                del self._files[key]
                continue
            if moved:
                incidents.append(incident("rotated" if f.live and not s.live else "moved", s.path, key,
                                           previous_path=f.path, offset=f.offset))
                f.path = s.path
            f.log, f.live = s.log, s.live
            if f.done and f.size > f.offset:
                f.done = False  # written to again after we finished it
        return truncated

    def _forget(self, key: str, f: LogFile, incidents: list) -> None:
        self._close(key)
        del self._files[key]
        if not f.done:
            incidents.append(incident("vanished", f.path, key, offset=f.offset, size=f.size))

    def _adopt(self, seen: dict[str, Seen], now: float, incidents: list) -> None:
        """Start tracking files seen for the first time (or seen again with new content)."""
        live_by_log: dict[str, list[Seen]] = {}
        for s in seen.values():
            if s.live:
                live_by_log.setdefault(s.log, []).append(s)
        discovered: list[str] = []
        for key, s in seen.items():
            if key in self._files:
                continue
            dev, ino = s.st.st_dev, s.st.st_ino
            if s.live:
                f = LogFile(dev, ino, s.path, s.log, live=True)
                if self._first_scan and self.start_at == "end":
                    f.offset, f.line_no = end_of_last_line(s.path, key, s.st.st_size), None
                observe(f, s.st.st_size, s.st.st_mtime_ns, now)
                self._files[key] = f
                self._fingerprint(key, f)
                discovered.append(key)
                incidents.append(incident("opened", s.path, key, offset=f.offset))
                continue
            if self._history.get(key) == s.st.st_mtime_ns:
                continue
            found = head_and_size(self._fds.get(key), s.path, key)
            if not found or not found[0]:
                continue  # nothing to read, and nothing to tell a new file from a copy being made
            head, size = found
            f = LogFile(dev, ino, s.path, s.log)
            copied = next((t for t in self._pending if t.fp_len and len(head) >= t.fp_len
                           and size >= t.offset and sha(head[:t.fp_len]) == t.fp), None)
            if copied is not None:
                # The copy of a file truncated under us: go on from where we were in the original.
                self._pending.remove(copied)
                f.offset, f.line_no, f.skip_to_newline = copied.offset, copied.line_no, copied.skip_to_newline
                f.gen, f.copy_of = copied.gen, copied.key
                incidents.append(incident("copy_followed", s.path, key, offset=f.offset, copy_of=copied.path))
            elif self._is_copy_of_tracked(head, live_by_log.get(s.log, ())):
                continue  # a copy of what we read (copytruncate under way): never read it twice
            elif s.st.st_mtime_ns >= self._since_ns - ADOPT_MARGIN_NS:
                discovered.append(key)
                incidents.append(incident("adopted", s.path, key, offset=0))
            else:
                self._history[key] = s.st.st_mtime_ns
                continue
            observe(f, size, s.st.st_mtime_ns, now)
            f.fp, f.fp_len = sha(head), len(head)
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
                cursor["truncated"].append(Truncated(
                    key, old["path"], old["fp"], old["fp_len"], old["offset"], old.get("line_no"),
                    bool(old.get("skip_to_newline")), old.get("gen"),
                    max(0, int(old.get("size") or 0) - old["offset"])).to_dict())
            cursor["files"][key] = self._files[key].to_dict()
        self.store.set(self.cursor_key, cursor)
        self._committed = cursor

    def _remember_fingerprint(self, key: str, f: LogFile) -> None:
        """The committed entry, with the fingerprint of a file that was empty when first stored."""
        entry = self._committed["files"].get(key)
        if entry is None or entry.get("fp_len"):
            return
        cursor = json.loads(json.dumps(self._committed))
        cursor["files"][key].update(fp=f.fp, fp_len=f.fp_len, gen=f.gen)
        self.store.set(self.cursor_key, cursor)
        self._committed = cursor

    def _fingerprint(self, key: str, f: LogFile) -> None:
        head = self._read_head(f.path, key)
        if head:
            f.fp, f.fp_len = sha(head), len(head)

    def _is_copy_of_tracked(self, head: bytes, live: Iterable[Seen]) -> bool:
        for f in self._files.values():
            if f.fp_len and len(head) >= f.fp_len and sha(head[:f.fp_len]) == f.fp:
                return True
        for s in live:
            other = self._read_head(s.path, file_key(s.st)) or b""
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

    def _read_file(self, key: str, f: LogFile, budget: int, received_at: datetime, now: float,
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
            head = os.pread(fd, FP_BYTES, 0)
            if f.fp_len and (len(head) < f.fp_len or sha(head[:f.fp_len]) != f.fp):
                return []  # truncated or rewritten since the scan: the next scan restarts it
            gen = f.gen or generation(head, final)
            if gen is None:
                return []  # not one complete line yet
            lines, pos, line_no, skip = split_lines(fd, f, size, budget, final, self.max_line_bytes)
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
            f.fp, f.fp_len = sha(head[:new_fp_len]), new_fp_len
            if first:  # found empty: the store must know its fingerprint before its lines go out
                self._remember_fingerprint(key, f)
        f.offset, f.line_no, f.skip_to_newline = pos, line_no, skip
        if final and f.offset >= size:
            self._finish(key, f, incidents)
        return [line_record(f, line, received_at, self._received_iso, self.syslog_tz) for line in lines]

    def _finish(self, key: str, f: LogFile, incidents: list) -> None:
        f.done = True
        self._close(key)
        incidents.append(incident("finished", f.path, key, offset=f.offset))

    # --- file handles ----------------------------------------------------------------------------

    def _fd(self, key: str, f: LogFile, incidents: list | None = None) -> int | None:
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = open_if_same(f.path, key)
            except OSError as exc:
                if incidents is not None:
                    self._error(incidents, f.path, key, exc)
                return None
            if fd is not None:
                self._fds[key] = fd
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

    def _prefix_matches(self, key: str, path: str, f: LogFile) -> bool:
        head = self._read_head(path, key)
        if head is None:
            return True  # cannot tell; the size check still applies
        return len(head) >= f.fp_len and sha(head[:f.fp_len]) == f.fp

    def _read_head(self, path: str, key: str) -> bytes | None:
        found = head_and_size(self._fds.get(key), path, key)
        return None if found is None else found[0]

    def _error(self, incidents: list, path: str, key: str, exc: OSError) -> None:
        if (key, type(exc).__name__) not in self._errors:  # once per file and kind, not every scan
            self._errors.add((key, type(exc).__name__))
            incidents.append(incident("unreadable", path, key, error=f"{type(exc).__name__}: {exc}"))
