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
(`apply_cold_retention`, `resources/storage/warm.py`) deletes only partitions whose colder copy verifies.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from resources.settings import PROJECT_ROOT, Settings

PART_FILE = "part-0.parquet"
# The hourly volume rollup written beside each tier's events (history charts read it, not the events).
ROLLUP = "event_volume_1h"
COLD_ZSTD_LEVEL = 3
ARCHIVE_ZSTD_LEVEL = 12
ROW_GROUP_ROWS = 1_000_000

# Order-independent fingerprint of a set of events: count and the sum of a 60-bit md5 prefix of
# (event_id, event_at in µs). The same number in DuckDB and Postgres (resources/storage/warm.py), so a warm
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
