"""Requests in flight while the answers before them are read: `ordered(fetch, items, workers)`,
`streamed(fetch, items, workers, ahead)` when each item's answer is a listing too long to hold,
and `prefetched(pages)` for a cursor listing, whose next request needs the answer before it.

A source pulled one request at a time alternates: the server works while the client waits, then
the client parses while the server waits. With a second request in flight the two overlap (on a
2-core host against the sandbox, GitHub's landing took about half the time). Results come back in
the items' order, so what lands and in which order does not change with `workers`; `workers=1` is
the plain loop.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered(fetch: Callable[[T], R], items: Iterable[T], workers: int, name: str = "fetch") -> Iterator[R]:
    """`fetch(item)` for each item, at most `workers` at once and none more than `workers` ahead of
    the reader (memory stays bounded), yielded in `items`' order. An exception is raised where its
    item's result would have been; a reader that stops early waits for the ones in flight."""
    source = iter(items)
    if workers <= 1:
        for item in source:
            yield fetch(item)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        pending: deque[Future[R]] = deque(pool.submit(fetch, item) for _, item in zip(range(workers), source,
                                                                                      strict=False))
        try:
            while pending:
                done = pending.popleft()
                for item in source:  # refill the window before waiting: one more in flight
                    pending.append(pool.submit(fetch, item))
                    break
                yield done.result()
        finally:
            for future in pending:
                future.cancel()


def streamed(fetch: Callable[[T], Iterable[R]], items: Iterable[T], workers: int, ahead: int,
             name: str = "stream") -> Iterator[tuple[T, R]]:
    """`(item, record)` for each record of each `fetch(item)`, `workers` listings read at once, in
    `items`' order: the listing being read streams, and one read ahead of it holds at most `ahead`
    records until its turn (a big listing is never in memory whole). A listing's exception is
    raised where its records stop; a reader that stops early stops the listings being read."""
    items = list(items)
    if workers <= 1:
        for item in items:
            for record in fetch(item):
                yield item, record
        return
    stop = threading.Event()
    queues = {i: queue.Queue(ahead) for i in range(len(items))}

    def put(i: int, entry: tuple[str, object]) -> bool:
        while not stop.is_set():  # the reader stopped early (a failure): give up rather than wait
            try:
                queues[i].put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump(i: int) -> None:
        try:
            for record in fetch(items[i]):
                if not put(i, ("record", record)):
                    return
        except BaseException as exc:  # raised again by the reader, where the records stop
            put(i, ("failed", exc))
            return
        put(i, ("done", None))

    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        try:
            for i in range(len(items)):
                pool.submit(pump, i)
            for i, item in enumerate(items):
                while (entry := queues[i].get())[0] == "record":
                    yield item, entry[1]  # type: ignore[misc]
                if entry[0] == "failed":
                    raise entry[1]  # type: ignore[misc]
        finally:
            stop.set()
            pool.shutdown(cancel_futures=True)


def prefetched(items: Iterable[T], name: str = "prefetch") -> Iterator[T]:
    """`items`, each next one fetched in a thread while the reader works on the one it has: a cursor
    listing cannot go side by side (each request carries the last answer's cursor), but its server
    can answer page n+1 while the client lands page n. One item ahead, never more; a reader that
    stops early has had one item fetched that it never reads. An exception is raised where its
    item would have been, and the listing is closed in the reader's thread."""
    source = iter(items)
    end = object()
    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    try:
        pending = pool.submit(next, source, end)
        while (item := pending.result()) is not end:
            pending = pool.submit(next, source, end)  # one `next` at a time: the last one is done
            yield item  # type: ignore[misc]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(source, "close", None)
        if close is not None:
            close()
