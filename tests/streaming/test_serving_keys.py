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


class _Marts:
    """A warehouse at one build (`Serving` asks only its version here: no live event to check)."""

    def version(self) -> str:
        return "build-1"


def test_a_read_right_after_a_new_snapshot_gets_it_not_the_body_computed_before():
    """Live reads may lag new live events by up to `LIVE_REFRESH_S` (a burst is not a recomputation
    each), never the live state: the page reads the overview the moment `workflow.updated` tells it
    a workflow changed, and an older body then stood on its tiles until the TTL."""
    state = SimpleNamespace(snapshot=Snapshot(), ready=True)
    serving = Serving(marts=_Marts(), store=None, live=LiveEvents(), state=state)

    def compute():
        return serving.live_view().state

    assert serving.cached("overview", 30, compute, live=True) is state.snapshot
    state.snapshot = Snapshot()  # the live state's next run, milliseconds later
    assert serving.cached("overview", 30, compute, live=True) is state.snapshot
    assert serving.live_view().state is state.snapshot
