"""Moves between the tiers (landing -> cold -> archive), the hourly rollups, retention and quarantine.

Every move writes a temporary object, reads it back, compares row count and checksum with the
source, and only then renames it into place (resources/storage/tiers.py has the layout and the store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from resources.storage.tiers import (
    ARCHIVE_ZSTD_LEVEL,
    COLD_ZSTD_LEVEL,
    FINGERPRINT_SQL,
    ROLLUP,
    ROW_GROUP_ROWS,
    CorruptFiles,
    Fingerprint,
    TierError,
    TierStore,
    landing_sql,
    month_start,
    pairing_margin,
)


@dataclass
class MoveReport:
    """What one move or retention pass did, for the run's metadata."""

    moved: dict[str, int] = field(default_factory=dict)  # partition -> rows
    bytes_written: int = 0
    bytes_read: int = 0
    freed: dict[str, int] = field(default_factory=dict)  # partition -> bytes freed
    kept: dict[str, str] = field(default_factory=dict)  # partition -> why it was not removed

    def as_metadata(self) -> dict:
        return asdict(self)


def landing_event_files(landing: TierStore, first_day: date) -> list[str]:
    """Landing partitions that can hold events of `first_day` or later (a record's partition is its
    last update, never before its events)."""
    out = []
    for info in landing.files("normalized", "events"):
        part = info.path.rsplit("/", 2)[-2]
        if part.startswith("date=") and date.fromisoformat(part[5:]) >= first_day:
            out.append(info.path)
    return out


def check_readable(store: TierStore, paths: Iterable[str]) -> dict[str, str]:
    """Paths whose Parquet footer or pages cannot be read, with the error."""
    bad = {}
    for path in paths:
        try:
            with store.fs.open_input_file(path) as handle:
                pq.ParquetFile(handle).read()
        except (OSError, pa.ArrowException, ValueError) as exc:
            bad[path] = f"{type(exc).__name__}: {exc}"
    return bad


def landing_events(landing: TierStore, start: datetime, end: datetime) -> pa.Table:
    """Every event with `start <= event_at < end` in the landing lake, counted as the warm tier
    counts it (`landing_sql`): one (latest) copy each, and a Linear state change seen by webhook
    and by the poll once. The landing is read `pairing_margin()` beyond the window on both sides,
    as a pair may straddle its edge (the poll's copy, and so the pair, on one day, the webhook's on
    the other); only the window's events come out."""
    margin = pairing_margin()
    files = landing_event_files(landing, (start - margin).date())
    if not files:
        return pa.table({})
    bad = check_readable(landing, files)
    if bad:
        raise CorruptFiles(bad)
    dataset = landing.dataset(files)
    event_at = ds.field("event_at")
    rows = dataset.to_table(filter=(event_at >= pa.scalar(start - margin, pa.timestamp("us")))
                            & (event_at < pa.scalar(end + margin, pa.timestamp("us"))))
    with duckdb.connect() as con:
        con.register("landing", rows)
        return con.execute(landing_sql(), {"start": start, "end": end}).to_arrow_table()


ROLLUP_SQL = """
    select cast(date_trunc('hour', event_at) as timestamp) as bucket_start_at, source, event_type, actor_type,
           count(*)::bigint as event_count
    from events group by all order by all
"""


def write_rollup(tiers: TierStore, source: TierStore, paths_or_table: list[str] | pa.Table, target: str,
                 expected_events: int) -> int:
    """The hourly volume rollup of some events, written beside them and checked (its counts add up
    to the events) before it is renamed into place: history charts read it, not the events."""
    with duckdb.connect() as con:
        if isinstance(paths_or_table, pa.Table):
            con.register("events", paths_or_table)
        else:
            source.register(con, "events", paths_or_table)
        rollup = con.execute(ROLLUP_SQL).to_arrow_table()
    tiers.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    tmp = tiers._tmp_beside(target)
    try:
        pq.write_table(rollup, tmp, filesystem=tiers.fs, compression="zstd")
        written = pq.read_table(tmp, filesystem=tiers.fs, columns=["event_count"]).column(0)
        if pa.compute.sum(written).as_py() != expected_events:
            raise TierError(f"{tiers.relative(target)}: the rollup does not add up to {expected_events} events")
        tiers.fs.move(tmp, target)
    finally:
        if tiers.exists(tmp):
            tiers.delete(tmp)
    return tiers.size(target)


