"""The landing log: events pushed to the platform, appended durably before anyone is told "ok".

One JSON line per event in `<dir>/<stream>/date=YYYY-MM-DD.jsonl`, appended and fsynced, so an
event acknowledged to its sender survives a crash. Pushed sources (the metrics agent, the
webhook sidecar) write here; a raw asset turns a day's lines into its lake partition,
deduplicating on the event's id, so re-landing a day is idempotent.

Each file has one writer. Sidecar workers sharing a data dir each write their own,
`date=YYYY-MM-DD.<writer>.jsonl` (`LandingLog(root, writer)`; `WriterLock` keeps two processes
from writing as one): two writers appending to one file could glue a line to another's torn
one, and the dedupe index beside each file assumes it alone grows the file. Every reader reads
a day as all of its files (`files`, `read`, `days`).

With `CC_LANDING_URL=postgresql://…` the streams the sidecar and the metrics agent land live in
Postgres instead (`resources.storage.pg_landing.PgLanding`, the same reader interface), shared by
replicas on several hosts: `landing_for` picks the store.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
# `date=2026-01-05.jsonl` (the one writer of a data dir, the metrics agent) or `date=2026-01-05.w2.jsonl`.
_NAME = re.compile(r"^date=(\d{4}-\d{2}-\d{2})(?:\.([A-Za-z0-9_-]+))?\.jsonl$")
WRITERS_DIR = "_writers"
# A writer starting while another probes its lock (`WriterLock.held`) waits this long for it.
LOCK_WAIT_S = 1.0


def day_of(path: Path | str) -> date | None:
    """The day of a landing file's name; None for anything else beside them."""
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def writer_of(path: Path | str) -> str | None:
    """The writer in a landing file's name (None: the data dir's one writer)."""
    match = _NAME.match(Path(path).name)
    return match.group(2) if match else None


class WriterLock:
    """This process is the one writer named `writer` in `root` while it holds this (an advisory
    `flock`, released by the kernel when the process dies, so a restarted worker takes it again)."""

    def __init__(self, root: Path, writer: str | None) -> None:
        self.path = Path(root) / WRITERS_DIR / f"{writer or '_default'}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() < deadline:  # another worker's `held` probe, for microseconds
                    time.sleep(0.01)
                    continue
            os.close(self._fd)
            self._fd = None
            name = f"worker {writer!r}" if writer else "the default writer (no CC_SIDECAR_WORKER_ID)"
            raise RuntimeError(f"another process already writes {root} as {name}: give each sidecar "
                               "process sharing a data dir its own CC_SIDECAR_WORKER_ID")

    @staticmethod
    def held(root: Path, writer: str | None) -> bool | None:
        """Whether a live process holds `writer`'s lock in `root`: False once it died, None when
        no such writer ever wrote here (one on another host, with its own data dir)."""
        path = Path(root) / WRITERS_DIR / f"{writer or '_default'}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock taken here
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LandingLog:
    """The landing files of one data dir (the embedded default)."""

    def __init__(self, root: Path, writer: str | None = None) -> None:
        self.root = Path(root)
        self.writer = writer

    def path(self, stream: str, day: date) -> Path:
        """This writer's file of `stream` for `day`."""
        suffix = f".{self.writer}" if self.writer else ""
        return self.root / stream / f"date={day.isoformat()}{suffix}.jsonl"

    def files(self, stream: str, day: date) -> list[Path]:
        """Every writer's file of `stream` for `day` (the unnamed writer's first)."""
        folder = self.root / stream
        prefix = f"date={day.isoformat()}."
        try:
            names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix) and _NAME.match(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [folder / name for name in sorted(names, key=lambda n: (n.count("."), n))]

    def days(self, stream: str) -> list[date]:
        """The days `stream` has a file for, oldest first."""
        try:
            found = {day_of(e.name) for e in os.scandir(self.root / stream)}
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(d for d in found if d is not None)

    def size(self, stream: str, day: date) -> int:
        """Bytes landed for `day` by every writer (the files only grow)."""
        total = 0
        for path in self.files(stream, day):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def append(self, stream: str, records: Iterable[dict[str, Any]], received_at: datetime,
               keys: Iterable[str] | None = None) -> int:
        """Append records for `received_at`'s day; returns how many were made durable. (`keys`
        dedupe in the shared store only: here the raw asset dedupes a day on its ids.)"""
        lines = [json.dumps({**r, "_received_at": received_at.isoformat()}, separators=(",", ":"),
                            default=str) + "\n" for r in records]
        if not lines:
            return 0
        target = self.path(stream, received_at.date())
        target.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(lines).encode()
        with _LOCK:
            fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # A writer killed inside a write (a kill -9 stops a multi-page write between pages)
                # left a torn last line: start a line of our own, or our first record would be
                # glued to it and read back as part of one torn line, lost after being confirmed.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                view = memoryview(data)
                while view:  # a regular file may take a write in parts
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(lines)

    def read(self, stream: str, day: date) -> Iterator[dict[str, Any] | str]:
        """A day's records, every writer's; a line that is not JSON (a torn write) comes back as its text."""
        for path in self.files(stream, day):
            with path.open("rb") as handle:
                for raw in handle:
                    text = raw.decode("utf-8", errors="replace").rstrip("\n")
                    if not text:
                        continue
                    try:
                        yield json.loads(text)
                    except ValueError:
                        yield text


def landing_for(settings: Any, writer: str | None = None) -> Any:
    """The store webhooks and pushed samples land in: `LandingLog` over the data dir's files, or
    with `CC_LANDING_URL` the Postgres tables every host shares (`PgLanding`). Both read a day
    (`read`), list days (`days`) and mark change (`size`) alike."""
    if settings.landing_url:
        from resources.storage.pg_landing import PgLanding

        return PgLanding(settings.landing_url, writer)
    return LandingLog(settings.landing_dir, writer)
