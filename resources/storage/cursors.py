"""Source cursors (a replication LSN, a GitHub `since` or ETag, a Linear `updatedAt`, a log offset)
kept in one small JSON file where a restart finds them.

A write is durable before `set` returns: the whole file is written to a temporary file beside
it, fsynced, moved over the old one with `os.replace` and the folder fsynced, so a crash leaves
the old file or the new one, never half of either. Several processes may share the file (Dagster
runs assets in separate processes): every read-modify-write holds an exclusive `flock` on a
lock file beside it, so one source's update never loses another's.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CursorStore:
    """JSON values by key in one file, each `set` atomic and durable."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def all(self) -> dict[str, Any]:
        return self._read()

    def set(self, key: str, value: Any) -> None:
        # Serialise first: a value JSON cannot hold fails here, before the file is touched.
        json.dumps(value)
        with self._locked():
            data = self._read()
            data[key] = value
            self._write(data)

    def set_many(self, values: dict[str, Any]) -> None:
        """Several keys in one durable write."""
        json.dumps(values)
        with self._locked():
            data = self._read()
            data.update(values)
            self._write(data)

    def delete(self, key: str) -> None:
        with self._locked():
            data = self._read()
            if data.pop(key, None) is not None:
                self._write(data)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} does not hold a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        # The rename itself is durable only once the folder's entry is on disk.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