def compact_day(landing: TierStore, tiers: TierStore, day: date) -> MoveReport:
    """Landing -> cold for one day: dedupe, sort, one zstd file, verified before it replaces the old."""
    report = MoveReport()
    start = datetime.combine(day, datetime.min.time())
    events = landing_events(landing, start, start + timedelta(days=1))
    if events.num_rows == 0:
        report.kept[day.isoformat()] = "no events in the landing lake"
        return report
    report.bytes_read = sum(i.size for i in landing.files("normalized", "events", f"date={day.isoformat()}"))
    report.bytes_written = tiers.write_verified(tiers.cold_path(day), events, Fingerprint.of(events),
                                                COLD_ZSTD_LEVEL)
    report.bytes_written += write_rollup(tiers, tiers, events, tiers.cold_path(day, ROLLUP), events.num_rows)
    report.moved[day.isoformat()] = events.num_rows
    return report


def fingerday_prints(store: TierStore, paths: list[str]) -> dict[str, dict]:
    """Rows and checksum per event day of the files, streamed by DuckDB (memory stays small)."""
    with duckdb.connect() as con:
        store.register(con, "events", paths)
        rows = con.execute(f"select cast(event_at as date)::varchar as day, {FINGERPRINT_SQL} "  # noqa: S608
                           "from events group by 1 order by 1").fetchall()
    return {day: {"rows": int(n), "checksum": str(c)} for day, n, c in rows}


def archive_month(tiers: TierStore, month: date) -> MoveReport:
    """Cold days of `month` (plus days only the previous archive still holds) -> one archive file
    and its manifest. Days are written one at a time in order (each cold file is sorted, so the
    month is too), then every day's rows and checksum are read back from the written file and
    compared before it is renamed into place. The manifest is written last: a month with a
    manifest is complete."""
    report = MoveReport()
    cold = {d: tiers.cold_path(d) for d in sorted(tiers.cold_days()) if month_start(d) == month}
    report.bytes_read = sum(tiers.size(p) for p in cold.values())
    old = tiers.manifest(month)
    # Days whose cold file retention already removed live on only in the old archive.
    kept_days = sorted(date.fromisoformat(d) for d in (old or {}).get("days", {})
                       if date.fromisoformat(d) not in cold)
    days = sorted([*cold, *kept_days])
    if not days:
        report.kept[f"{month:%Y-%m}"] = "no cold days to archive"
        return report
    old_archive = tiers.dataset([tiers.archive_path(month)]) if kept_days else None

    def day_table(day: date) -> pa.Table:
        if day in cold:
            return tiers.read_table(cold[day])
        return old_archive.to_table(filter=ds.field("event_at").cast(pa.date32()) == pa.scalar(day, pa.date32()))

    path = tiers.archive_path(month)
    tmp = tiers._tmp_beside(path)
    tiers.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    expected: dict[str, dict] = {}
    low = high = None
    try:
        writer = None
        try:
            for day in days:
                table = day_table(day)
                if table.num_rows == 0:
                    continue
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema, filesystem=tiers.fs, compression="zstd",
                                              compression_level=ARCHIVE_ZSTD_LEVEL)
                table = table.cast(schema)
                day_print = Fingerprint.of(table)
                expected[day.isoformat()] = {"rows": day_print.rows, "checksum": day_print.checksum}
                times = table.column("event_at")
                low = min(filter(None, [low, pa.compute.min(times).as_py()]))
                high = max(filter(None, [high, pa.compute.max(times).as_py()]))
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()
        got = fingerday_prints(tiers, [tmp])
        if got != expected:
            raise TierError(f"{tiers.relative(path)}: the written file's days {got} differ from the sources' "
                            f"{expected}; nothing moved")
        tiers.fs.move(tmp, path)
    finally:
        if tiers.exists(tmp):
            tiers.delete(tmp)
    rows = sum(d["rows"] for d in expected.values())
    checksum = str(sum(int(d["checksum"]) for d in expected.values()))
    report.bytes_written = tiers.size(path)
    rollup_path = tiers.archive_path(month, ROLLUP)
    rollup_bytes = write_rollup(tiers, tiers, [path], rollup_path, rows)
    manifest = {
        "table": "events",
        "month": f"{month:%Y-%m}",
        "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "files": [{
            "path": tiers.relative(path), "rows": rows, "checksum": checksum,
            "bytes": report.bytes_written, "sha256": tiers.sha256(path),
            "min_event_at": str(low), "max_event_at": str(high),
            "compression": f"zstd({ARCHIVE_ZSTD_LEVEL})",
        }],
        "days": expected,
        "rollup": {"path": tiers.relative(rollup_path), "bytes": rollup_bytes},
        "sources": sorted(tiers.relative(p) for p in cold.values()),
    }
    tiers.write_bytes(tiers.manifest_path(month), json.dumps(manifest, indent=2).encode())
    report.moved[f"{month:%Y-%m}"] = rows
    return report


