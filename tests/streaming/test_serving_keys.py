"""The REST reads' caches (`streaming.data.serving`) are keyed on what the live reads show: the live
events and the live state's snapshot. A key that repeats for different contents serves an old body
as current until its TTL (30 s for the overview): the page's tiles then stood still after a webhook."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from streaming.data.serving import Serving
from streaming.live import LiveEvents
from streaming.state.snapshot import Snapshot


def _serving(live: LiveEvents, state) -> Serving:
    return Serving(marts=None, store=None, live=live, state=state)  # live_key() reads neither


def test_every_new_snapshot_changes_the_key_even_where_a_freed_one_lay():
    state = SimpleNamespace(snapshot=Snapshot())
    serving = _serving(LiveEvents(), state)
    keys = []
    for _ in range(200):
        # The old snapshot is freed here, and CPython hands its memory to the next one: id() repeats.
        state.snapshot = Snapshot()
        keys.append(serving.live_key())
    assert len(set(keys)) == len(keys)


def test_a_redelivered_event_changes_the_key_though_the_count_stays():
    live = LiveEvents()
    serving = _serving(live, None)
    event = {"event_id": "e1", "occurred_at": datetime(2026, 12, 7, tzinfo=UTC), "status": "open"}
    live.add([event])
    before = serving.live_key()
    live.add([{**event, "status": "merged"}])  # the same event, newer: the store's size stays 1
    assert len(live) == 1
    assert serving.live_key() != before
