"""The live state's runs build each snapshot from the last one and what arrived: after any sequence
of arrivals (new workflows, a workflow joining another through a Linear key, a pull request
delivered again in a newer state) the snapshot the REST reads get must be the one a run over the
whole live window computes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from cc_events.context import NormalizeContext
from cc_events.registry import normalize_delivery
from resources.settings import Settings
from streaming.correlate import Correlator
from streaming.data.marts import marts_from_settings
from streaming.live import LiveEvents, event_dict
from streaming.state.workflows import LiveState, carried_by
from streaming.webhooks import Delivery


def _fixture() -> dict:
    from scripts.bench_stream import FIXTURE as BENCH_FIXTURE

    return json.loads(BENCH_FIXTURE.read_text())


@pytest.fixture
def state(tmp_path):
    settings = Settings(data_dir=tmp_path)
    marts = marts_from_settings(settings)
    live = LiveEvents()
    correlator = Correlator(marts)
    state = LiveState(settings, marts, correlator, live)
    state.prepare()
    yield state
    state.close()


def _deliver(state: LiveState, prs: list[tuple[int, str, str]], at: datetime) -> None:
    """Pull requests (number, Linear key in the title, action) as the sidecar notes them."""
    ctx = NormalizeContext(linear_team_keys=frozenset({"ENG"}))
    rows, carried = [], []
    for number, key, action in prs:
        payload = copy.deepcopy(_fixture())
        payload["action"] = action
        pr = payload["pull_request"]
        payload["number"] = pr["number"] = pr["id"] = number
        pr["title"] = f"{key} change {number}"
        pr["head"]["ref"] = f"{key.lower()}-change-{number}"
        pr["updated_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if action == "closed":
            pr["state"], pr["merged"], pr["merged_at"] = "closed", True, pr["updated_at"]
        delivery = Delivery("github", f"d-{number}-{action}-{at.timestamp()}", "pull_request", payload, action)
        for event in normalize_delivery("github", "pull_request", payload, ctx):
            rows.append(event_dict(event, at, state.correlator.workflow_for))
        carried.extend(carried_by(delivery, at))
    state.live.add(rows)
    state.note([r["event_id"] for r in rows], carried)


def _view(snapshot) -> dict:
    return {"rows": dict(snapshot.rows), "hidden": set(snapshot.hidden), "updates": set(snapshot.updates),
            "counts": dict(snapshot.live_counts), "workflow_of": dict(snapshot.workflow_of),
            "cron": snapshot.cron_totals}


def test_each_run_equals_a_run_over_the_whole_window(state):
    at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    steps = [
        [(1, "ENG-1", "opened"), (2, "ENG-2", "opened"), (3, "ENG-3", "opened")],
        [(4, "ENG-1", "opened"), (5, "ENG-5", "opened")],  # 4 joins 1's workflow
        [(2, "ENG-2", "closed"), (6, "ENG-3", "opened"), (7, "ENG-7", "opened")],  # 2 merged: a newer state
        [(8, "ENG-8", "opened")],
        [(1, "ENG-1", "closed"), (9, "ENG-5", "opened"), (10, "ENG-10", "opened")],
        [(11, "ENG-7 ENG-8", "opened")],  # two workflows of earlier runs become one
    ]
    for n, step in enumerate(steps):
        _deliver(state, step, at + timedelta(minutes=n))
        state.refresh()
        incremental = _view(state.snapshot)
        state._all_dirty = True  # noqa: SLF001 - the next run computes the whole window
        state.refresh()
        assert _view(state.snapshot) == incremental, f"step {n}"
    rows = state.snapshot.rows
    # Eleven pull requests by Linear key: ENG-1 (two, one merged), ENG-2 (merged), ENG-3 (two),
    # ENG-5 (two), ENG-7 and ENG-8 joined by the eleventh, ENG-10.
    assert sorted(rows) == ["linear:ENG-1", "linear:ENG-10", "linear:ENG-2", "linear:ENG-3", "linear:ENG-5",
                            "linear:ENG-7"]
    assert dict(state.snapshot.live_counts) == {
        "linear:ENG-1": 3, "linear:ENG-10": 1, "linear:ENG-2": 2, "linear:ENG-3": 2, "linear:ENG-5": 2,
        "linear:ENG-7": 3}
    # ENG-2's one pull request was merged; ENG-1 still has an open one.
    assert [w for w, r in rows.items() if r.get("completed_at") is not None] == ["linear:ENG-2"]


# --- replicas: one computes, the others apply its deltas (streaming/state/shared.py) -------------------

STEPS = [
    [(1, "ENG-1", "opened"), (2, "ENG-2", "opened"), (3, "ENG-3", "opened")],
    [(4, "ENG-1", "opened"), (5, "ENG-5", "opened")],
    [(2, "ENG-2", "closed"), (6, "ENG-3", "opened")],
    [(7, "ENG-7", "opened"), (8, "ENG-8", "opened")],
    [(9, "ENG-7 ENG-8", "opened"), (1, "ENG-1", "closed")],
]


@pytest.fixture
def pair(tmp_path):
    """A leader and a follower on one lake, joined by a list standing for the broker's room."""
    from streaming.state.shared import FOLLOWER, LEADER

    states, wires = [], {}
    for name in ("lead", "follow"):
        settings = Settings(data_dir=tmp_path)
        marts = marts_from_settings(settings)
        state = LiveState(settings, marts, Correlator(marts), LiveEvents())
        wires[name] = []
        state.share(name, wires[name].append)
        state.prepare()
        states.append(state)
    leader, follower = states
    leader.sharing.set_leader("lead")
    follower.sharing.set_leader("lead")
    assert (leader.sharing.role, follower.sharing.role) == (LEADER, FOLLOWER)
    yield leader, follower, wires
    for state in states:
        state.close()


