"""The sidecar's marts reader (`streaming/data/marts.py`) on the embedded setup: the serving snapshot a build swaps in."""

from __future__ import annotations

import os
import threading

import duckdb

from streaming.data.marts import DuckDBSnapshot


def _swap_in(path, value: int) -> None:
    """What `export_snapshot` does after a build: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    with duckdb.connect(str(tmp)) as con:
        con.execute("create table dashboard_overview as select ? as events_total", [value])
    os.replace(tmp, path)


def test_each_build_swapped_in_is_what_the_next_read_answers(tmp_path):
    path = tmp_path / "marts.duckdb"
    _swap_in(path, 1)
    marts = DuckDBSnapshot(path)
    assert marts.query("select events_total from dashboard_overview") == [{"events_total": 1}]
    first = marts.version()
    # Reads from other threads (the API's thread pool, the overview keeper) before each swap.
    for value in (2, 3):
        seen: list = []
        reader = threading.Thread(target=lambda out=seen: out.append(marts.query("select * from dashboard_overview")))
        reader.start()
        reader.join()
        assert seen == [[{"events_total": value - 1}]]
        _swap_in(path, value)
        assert marts.query("select events_total from dashboard_overview where events_total = %(v)s",
                           {"v": value}) == [{"events_total": value}]
    assert marts.version() != first
    assert DuckDBSnapshot(path).query("select events_total from dashboard_overview") == [{"events_total": 3}]
