"""What the sidecar's rules read, cheaply: the lake's recent partitions, their footers, the landing
log's newest lines, and dbt's latest test results.

The rules run every 30 s to 5 min on lakes of any size, so nothing here lists or reads a whole
table: a rule names the days it needs (today, yesterday, the window it judges), a partition's
newest landing comes from its Parquet footer (no data read), and the landing log is read from its
end back once, then only what is appended (`LandingTail`).
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from resources.storage.lake import PART_FILE
from resources.storage.landing import LandingLog, landing_for

# Lines of one landing file are appended in about the order they were received (a group commit
# orders a batch by arrival); reading back stops once lines are this much older than wanted.
LANDING_SLACK_S = 120.0


# The most of a core reading the landing log may take while it catches up (`Pacer`).
READ_SHARE = 0.25


class Pacer:
    """Keeps a long read to `share` of a core: after each `slice_s` of work it sleeps for
    `work × (1 − share) / share`. The landing tail runs in the sidecar's process, whose event loop
    answers webhooks: its first look reads back the longest window a rule asks for (70 minutes,
    millions of lines at 1,000 webhooks/s), and read unpaced, that held the interpreter from the
    event loop in 1 ms turns until it was done: the acknowledgements' p99 doubled for the
    second it took in `make bench-stream`, and a bigger log would stall them for longer."""

    CHECK_EVERY = 32  # lines between two looks at the clock

    def __init__(self, share: float = READ_SHARE, slice_s: float = 0.002,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep) -> None:
        self.share, self.slice_s = share, slice_s
        self._clock, self._sleep = clock, sleep
        self._count = 0
        self._began: float | None = None

    def tick(self) -> None:
        """One unit of work done (a line read)."""
        self._count += 1
        if self._count % self.CHECK_EVERY:
            return
        now = self._clock()
        if self._began is None:
            self._began = now
            return
        worked = now - self._began
        if worked >= self.slice_s:
            self._sleep(worked * (1 - self.share) / self.share)
            self._began = self._clock()

    def rest(self) -> None:
        """A read is over: the next begins its own slice."""
        self._began = None


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def days(start: datetime, end: datetime) -> list[date]:
    """The days from `start`'s to `end`'s, oldest first."""
    first, last = start.date(), end.date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def part_files(lake_dir: Path, table: tuple[str, ...], on: Iterable[date]) -> list[str]:
    """The partition files of `table` that exist for the days `on`."""
    base = Path(lake_dir).joinpath(*table)
    found = [base / f"date={day.isoformat()}" / PART_FILE for day in on]
    return [str(path) for path in found if path.exists()]


def newest_part_files(table_dir: Path, limit: int) -> list[Path]:
    """The `limit` newest partitions of a table (by their day), newest first."""
    try:
        names = sorted((e.name for e in os.scandir(table_dir) if e.name.startswith("date=")), reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = [Path(table_dir) / name / PART_FILE for name in names[:limit]]
    return [f for f in files if f.exists()]


def landed(path: Path) -> tuple[int, datetime | None]:
    """A partition's rows and when its newest row was landed (`_ingested_at`), from the footer.
    A partition without rows (its job ran and found nothing for the day) was landed when written."""
    try:
        meta = pq.read_metadata(path)
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return 0, None
    if meta.num_rows == 0:
        return 0, _utc(mtime)
    newest: datetime | None = None
    if "_ingested_at" in meta.schema.names:
        column = meta.schema.names.index("_ingested_at")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is not None and stats.has_min_max and isinstance(stats.max, datetime):
                newest = stats.max if newest is None else max(newest, stats.max)
    return meta.num_rows, newest or _utc(mtime)


def dbt_test_results(target_dir: Path, newest: int = 10) -> dict[str, dict[str, Any]]:
    """The latest result of each dbt test, from the newest `run_results.json` files under dbt's
    target folder (Dagster gives every invocation a folder of its own): test id → result with
    `status`, `failures`, `message` and `at` (when the file was written)."""
    files: list[tuple[float, Path]] = []
    for path in [target_dir / "run_results.json", *_child_files(target_dir, "run_results.json")]:
        try:
            files.append((path.stat().st_mtime, path))
        except OSError:
            continue
    results: dict[str, dict[str, Any]] = {}
    for mtime, path in sorted(files, reverse=True)[:newest]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for result in data.get("results") or []:
            node = str(result.get("unique_id") or "")
            if node.startswith("test.") and node not in results:
                results[node] = {"status": result.get("status"), "failures": result.get("failures"),
                                 "message": result.get("message"), "at": _utc(mtime),
                                 "path": str(path)}
    return results


def _child_files(folder: Path, name: str) -> list[Path]:
    try:
        return [Path(e.path) / name for e in os.scandir(folder) if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass(frozen=True)
class Delivery:
    """What the rules need of one landing line: when, from whom, its outcome, what it produced."""

    at: datetime
    source: str
    status: str
    reason: str
    event_sources: tuple[str, ...]
    events: tuple[str, ...]


class LandingTail:
    """The landing log's deliveries over the longest window any rule asked for, kept up to date
    by reading only what was appended since the last look (one per landing folder and stream, in
    the process that evaluates the rules). At 1,000 webhooks/s an hour is millions of lines:
    reading them back and normalizing them every minute would take the sidecar's CPU from its
    clients, so each line is parsed once. The sidecar writes a delivery's event ids and sources
    into its line (`events`, `event_sources`); a line without them is normalized once, when read."""

    def __init__(self, landing_dir: Path, stream: str, normalize, pacer: Pacer | None = None) -> None:
        self.log = LandingLog(landing_dir)
        self.stream = stream
        self._normalize = normalize  # record -> (sources, event ids), for a line without them
        self.pacer = pacer if pacer is not None else Pacer()
        self._offsets: dict[Path, int] = {}
        self._lines: list[Delivery] = []
        self._covered_from: datetime | None = None  # every line received from here on is held
        self._keep = timedelta(0)  # the longest window asked for

    def since(self, since: datetime, until: datetime) -> list[Delivery]:
        """Every delivery received from `since` on."""
        self._keep = max(self._keep, until - since)
        if self._covered_from is None or since < self._covered_from:
            self._offsets.clear()  # further back than held: read back from the files' ends again
            self._lines = []
            for day in days(since, until):
                for path in self.log.files(self.stream, day):  # every worker's
                    self._read_back(path, since)
            self._covered_from = since
        for day in days(since, until):
            for path in self.log.files(self.stream, day):  # a file new since the last look: read whole
                self._read_new(path)
        horizon = until - self._keep
        if horizon > self._covered_from:
            stop = horizon - timedelta(seconds=LANDING_SLACK_S)
            self._lines = [d for d in self._lines if d.at >= stop]
            self._covered_from = horizon
        self.pacer.rest()
        return [d for d in self._lines if d.at >= since]

    def _read_back(self, path: Path, since: datetime) -> None:
        """The lines received since `since` (with the slack), from the file's end back, found in a
        memory map like `_read_new`'s (splitting blocks copied every payload: 25 µs a line)."""
        stop = since - timedelta(seconds=LANDING_SLACK_S)
        found = []
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            end = 0
            if size:
                with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as data:
                    end = data.rfind(b"\n") + 1  # a line still being written is read with the new ones
                    newline = end - 1
                    while newline >= 0:
                        self.pacer.tick()
                        start = data.rfind(b"\n", 0, newline) + 1
                        entry = self._entry_in(data, start, newline)
                        if entry is not None:
                            if entry.at < stop:
                                break
                            found.append(entry)
                        newline = start - 1
        self._lines.extend(reversed(found))
        self._offsets[path] = end

    def _read_new(self, path: Path) -> None:
        """The lines appended since the last look, each found in a memory map of the file and only
        its head copied out: at 1,000 webhooks/s that is 24 MB a second of landing log, and reading
        it into buffers, joining and splitting them copied every payload four times (35 µs a line,
        in the sidecar's process). A `find` per line also never holds the interpreter long."""
        offset = self._offsets.get(path, 0)
        with path.open("rb") as handle:
            end = os.fstat(handle.fileno()).st_size
            if end < offset:
                offset = 0  # the file was replaced: read it again
            if end == offset:
                return
            with mmap.mmap(handle.fileno(), end, access=mmap.ACCESS_READ) as data:
                position = offset
                while (newline := data.find(b"\n", position, end)) >= 0:  # a line still being written: next time
                    self.pacer.tick()
                    entry = self._entry_in(data, position, newline)
                    if entry is not None:
                        self._lines.append(entry)
                    position = newline + 1
        self._offsets[path] = position

    def _entry(self, line: bytes) -> Delivery | None:
        return self._entry_in(line, 0, len(line))

    def _entry_in(self, data: bytes | mmap.mmap, start: int, end: int) -> Delivery | None:
        """The delivery of the line `data[start:end]` (None if it is blank or torn)."""
        # The record's own fields come first and the payload is spliced in last, as it came
        # (streaming/journal.py `encode_line`); a `,"payload":` outside a string can only be that
        # splice, so the head alone is parsed: a few hundred bytes of a line of tens of kilobytes.
        cut = data.find(b',"payload":', start, end)
        try:
            record = orjson.loads(data[start:cut] + b"}" if cut > start else data[start:end])
            at = datetime.fromisoformat(record["_received_at"]).replace(tzinfo=None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if isinstance(record.get("events"), list) and isinstance(record.get("event_sources"), list):
            sources, events = record["event_sources"], record["events"]
        elif record.get("status") == "normalized":
            try:
                sources, events = self._normalize(orjson.loads(data[start:end]))
            except orjson.JSONDecodeError:
                return None
        else:
            sources, events = [], []
        return Delivery(at, str(record.get("source")), str(record.get("status")), str(record.get("reason") or ""),
                        tuple(map(str, sources)), tuple(map(str, events)))


class SharedLandingTail(LandingTail):
    """`LandingTail` over the shared landing in Postgres (`CC_LANDING_URL`): each look asks for the
    lines past the last `seq` it held, and only their heads (`PgLanding.heads`). A transaction
    commits its `seq`s after a later one may have, so each look reaches back to the highest `seq`
    of the look before the last (lines commit in milliseconds, looks are a minute apart), and the
    `seq`s already held are skipped."""

    def __init__(self, landing, stream: str, normalize) -> None:
        self.landing = landing
        self.stream = stream
        self._normalize = normalize
        self._lines: list[Delivery] = []
        self._covered_from: datetime | None = None
        self._keep = timedelta(0)
        self._floor = 0  # every line up to this seq is held (or older than the window)
        self._last_max = 0
        self._held: set[int] = set()  # seqs past the floor already read

    def since(self, since: datetime, until: datetime) -> list[Delivery]:
        self._keep = max(self._keep, until - since)
        if self._covered_from is None or since < self._covered_from:
            self._lines, self._floor, self._last_max, self._held = [], 0, 0, set()
            self._covered_from = since
        newest = self._last_max
        for seq, head in self.landing.heads(self.stream, self._covered_from - timedelta(seconds=LANDING_SLACK_S),
                                            until, self._floor):
            newest = max(newest, seq)
            if seq in self._held:
                continue
            self._held.add(seq)
            entry = self._entry(head)
            if entry is not None:
                self._lines.append(entry)
        self._floor, self._last_max = self._last_max, newest
        self._held = {s for s in self._held if s > self._floor}
        horizon = until - self._keep
        if horizon > self._covered_from:
            stop = horizon - timedelta(seconds=LANDING_SLACK_S)
            self._lines = [d for d in self._lines if d.at >= stop]
            self._covered_from = horizon
        return [d for d in self._lines if d.at >= since]


def landing_tail(settings, stream: str, normalize) -> LandingTail:
    """The tail of `stream` in the store it lands in (`resources.storage.landing.landing_for`)."""
    if settings.landing_url:
        return SharedLandingTail(landing_for(settings), stream, normalize)
    return LandingTail(settings.landing_dir, stream, normalize)


@contextmanager
def landed_files(settings, stream: str, on: Iterable[date]) -> Iterator[list[str]]:
    """`stream`'s landing files of these days, for DuckDB's `read_json`. From the shared landing in
    Postgres (host samples: a few a minute per host), the days' lines written to one temporary
    file for the length of the `with`."""
    landing = landing_for(settings)
    if not settings.landing_url:
        yield [str(p) for day in on for p in landing.files(stream, day)]
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", prefix=f"cc-landing-{stream}-") as out:
        for day in on:
            for record in landing.read(stream, day):
                if isinstance(record, dict):
                    out.write(orjson.dumps(record, default=str) + b"\n")
        out.flush()
        yield [out.name] if out.tell() else []