def _carry(wires: dict, to: LiveState, lost: int | None = None) -> None:
    """What one replica published, received by the other (the `lost`-th message dropped)."""
    name = "follow" if to.sharing.replica == "lead" else "lead"
    for n, text in enumerate(wires[name]):
        if n != lost:
            to.sharing.receive(text)
    wires[name].clear()


def test_a_follower_shows_what_the_leader_computes_at_every_step(pair):
    leader, follower, wires = pair
    announced = {"lead": [], "follow": []}
    leader.on_change(lambda rows, cron: announced["lead"].append(rows))
    follower.on_change(lambda rows, cron: announced["follow"].append(rows))
    at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    for n, step in enumerate(STEPS):
        for state in (leader, follower):  # each replica's live store gets every event (the live room)
            _deliver(state, step, at + timedelta(minutes=n))
        leader._share_turn()  # noqa: SLF001 - the worker thread's turn, run here in order
        leader.refresh()
        _carry(wires, follower)
        assert follower._share_turn()  # noqa: SLF001 - a follower computes nothing itself
        assert _view(follower.snapshot) == _view(leader.snapshot), f"step {n}"
        assert announced["follow"] == announced["lead"], f"step {n}: workflow.updated differs"
    assert len(follower.snapshot.rows) == 5 and follower.sharing.applied == len(STEPS)
    of = follower.snapshot.workflow_of  # each event's workflow now (PR 9 joined ENG-7's and ENG-8's)
    assert len(of) == len(follower.live.all()) and set(of.values()) == set(follower.snapshot.rows)
    # Typed as the leader has them: the REST reads format timestamps and decimals themselves.
    row = follower.snapshot.rows["linear:ENG-2"]
    assert row == leader.snapshot.rows["linear:ENG-2"] and isinstance(row["completed_at"], datetime)


