"""Group commit into the shared landing in Postgres (`CC_LANDING_URL`): `GroupCommitLog`'s contract
over `resources.storage.pg_landing`.

One writer thread takes everything queued and lands it in one transaction (`pg_landing.commit`);
every waiting request is resolved after COMMIT, so an acknowledgement means "in Postgres", as it
means "fsynced" with the files. A write's future resolves to the keys that another copy holds
(committed by another replica, on this host or another), each with whether that copy was committed
within the last minute: empty, the lines are landed; not empty, the request is a duplicate of a
durable copy. The unique keys replace the Redis claims and
landed markers for this store: a Redis that restarts empty forgets nothing here.

Postgres unreachable or the connection lost: the batch is tried once more on a new connection (a
connection killed while idle costs no request anything); failing again, its requests fail with
`LandingUnavailable` (an `OSError`, answered 503 with Retry-After) and the next batch connects
again. A commit whose answer was lost may have landed: the sender's retry then finds its keys and
is answered "duplicate", never landed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from resources.storage import pg_landing
from streaming.journal import _resolve, encode_line

log = logging.getLogger(__name__)

# Keys are kept this long (GitHub redelivers for 3 days, the metrics agent resends for 2), and
# looked at for pruning this often, off the writer thread (`pg_landing.prune_keys`).
KEEP_KEYS_DAYS = 7.0
PRUNE_EVERY_S = 3600.0
# One transaction takes at most this many lines (what is queued beyond waits for the next one).
MAX_LINES = 2000
MAX_BYTES = 32 * 1024 * 1024


class LandingUnavailable(OSError):
    """The shared landing could not take a batch: nothing of it was acknowledged."""


@dataclass
class _Write:
    stream: str
    data: bytes
    at: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    keys: tuple[str, ...] | None
    each: bool  # keys[i] is line i's; else every key is the (one) line's


class PgCommitLog:
    """`await log.submit(stream, lines, received_at, keys)` returns once the lines are committed."""

    def __init__(self, url: str, writer: str | None = None, fault_delay_s: float = 0.0,
                 on_commit: Callable[[float, int], None] | None = None) -> None:
        self.url = url
        self.on_commit = on_commit  # (seconds, lines) after each transaction: the metrics' commit histogram
        # The `writer` of its rows and its own line-count row in `marks`: by host, as the launcher
        # names its workers w1, w2… on every host (two writers on one row would wait for each other).
        self.writer = f"{writer or os.getpid()}@{socket.gethostname()}"
        self.fault_delay_s = fault_delay_s
        self._conn: Any = None
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self.batches = 0  # transactions, for tests and /healthz
        self.lines = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="landing-pg-commit", daemon=True)
        self._thread.start()
        self._stopping = threading.Event()
        self._pruner = threading.Thread(target=self._prune_every, name="landing-pg-prune", daemon=True)
        self._pruner.start()

    async def append(self, stream: str, records: Iterable[dict[str, Any]], received_at: datetime) -> None:
        await self.append_lines(stream, b"".join(encode_line(r, received_at) for r in records), received_at)

    async def append_lines(self, stream: str, data: bytes, received_at: datetime) -> None:
        if data:
            await self.submit(stream, data, received_at)

    def submit(self, stream: str, data: bytes, received_at: datetime, keys: tuple[str, ...] | None = None,
               each: bool = False) -> asyncio.Future:
        """Queue lines (`encode_line`'s, each ending in a newline); the future resolves to the keys
        found landed by another copy ({key: landed within a minute}), or fails with `LandingUnavailable`."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Write(stream, data, received_at, loop, future, keys, each))
        return future

    def close(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size, stop = [first], len(first.data), False
            while not self._queue.empty() and size < MAX_BYTES and len(batch) < MAX_LINES:
                item = self._queue.get_nowait()  # only this thread takes: what is there can be taken
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item.data)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Write]) -> None:
        if self.fault_delay_s:
            time.sleep(self.fault_delay_s)
        error = self._land(batch)
        if error is not None and len(batch) > 1 and not isinstance(error, _connection_errors()):
            # Not the connection: something in one write the database refuses. Each on its own, so
            # one bad write fails alone rather than every request that shared its batch.
            log.warning("a landing batch was refused (%s): landing its %d writes one by one", error, len(batch))
            for write in batch:
                if (alone := self._land([write])) is not None:
                    self._fail([write], alone)
            return
        if error is not None:
            self._fail(batch, error)

    def _land(self, batch: list[_Write]) -> BaseException | None:
        """One transaction for the batch, tried once more on a new connection; on success the
        writes are resolved, on failure the error is returned (nothing of the batch landed)."""
        lines: list[pg_landing.Line] = []
        owner: list[int] = []  # the write of each line
        for i, write in enumerate(batch):
            parts = [p for p in write.data.split(b"\n") if p]
            for j, part in enumerate(parts):
                if write.keys is None:
                    keys: tuple[str, ...] = ()
                elif write.each:
                    keys = (write.keys[j],)
                else:
                    keys = write.keys if j == 0 else ()
                lines.append(pg_landing.Line(write.stream, write.at, part, keys))
                owner.append(i)
        error: BaseException | None = None
        dup_lines: dict[int, bool] = {}
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = pg_landing.connect(self.url)
                started = time.perf_counter()
                dup_lines = pg_landing.commit(self._conn, self.writer, lines)
                error = None
                if self.on_commit is not None:
                    try:
                        self.on_commit(time.perf_counter() - started, len(lines))
                    except Exception:  # noqa: BLE001 - a metric never stops the writer
                        log.exception("on_commit failed")
                break
            except Exception as exc:  # noqa: BLE001 - psycopg's errors: a lost connection, a timeout, a deadlock
                error = exc
                self._drop()
                if attempt == 1:
                    log.warning("landing in Postgres failed (%s): trying once more on a new connection", exc)
        self.batches += 1
        if error is not None:
            return error
        self.lines += len(lines) - len(dup_lines)
        dups: list[dict[str, bool]] = [{} for _ in batch]
        for n, recent in dup_lines.items():
            dups[owner[n]].update(dict.fromkeys(lines[n].keys, recent))
        self._resolve(batch, dups, None)
        return None

    def _fail(self, batch: list[_Write], error: BaseException) -> None:
        self.failures += 1
        log.error("landing in Postgres failed: %d request(s) answered 503: %s", len(batch), error)
        self._resolve(batch, [{} for _ in batch], LandingUnavailable(f"the shared landing is unavailable: {error}"))

    @staticmethod
    def _resolve(batch: list[_Write], dups: list[dict[str, bool]], failure: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, dict[str, bool]]]] = {}
        for write, found in zip(batch, dups, strict=True):
            by_loop.setdefault(write.loop, []).append((write.future, found))
        for loop, futures in by_loop.items():  # one wake-up of each loop for the whole batch
            loop.call_soon_threadsafe(_resolve_found, futures, failure)

    def _prune_every(self) -> None:
        while not self._stopping.wait(PRUNE_EVERY_S):
            try:
                with pg_landing.connect(self.url, autocommit=True) as conn:
                    pruned = pg_landing.prune_keys(conn, KEEP_KEYS_DAYS)
                if pruned:
                    log.info("forgot %d landing keys older than %.0f days", pruned, KEEP_KEYS_DAYS)
            except Exception:  # noqa: BLE001 - next time; the keys only take room meanwhile
                log.warning("pruning the landing keys failed", exc_info=True)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Errors of the connection or the server's state (lost, refused, timed out, a deadlock), not
    of what a batch holds: the batch is tried again whole."""
    import psycopg

    return (psycopg.OperationalError, psycopg.InterfaceError, OSError)


def _resolve_found(futures: list[tuple[asyncio.Future, dict[str, bool]]], error: BaseException | None) -> None:
    for future, found in futures:
        if error is not None or future.done():
            _resolve(future, error)
        else:
            future.set_result(found)
