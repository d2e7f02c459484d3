"""The missed-webhooks rule's view of the landing log: each line read once, however often the
rule looks, so an hour of heavy webhook traffic is not read and normalized again every minute."""

from __future__ import annotations

from datetime import datetime, timedelta

from cc_alerts.reads import LandingTail, Pacer
from resources.storage.landing import LandingLog
from streaming.journal import encode_line

T0 = datetime(2026, 12, 6, 12, 0, 0)


def line(n: int, at: datetime, with_events: bool = True) -> bytes:
    record = {"id": f"d-{n}", "source": "github", "event": "pull_request", "status": "normalized", "reason": None}
    if with_events:
        record |= {"events": [f"github:pr:acme/api#{n}:opened"], "event_sources": ["github"]}
    return encode_line(record, at)


def test_only_new_complete_lines_are_read_and_old_ones_leave_the_window(tmp_path):
    path = LandingLog(tmp_path).path("webhooks", T0.date())
    path.parent.mkdir(parents=True)
    normalized: list[str] = []

    def normalize(record: dict) -> tuple[list[str], list[str]]:
        normalized.append(record["id"])
        return ["github"], [f"github:pr:acme/api#{record['id']}:opened"]

    path.write_bytes(b"".join(line(n, T0 + timedelta(seconds=n)) for n in range(5)) + line(5, T0, False))
    tail = LandingTail(tmp_path, "webhooks", normalize)
    first = tail.since(T0 - timedelta(minutes=10), T0 + timedelta(minutes=1))
    assert len(first) == 6 and normalized == ["d-5"]  # a line written without its events: normalized once
    # A line half written is not read until it is whole.
    whole = line(6, T0 + timedelta(seconds=6))
    with path.open("ab") as handle:
        handle.write(whole[:20])
    assert len(tail.since(T0 - timedelta(minutes=10), T0 + timedelta(minutes=1))) == 6
    with path.open("ab") as handle:
        handle.write(whole[20:])
    found = tail.since(T0 - timedelta(minutes=10), T0 + timedelta(minutes=1))
    assert found[-1].events == ("github:pr:acme/api#6:opened",)
    assert normalized == ["d-5"]  # nothing read twice
    # The window moves on: older deliveries drop out.
    later = tail.since(T0 + timedelta(seconds=4), T0 + timedelta(minutes=1))
    assert sorted(e for delivery in later for e in delivery.events) == [
        "github:pr:acme/api#4:opened", "github:pr:acme/api#6:opened"]


def test_a_longer_window_asked_later_is_read_back_once_and_then_kept(tmp_path):
    path = LandingLog(tmp_path).path("webhooks", T0.date())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(line(n, T0 + timedelta(minutes=n)) for n in range(60)))
    tail = LandingTail(tmp_path, "webhooks", lambda record: ([], []))
    now = T0 + timedelta(minutes=60)
    assert len(tail.since(now - timedelta(minutes=1), now)) == 1  # a rule with a one-minute window
    assert len(tail.since(now - timedelta(minutes=30), now)) == 30  # one with half an hour: read back
    with path.open("ab") as handle:
        handle.write(line(60, now))
    later = now + timedelta(minutes=1)
    assert len(tail.since(later - timedelta(minutes=30), later)) == 30  # kept, the oldest gone
    assert len(tail.since(later - timedelta(minutes=1), later)) == 1


def test_a_long_read_back_pauses_so_the_sidecar_s_loop_keeps_most_of_a_core(tmp_path):
    """The first look reads back the longest window (70 minutes at 1,000 webhooks/s is millions of
    lines) in the sidecar's process: it sleeps between slices of work, `share` of the time at most,
    and still finds every line."""
    path = LandingLog(tmp_path).path("webhooks", T0.date())
    path.parent.mkdir(parents=True)
    lines = 2_000
    path.write_bytes(b"".join(line(n, T0 + timedelta(milliseconds=n)) for n in range(lines)))
    now = [0.0]
    slept: list[float] = []

    def clock() -> float:  # each look at the clock: 0.1 ms of work since the last (32 lines)
        now[0] += 0.0001
        return now[0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(share=0.25, slice_s=0.002, clock=clock, sleep=sleep)
    tail = LandingTail(tmp_path, "webhooks", lambda record: ([], []), pacer=pacer)
    found = tail.since(T0 - timedelta(minutes=10), T0 + timedelta(minutes=1))
    assert len(found) == lines and [d.events[0] for d in found[:2]] == [
        "github:pr:acme/api#0:opened", "github:pr:acme/api#1:opened"]
    worked = now[0] - sum(slept)
    assert slept and sum(slept) >= 2.5 * (worked - 0.002)  # 3x the work, but for the last slice
    assert max(slept) <= 3 * 0.0021  # ~2 ms of work, then ~6 ms to the loop: never one long wait


def test_the_shared_landings_tail_reads_a_line_committed_after_a_later_one(pg_admin_url):
    """In Postgres a transaction that took its `seq` first may commit last: the tail still reads
    its line (once), on the next look."""
    from cc_alerts.reads import SharedLandingTail
    from resources.storage import pg_landing
    from resources.storage.pg_landing import Line, PgLanding
    from scripts.chaos.harness import throwaway_database

    window = (T0 - timedelta(minutes=10), T0 + timedelta(minutes=1))
    with throwaway_database(pg_admin_url, "cc_test_tail") as url:
        slow = pg_landing.connect(url)  # takes seq 1 and holds it uncommitted
        slow.execute(f"insert into {pg_landing.SCHEMA}.lines (stream, day, writer, received_at, line)"
                     " values ('webhooks', %s, 'slow', %s, %s)", [T0.date(), T0, line(1, T0).rstrip(b"\n")])
        with pg_landing.connect(url) as conn:
            pg_landing.commit(conn, "fast", [Line("webhooks", T0, line(2, T0).rstrip(b"\n"), ("d-2",))])
        tail = SharedLandingTail(PgLanding(url), "webhooks", lambda record: ([], []))
        assert [d.events for d in tail.since(*window)] == [("github:pr:acme/api#2:opened",)]
        slow.commit()
        slow.close()
        found = tail.since(*window)
        assert sorted(e for d in found for e in d.events) == ["github:pr:acme/api#1:opened",
                                                             "github:pr:acme/api#2:opened"]
        assert len(tail.since(*window)) == 2  # and not again