def test_a_follower_that_lost_a_delta_asks_for_the_whole_state_and_gets_it(pair):
    leader, follower, wires = pair
    at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    for n, step in enumerate(STEPS[:3]):
        for state in (leader, follower):
            _deliver(state, step, at + timedelta(minutes=n))
        leader.refresh()
        _carry(wires, follower, lost=0 if n == 1 else None)  # the second run's delta never arrives
        follower._share_turn()  # noqa: SLF001
    assert _view(follower.snapshot) != _view(leader.snapshot)  # behind: it kept its last good snapshot
    [asked] = wires["follow"]
    assert '"resync":"follow"' in asked
    _carry(wires, leader)
    leader._share_turn()  # noqa: SLF001 - answers with the whole state
    _carry(wires, follower)
    follower._share_turn()  # noqa: SLF001
    assert _view(follower.snapshot) == _view(leader.snapshot)


def test_a_follower_made_leader_computes_everything_it_holds(pair):
    leader, follower, wires = pair
    at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    for n, step in enumerate(STEPS):
        for state in (leader, follower):
            _deliver(state, step, at + timedelta(minutes=n))
        leader.refresh()
        _carry(wires, follower)
        follower._share_turn()  # noqa: SLF001
    expected = _view(leader.snapshot)
    follower.sharing.set_leader("follow")  # the leader died; its lease expired
    assert not follower._share_turn()  # noqa: SLF001 - now it computes
    follower.refresh()
    assert _view(follower.snapshot) == expected
    assert wires["follow"] and '"full":true' in wires["follow"][-1]  # the others get the whole state


def test_deltas_keep_their_values_types():
    from decimal import Decimal

    from streaming.state.layered import GONE
    from streaming.state.snapshot import Delta, decode, delta_in, delta_out, encode

    row = {"workflow_id": "linear:ENG-1", "cycle_time_hours": Decimal("12.3400"), "started_at": datetime(2026, 1, 2, 3),
           "day": datetime(2026, 1, 2).date(), "tags": ["a", "b"], "cost": 1.5, "events": 3, "note": None}
    delta = Delta(False, "v1", rows={"linear:ENG-1": row, "linear:ENG-2": GONE}, counts={"linear:ENG-1": 3},
                  moved={"e1": "linear:ENG-1"}, updates_added=["e0"])
    again = delta_in(decode(encode({"delta": delta_out(delta)}))["delta"])
    assert again == delta and again.rows["linear:ENG-2"] is GONE
    assert type(again.rows["linear:ENG-1"]["day"]) is type(row["day"])


def test_a_leader_alone_on_redis_encodes_nothing_and_a_later_follower_catches_up(tmp_path):
    """One worker on Redis: no one to send deltas to, so none is encoded; a replica that joins
    later finds it has no base and asks for the whole state, which it then gets."""
    settings = Settings(data_dir=tmp_path)
    marts = marts_from_settings(settings)
    leader = LiveState(settings, marts, Correlator(marts), LiveEvents())
    sent: list[str] = []
    listening = [1]
    leader.share("lead", sent.append, lambda: listening[0])
    leader.prepare()
    leader.sharing.set_leader("lead")
    at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    _deliver(leader, STEPS[0], at)
    leader._share_turn()  # noqa: SLF001
    leader.refresh()
    assert sent == [] and leader.snapshot.rows
    listening[0] = 2  # a follower subscribed
    follower = LiveState(settings, marts, Correlator(marts), LiveEvents())
    asked: list[str] = []
    follower.share("follow", asked.append)
    follower.prepare()
    follower.sharing.set_leader("lead")
    follower._share_turn()  # noqa: SLF001 - no base yet: asks
    leader.sharing.receive(asked.pop())
    leader._share_turn()  # noqa: SLF001 - answers with the whole state
    for text in sent:
        follower.sharing.receive(text)
    follower._share_turn()  # noqa: SLF001
    assert _view(follower.snapshot) == _view(leader.snapshot)
    leader.close()
    follower.close()
