"""The cold and archive tiers: Parquet under `CC_LAKE_URL`, moved only after the copy is verified.

One `TierStore` (a pyarrow filesystem and a root) serves a local folder and S3-compatible object
storage through the same code; the landing lake that the ingest writes (`$CC_DATA_DIR/lake`) is
read through it too. Layout under the root, all keyed by the *event's* time so the tiers line up
day for day:

    cold/events/date=YYYY-MM-DD/part-0.parquet      one compacted file per day (zstd)
    archive/events/month=YYYY-MM/part-0.parquet     one file per month (zstd, high level)
    archive/events/month=YYYY-MM/manifest.json      rows, checksum, min/max time, sha256, per day
    quarantine/<original path>(.reason.json)        corrupt files moved out of the way

Every move writes a temporary object, reads it back, compares row count and checksum with the
source, and only then renames it into place; a failure at any step deletes the temporary object
and leaves both tiers as they were. Nothing is deleted from a hotter tier here: retention
(`apply_cold_retention`, `resources/warm.py`) deletes only partitions whose colder copy verifies.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from resources.settings import PROJECT_ROOT, Settings

PART_FILE = "part-0.parquet"
COLD_ZSTD_LEVEL = 3
ARCHIVE_ZSTD_LEVEL = 12
ROW_GROUP_ROWS = 1_000_000

# Order-independent fingerprint of a set of events: count and the sum of a 60-bit md5 prefix of
# (event_id, event_at in µs). The same number in DuckDB and Postgres (resources/warm.py), so a warm
# day, its cold file and its archive entry compare exactly.
FINGERPRINT_SQL = (
    "count(*)::bigint as rows, coalesce(sum(('0x' || substr(md5(event_id || '|' || "
    "cast(epoch_us(event_at) as varchar)), 1, 15))::bigint::hugeint), 0)::varchar as checksum"
)

MACROS_DIR = PROJECT_ROOT / "dbt_project" / "macros"


@functools.cache
def macro(file: str, name: str):
    """A macro of the dbt project rendered with plain Jinja (dbt-core's own template engine), so the
    tier moves apply the very SQL the dbt models do."""
    import jinja2

    return getattr(jinja2.Environment(undefined=jinja2.StrictUndefined)
                   .from_string((MACROS_DIR / file).read_text()).module, name)


@functools.cache
def _state_change_pairing() -> tuple[str, str, timedelta]:
    """The dbt project's Linear state-change pairing (macros/linear_state_change_pairs.sql), rendered
    for DuckDB with plain Jinja: the pairs among `events`, every event counted once with the pairs
    applied, and the pairing tolerance. One definition for the warm models and the lake's tiers."""
    import jinja2  # dbt-core's own template engine, a dependency of it

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals["json_text"] = env.from_string((MACROS_DIR / "json_text.sql").read_text()).module.duckdb__json_text
    macros = env.from_string((MACROS_DIR / "linear_state_change_pairs.sql").read_text()).module
    return (str(macros.linear_state_change_pairs("events")),
            str(macros.linear_state_changes_counted_once("events", "pairs")),
            timedelta(minutes=int(str(macros.linear_state_change_pair_minutes()))))


def landing_sql() -> str:
    """The events of [$start, $end) among the `landing` rows (copies included), as the warm tier
    counts them: the latest copy of each event id (stg_normalized__events), then a Linear state
    change seen by webhook and by the poll once, under the webhook's id (fct_workflow_events)."""
    pairs, counted_once, _ = _state_change_pairing()
    return f"""
        with copies_ranked as (
            select *, {macro("latest_copy.sql", "latest_copy_rank")("event_id")} as copy_rank
            from landing
        ),
        events as (select * exclude (copy_rank) from copies_ranked where copy_rank = 1),
        pairs as ({pairs}),
        counted as ({counted_once})
        select * exclude (counted_event_id) replace (counted_event_id as event_id) from counted
        where event_at >= $start and event_at < $end
        order by event_at, event_id
    """


def pairing_margin() -> timedelta:
    """How far beyond a window the landing is read so that its pairs come out as over the whole lake:
    a copy pairs with the nearest twin within the tolerance only if it is that twin's nearest too,
    and that twin's other candidates lie up to two tolerances away."""
    return 2 * _state_change_pairing()[2]


class TierError(RuntimeError):
    """A move could not be verified; nothing was changed."""


class CorruptFiles(TierError):
    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths
        listed = "; ".join(f"{p}: {r}" for p, r in paths.items())
        super().__init__(f"unreadable Parquet in the lake (run the lake_parquet_readable check to "
                         f"quarantine): {listed}")


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    checksum: str

    @classmethod
    def of(cls, table: pa.Table) -> Fingerprint:
        with duckdb.connect() as con:
            con.register("events", table)
            rows, checksum = con.execute(f"select {FINGERPRINT_SQL} from events").fetchone()  # noqa: S608
        return cls(int(rows), str(checksum))


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_days(month: date) -> list[date]:
    return [month.replace(day=d) for d in range(1, calendar.monthrange(month.year, month.month)[1] + 1)]


class TierStore:
    """Parquet files under `root` on a pyarrow filesystem (local folder or S3-compatible)."""

    def __init__(self, fs: pafs.FileSystem, root: str, url: str | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url or root

    @classmethod
    def from_settings(cls, settings: Settings) -> TierStore:
        url = settings.lake_url
        if not url:
            return cls.local(str(settings.lake_dir))
        parsed = urlparse(url)
        if parsed.scheme in ("", "file"):
            return cls.local(parsed.path if parsed.scheme else url)
        if parsed.scheme != "s3":
            raise ValueError(f"CC_LAKE_URL must be a folder, file:// or s3:// URL, not {parsed.scheme}://")
        options: dict = {"region": settings.lake_s3_region or "us-east-1"}
        if settings.lake_s3_endpoint:
            endpoint = urlparse(settings.lake_s3_endpoint)
            options["endpoint_override"] = endpoint.netloc or endpoint.path
            options["scheme"] = endpoint.scheme or "https"
        if settings.lake_s3_access_key_id:
            options["access_key"] = settings.lake_s3_access_key_id
            options["secret_key"] = settings.lake_s3_secret_access_key
        fs = pafs.S3FileSystem(**options)
        return cls(fs, f"{parsed.netloc}{parsed.path}", url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @classmethod
    def local(cls, folder: str) -> TierStore:
        return cls(pafs.LocalFileSystem(), folder, folder)

    @classmethod
    def landing(cls, settings: Settings) -> TierStore:
        """The landing lake the ingest writes (always the local `$CC_DATA_DIR/lake`)."""
        return cls.local(str(settings.lake_dir))

    # Paths --------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def relative(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def cold_path(self, day: date, table: str = "events") -> str:
        return self.path("cold", table, f"date={day.isoformat()}", PART_FILE)

    def archive_path(self, month: date, table: str = "events") -> str:
        return self.path("archive", table, f"month={month:%Y-%m}", PART_FILE)

    def manifest_path(self, month: date, table: str = "events") -> str:
        return self.path("archive", table, f"month={month:%Y-%m}", "manifest.json")

    # Files --------------------------------------------------------------------------------------
    def files(self, *prefix: str, suffix: str = ".parquet") -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path(*prefix), recursive=True, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted((i for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)
                       and "/." not in i.path), key=lambda i: i.path)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def size(self, path: str) -> int:
        info = self.fs.get_file_info(path)
        return info.size if info.type == pafs.FileType.File else 0

    def delete(self, path: str) -> None:
        self.fs.delete_file(path)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(path) as stream:
            while chunk := stream.read(8 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def _tmp_beside(self, path: str) -> str:
        folder, name = path.rsplit("/", 1)
        return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"

    def write_bytes(self, path: str, data: bytes) -> None:
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = self._tmp_beside(path)
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, path)

    def read_table(self, path: str) -> pa.Table:
        return pq.read_table(path, filesystem=self.fs)

    def dataset(self, paths: list[str]) -> ds.Dataset:
        return ds.dataset(paths, filesystem=self.fs, format="parquet")

    def register(self, con: duckdb.DuckDBPyConnection, name: str, paths: list[str],
                 empty: pa.Schema | None = None) -> None:
        """Make `paths` queryable as `name` in `con`: DuckDB's own parallel reader (row-group pruning
        on the sort order) for local files, a pyarrow dataset over the store's filesystem otherwise
        (DuckDB cannot download httpfs here)."""
        if not paths:
            con.register(name, (empty or pa.schema([])).empty_table())
        elif self.is_local:
            listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            con.execute(f"create or replace temp view {name} as "
                        f"select * from read_parquet([{listed}], union_by_name = true)")
        else:
            con.register(name, self.dataset(paths))

    def write_verified(self, path: str, table: pa.Table, expected: Fingerprint, level: int) -> int:
        """Write `table` to `path` only if what lands reads back with the expected fingerprint."""
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = self._tmp_beside(path)
        try:
            pq.write_table(table, tmp, filesystem=self.fs, compression="zstd", compression_level=level,
                           row_group_size=ROW_GROUP_ROWS)
            got = Fingerprint.of(self.read_table(tmp))
            if got != expected:
                raise TierError(f"{self.relative(path)}: wrote {got}, expected {expected}; nothing moved")
            self.fs.move(tmp, path)
        finally:
            if self.exists(tmp):
                self.delete(tmp)
        return self.size(path)

    # Tier contents ------------------------------------------------------------------------------
    def cold_days(self, table: str = "events") -> dict[date, int]:
        """Day -> bytes of every cold file."""
        out = {}
        for info in self.files("cold", table):
            part = info.path.rsplit("/", 2)[-2]
            if part.startswith("date="):
                out[date.fromisoformat(part[5:])] = info.size
        return out

    def archive_months(self, table: str = "events") -> list[date]:
        months = []
        for info in self.files("archive", table, suffix="manifest.json"):
            part = info.path.rsplit("/", 2)[-2]
            if part.startswith("month="):
                months.append(date.fromisoformat(part[6:] + "-01"))
        return sorted(months)

    def manifest(self, month: date, table: str = "events") -> dict | None:
        path = self.manifest_path(month, table)
        return json.loads(self.read_bytes(path)) if self.exists(path) else None

    def history_files(self, start: date | None = None, end: date | None = None, table: str = "events") -> list[str]:
        """The files holding events (or their `event_volume_1h` rollup) of days in [start, end): each
        month from its archive where one exists (plus cold days the archive does not list yet),
        otherwise the cold days."""
        return self.history_index(start, end, table)[0]

    def history_index(self, start: date | None = None, end: date | None = None,
                      table: str = "events") -> tuple[list[str], set[date]]:
        """`history_files`, and the days of [start, end) those files hold: a cold day, or a day its
        month's archive manifest lists."""
        def wanted(day: date) -> bool:
            return (start is None or day >= start) and (end is None or day < end)

        cold = {d for d in self.cold_days(table) if wanted(d)}
        paths = []
        covered: set[date] = set()
        for month in self.archive_months():
            last = month_days(month)[-1]
            if (start is not None and last < start) or (end is not None and month >= end):
                continue
            manifest = self.manifest(month) or {}
            if table != "events" and not self.exists(self.archive_path(month, table)):
                continue
            covered |= {date.fromisoformat(d) for d in manifest.get("days", {})}
            paths.append(self.archive_path(month, table))
        paths += [self.cold_path(d, table) for d in sorted(cold - covered)]
        return paths, cold | {d for d in covered if wanted(d)}


# Moves -----------------------------------------------------------------------------------------

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


ROLLUP = "event_volume_1h"
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
