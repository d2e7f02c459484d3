"""Parity, proven: a whole sandbox world replayed through a real sidecar as webhooks and pushed
events, read back from `/api/workflows`, `/dashboard/overview` and `/api/events` before any build of
it, equals dbt's build of the same deliveries, field by field (scripts/parity.py).

A 1,500-event world over 3 days against an empty warehouse; an 800-event world's last day on top
of a warehouse built from the day before. `make demo` runs the default world (5,000 events, 7 days)
and prints the figure; `make bench-parity` a 100k-event world (scripts/bench_parity.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from scripts.parity import run
from streaming.state.engine import BOUNDARY_COLUMNS


def _explain(report) -> str:
    return (f"{report.line()}\nfirst mismatches: {report.mismatches[:5]}\noverview (api, marts): "
            f"{report.overview_diff}\nevents: {report.events_diff}")


def test_a_world_live_equals_its_build(tmp_path):
    report = run(events=1500, days=3, work=tmp_path)
    assert report.workflows > 100 and report.deliveries > 3000
    assert report.ok, _explain(report)
    # The tables the live state fills itself have the columns the build writes.
    assert report.boundary_columns == {t: list(c) for t, c in BOUNDARY_COLUMNS.items()}


def test_the_last_day_live_on_a_built_warehouse_equals_the_next_build(tmp_path):
    report = run(events=800, days=2, on_built=True, work=tmp_path,
                 end=datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    assert report.workflows > 40
    assert report.ok, _explain(report)
