"""A landing holds at most a chunk of rows in memory: a window bigger than the chunk lands in
several row groups per day, with exactly the rows one chunk would land, and a source that fails
part-way leaves every partition as it was (no half partition, no temporary file)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from cc_assets.partitions import Window
from cc_assets.raw import land_fetched
from cc_assets.sources.cron import SPECS
from resources.http.client import MalformedPage, SourceUnavailable
from resources.storage.lake import Lake

SPEC = SPECS[0]
DAYS = [date(2026, 11, 17) + timedelta(days=n) for n in range(3)]
WINDOW = Window(DAYS)
INGESTED = datetime(2026, 11, 20, 12)
PATH = ("raw", "cron", "events")


def cron_records(runs: int) -> list[dict]:
    """Runs spread over the window and the day before it, the days interleaved as a listing may give them."""
    records = []
    for run in range(runs):
        at = datetime.combine(DAYS[0], datetime.min.time()) + timedelta(hours=run * 5 - 24)
        records.append({"seq": run, "id": f"run-{run}", "job": f"job-{run % 7}", "host": "h1", "event": "started",
                        "run_id": f"r{run}", "at": at.isoformat() + "Z", "duration_ms": 1000 + run, "exit_code": 0,
                        "message": f"run {run}"})
    return records[::2] + records[1::2]


def fetched(records: list[dict], broken_after: int | None = None):
    for n, record in enumerate(records):
        if n == broken_after:
            raise SourceUnavailable("cron: gone mid-way")
        yield record, {}, None
    yield MalformedPage("http://cron/page/9", "not JSON", "<html>", {}), {}, None


def partitions(lake: Lake) -> dict[date, list[dict]]:
    return {day: lake.read(PATH, day).to_pylist() for day in DAYS}


def test_a_window_bigger_than_the_chunk_lands_in_chunks_exactly_as_in_one(tmp_path):
    records = cron_records(20)
    whole, chunked = Lake(tmp_path / "whole"), Lake(tmp_path / "chunked")
    one = land_fetched(SPEC, fetched(records), WINDOW, whole, INGESTED, chunk_rows=len(records))
    many = land_fetched(SPEC, fetched(records), WINDOW, chunked, INGESTED, chunk_rows=3)

    assert partitions(chunked) == partitions(whole)
    assert sum(w.rows for w in many.written.values()) == sum(w.rows for w in one.written.values()) == 15
    assert [d.reason for d in many.dead_letters] == [d.reason for d in one.dead_letters] == [
        "not JSON (page http://cron/page/9)"]
    row_groups = {day: pq.ParquetFile(chunked.partition_dir(PATH, day) / "part-0.parquet").num_row_groups
                  for day in DAYS}
    assert all(groups > 1 for groups in row_groups.values()), row_groups
    # A re-run replaces the partitions: the same rows, not twice as many.
    land_fetched(SPEC, fetched(records), WINDOW, chunked, INGESTED, chunk_rows=3)
    assert partitions(chunked) == partitions(whole)


def test_a_source_failing_part_way_leaves_every_partition_as_it_was(tmp_path):
    lake = Lake(tmp_path)
    land_fetched(SPEC, fetched(cron_records(20)), WINDOW, lake, INGESTED)
    before = partitions(lake)
    with pytest.raises(SourceUnavailable):
        # Several chunks of the new run were written to their days' files before the failure.
        land_fetched(SPEC, fetched(cron_records(30), broken_after=25), WINDOW, lake, INGESTED, chunk_rows=3)
    assert partitions(lake) == before
    for day in DAYS:
        assert [p.name for p in lake.partition_dir(PATH, day).iterdir()] == ["part-0.parquet"]
