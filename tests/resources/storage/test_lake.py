from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cc_events.registry import RAW_TABLES
from resources.storage.lake import Lake, raw_schema

TABLE = RAW_TABLES["linear", "teams"]
DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 12)


def test_rerun_replaces_partition_without_duplicates(tmp_path):
    lake = Lake(tmp_path)
    rows = [{"id": "t1", "key": "ENG", "name": "Engineering", "_raw": "{}"}]
    lake.write(("raw", "linear", "teams"), DAY, rows, raw_schema(TABLE), NOW)
    lake.write(("raw", "linear", "teams"), DAY, rows, raw_schema(TABLE), NOW)
    folder = tmp_path / "raw" / "linear" / "teams" / "date=2026-11-20"
    assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]  # no temp files left behind
    table = pq.read_table(folder / "part-0.parquet")
    assert table.num_rows == 1
    assert pq.ParquetFile(folder / "part-0.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    assert table.column("_partition_date").to_pylist() == [DAY]


def test_failed_write_keeps_the_previous_partition(tmp_path):
    lake = Lake(tmp_path)
    good = [{"id": "t1", "key": "ENG", "name": "Engineering", "_raw": "{}"}]
    lake.write(("raw", "linear", "teams"), DAY, good, raw_schema(TABLE), NOW)
    bad = [{"id": "t2", "key": "OPS", "name": object(), "_raw": "{}"}]  # not a string: Arrow refuses
    with pytest.raises(pa.ArrowTypeError):
        lake.write(("raw", "linear", "teams"), DAY, bad, raw_schema(TABLE), NOW)
    assert lake.read(("raw", "linear", "teams"), DAY).column("id").to_pylist() == ["t1"]
    assert [p.name for p in lake.partition_dir(("raw", "linear", "teams"), DAY).iterdir()] == ["part-0.parquet"]


def test_empty_partition_still_has_its_schema(tmp_path):
    lake = Lake(tmp_path)
    written = lake.write(("raw", "linear", "teams"), DAY, [], raw_schema(TABLE), NOW)
    assert written.rows == 0
    assert lake.read(("raw", "linear", "teams"), DAY).schema.names[:3] == ["id", "key", "name"]
