"""The landing log: events pushed to the platform, appended durably before anyone is told "ok".

One JSON line per event in `<dir>/<stream>/date=YYYY-MM-DD.jsonl`, appended and fsynced, so an
event acknowledged to its sender survives a crash. Pushed sources (the metrics agent now, the
webhook sidecar later) write here; a raw asset turns a day's lines into its lake partition,
deduplicating on the event's id, so re-landing a day is idempotent.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


class LandingLog:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stream: str, day: date) -> Path:
        return self.root / stream / f"date={day.isoformat()}.jsonl"

    def append(self, stream: str, records: Iterable[dict[str, Any]], received_at: datetime) -> int:
        """Append records for `received_at`'s day; returns how many were made durable."""
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
        """A day's records; a line that is not JSON (a torn write) comes back as its text."""
        path = self.path(stream, day)
        if not path.exists():
            return
        with path.open("rb") as handle:
            for raw in handle:
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                if not text:
                    continue
                try:
                    yield json.loads(text)
                except ValueError:
                    yield text
