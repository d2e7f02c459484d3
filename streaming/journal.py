"""Group commit into the landing log.

`LandingLog.append` fsyncs once per call: at a thousand webhooks a second that is a thousand
fsyncs, each a few milliseconds on a real disk, one after another. Here one writer thread takes
*everything* queued, writes it, fsyncs each touched file once and only then resolves every
waiting request: concurrent requests share one fsync, so throughput grows with load while an
ack still means "on disk". The lines are `LandingLog`'s (`{..., "_received_at": iso}`), so
`LandingLog.read` and the raw assets read them unchanged. After the acks (within `ID_WRITE_S`),
the keys of an indexed stream's lines go to its id files (`streaming.dedupe`), so a restart does
not re-read the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from resources.storage.landing import LandingLog, WriterLock
from streaming.dedupe import IdWriter

log = logging.getLogger(__name__)


_LINE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
# Keys landed go to the id files at most this long after their fsync (and when the writer stops):
# a restart scans the landing bytes past the last checkpoint, so the gap only lengthens that scan
# by as much, and an append per group commit cost a system call and two CRCs per webhook.
ID_WRITE_S = 0.1


def encode_line(record: dict[str, Any], received_at: datetime, raw: dict[str, bytes] | None = None) -> bytes:
    """One landing line: the record and its `_received_at`, then each `raw` field spliced in as is.

    orjson: a GitHub payload is tens of kilobytes on every webhook's path. Datetimes stay `str()`
    and any key type is written as before; a line is one line. A `raw` value is JSON text that is
    already known to be strict JSON on one line (`webhooks.parse_body`): the body as it came, not
    encoded a second time."""
    line = orjson.dumps({**record, "_received_at": received_at.isoformat()}, default=str, option=_LINE)
    if raw:
        line = line[:-1] + b"".join(b"," + orjson.dumps(k) + b":" + v for k, v in raw.items()) + b"}"
    return line + b"\n"


@dataclass
class _Write:
    path: Path
    data: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    keys: tuple[str, ...] | None = None  # dedupe keys of the lines, for an indexed stream


class GroupCommitLog:
    """`await log.append(stream, records, received_at)` returns once the lines are fsynced.

    `fault_delay_s` (`CC_FAULT_FSYNC_DELAY_S`, for tests and chaos only) holds every commit that
    long before its write and fsync, as a very slow disk would. `writer` names this process's
    own landing files among those of the workers sharing `root` (`LandingLog`); it holds that
    name's `WriterLock` until `close`. `on_commit(seconds, lines)` is called by the writer thread
    after each file's write and fsync (the metrics' fsync histogram: once per commit, not per line)."""

    def __init__(self, root: Path, fault_delay_s: float = 0.0, writer: str | None = None,
                 on_commit: Callable[[float, int], None] | None = None) -> None:
        self.lock = WriterLock(root, writer)
        self.landing = LandingLog(root, writer)
        self.fault_delay_s = fault_delay_s
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._fds: dict[Path, int] = {}
        self._paths: dict[tuple[str, date], Path] = {}
        self._id_writer = IdWriter()
        self._ids: dict[Path, tuple[list[str], int]] = {}  # keys landed, not yet in their id file
        self._ids_due = 0.0
        self._thread = threading.Thread(target=self._run, name="landing-group-commit", daemon=True)
        self._thread.start()
        self.batches = 0  # fsync rounds, for tests and metrics
        self.lines = 0

    async def append(self, stream: str, records: Iterable[dict[str, Any]], received_at: datetime) -> None:
        await self.append_lines(stream, b"".join(encode_line(r, received_at) for r in records), received_at)

    async def append_lines(self, stream: str, data: bytes, received_at: datetime) -> None:
        """Land lines already encoded (`encode_line`); returns once they are fsynced."""
        if data:
            await self.submit(stream, data, received_at)

    def submit(self, stream: str, data: bytes, received_at: datetime,
               keys: tuple[str, ...] | None = None) -> asyncio.Future:
        """Queue lines; the future resolves once they are fsynced (or fails with the OSError).

        With `keys`, they are indexed once the lines are durable. The future is the writer's,
        not the request's: cancelling a waiting request does not cancel it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        day = (stream, received_at.date())
        path = self._paths.get(day)
        if path is None:  # a Path built per webhook was a tenth of the submit
            if len(self._paths) >= 64:  # past days'
                self._paths.clear()
            path = self._paths[day] = self.landing.path(*day)
        self._queue.put(_Write(path, data, loop, future, keys))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._id_writer.close()
        self.lock.release()

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(fd).st_size
            # A crash mid-write leaves a line without its newline: end it, or the next record
            # would be glued to it and read as one torn line.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
            if created:  # the new file's directory entry must survive a crash too
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            if len(self._fds) >= 8:  # past days' files are done with
                for old in list(self._fds):
                    os.close(self._fds.pop(old))
            self._fds[path] = fd
        return fd

    def _run(self) -> None:
        while True:
            try:  # with keys to index, wake for them when they are due
                first = self._queue.get(timeout=max(0.0, self._ids_due - time.monotonic()) if self._ids else None)
            except queue.Empty:
                self._write_ids()
                continue
            if first is None:
                self._write_ids()
                return
            batch = [first]
            stop = False
            while not self._queue.empty():  # only this thread takes: what is there can be taken
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                self._write_ids()
                return
            if self._ids and time.monotonic() >= self._ids_due:
                self._write_ids()

    def _commit(self, batch: list[_Write]) -> None:
        if self.fault_delay_s:
            time.sleep(self.fault_delay_s)
        by_path: dict[Path, list[_Write]] = {}
        for write in batch:
            by_path.setdefault(write.path, []).append(write)
        for path, writes in by_path.items():
            error: BaseException | None = None
            try:
                fd = self._fd(path)
                data = b"".join(w.data for w in writes)
                started = time.perf_counter()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                if self.on_commit is not None:
                    self._committed(time.perf_counter() - started, len(writes))
                keys = [k for w in writes if w.keys is not None for k in w.keys]
                if keys:
                    self._index(path, keys, os.fstat(fd).st_size)
            except OSError as exc:
                log.exception("landing write to %s failed", path)
                error = exc
                stale = self._fds.pop(path, None)
                if stale is not None:
                    os.close(stale)
            self.batches += 1
            self.lines += len(writes)
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for write in writes:
                by_loop.setdefault(write.loop, []).append(write.future)
            for loop, futures in by_loop.items():  # one wake-up of each loop for the whole batch
                loop.call_soon_threadsafe(_resolve_all, futures, error)

    def _committed(self, seconds: float, lines: int) -> None:
        try:
            self.on_commit(seconds, lines)  # type: ignore[misc]
        except Exception:  # a metric never stops the writer
            log.exception("on_commit failed")

    def _index(self, path: Path, keys: list[str], end: int) -> None:
        """Keys landed in `path` up to `end`, to go to its id file with the next `_write_ids`."""
        held = self._ids.get(path)
        if held is None:
            if not self._ids:
                self._ids_due = time.monotonic() + ID_WRITE_S
            self._ids[path] = (keys, end)
        else:
            held[0].extend(keys)
            self._ids[path] = (held[0], end)

    def _write_ids(self) -> None:
        """After the acks, off their path: the keys and a checkpoint per landing file."""
        for path, (keys, end) in self._ids.items():
            self._id_writer.record(path, keys, end)
        self._ids.clear()


def _resolve_all(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        _resolve(future, error)


def _resolve(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client went away): the line is on disk regardless
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