def verify_archive(tiers: TierStore, month: date) -> str | None:
    """None when the month's archive file matches its manifest (bytes and rows), else why not."""
    manifest = tiers.manifest(month)
    if manifest is None:
        return "no archive manifest"
    entry = manifest["files"][0]
    path = tiers.path(entry["path"])
    if not tiers.exists(path):
        return f"archive file {entry['path']} is missing"
    if tiers.sha256(path) != entry["sha256"]:
        return f"archive file {entry['path']} does not match its manifest's sha256"
    return None


def apply_cold_retention(tiers: TierStore, cutoff: date) -> MoveReport:
    """Delete cold days before `cutoff` whose archive copy verifies (file sha256 and the day's rows
    and checksum in the manifest); every other old day is kept, with the reason."""
    report = MoveReport()
    archive_ok: dict[date, str | None] = {}
    for day, size in sorted(tiers.cold_days().items()):
        if day >= cutoff:
            continue
        month = month_start(day)
        if month not in archive_ok:
            archive_ok[month] = verify_archive(tiers, month)
        if archive_ok[month] is not None:
            report.kept[day.isoformat()] = archive_ok[month]
            continue
        entry = tiers.manifest(month)["days"].get(day.isoformat())
        cold = Fingerprint.of(tiers.read_table(tiers.cold_path(day)))
        if entry is None or Fingerprint(entry["rows"], entry["checksum"]) != cold:
            report.kept[day.isoformat()] = f"cold {cold} differs from the archive's {entry}: re-run the archive"
            continue
        tiers.delete(tiers.cold_path(day))
        if tiers.exists(tiers.cold_path(day, ROLLUP)):
            size += tiers.size(tiers.cold_path(day, ROLLUP))
            tiers.delete(tiers.cold_path(day, ROLLUP))
        report.freed[day.isoformat()] = size
        report.moved[day.isoformat()] = cold.rows
    return report


def colder_fingerprint(tiers: TierStore, day: date) -> Fingerprint | None:
    """The verified colder copy of a day's events: its cold file, else its archive manifest entry."""
    if tiers.exists(tiers.cold_path(day)):
        return Fingerprint.of(tiers.read_table(tiers.cold_path(day)))
    month = month_start(day)
    if verify_archive(tiers, month) is None:
        entry = tiers.manifest(month)["days"].get(day.isoformat())
        if entry:
            return Fingerprint(entry["rows"], entry["checksum"])
    return None


def quarantine(store: TierStore, path: str, reason: str) -> str:
    """Move a corrupt file to `quarantine/<its path>` with a note saying why; returns the new path."""
    target = store.path("quarantine", store.relative(path))
    store.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    store.fs.move(path, target)
    note = {"path": store.relative(path), "reason": reason,
            "quarantined_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")}
    store.write_bytes(target + ".reason.json", json.dumps(note, indent=2).encode())
    return target


def scan_for_corrupt(store: TierStore, seen: dict[str, list] | None = None,
                     prefixes: tuple[str, ...] = ("raw", "normalized", "cold", "archive")) -> tuple[dict[str, str], dict]:
    """Every Parquet file under `prefixes` that cannot be read; files unchanged (path, size, mtime)
    since they last read fine are not read again. Returns (bad, seen for next time)."""
    seen = dict(seen or {})
    infos = [i for prefix in prefixes for i in store.files(prefix)]
    current = {i.path: [i.size, str(i.mtime)] for i in infos}
    todo = [p for p, stamp in current.items() if seen.get(p) != stamp]
    bad = check_readable(store, todo)
    next_seen = {p: stamp for p, stamp in current.items() if p not in bad}
    return bad, next_seen
