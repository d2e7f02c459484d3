"""Replicas on one Redis and the alert rules (streaming/alerting.py): one replica, the live-state
leader, evaluates, with the facts every replica saw. Before, each replica evaluated with what it
alone saw and reconciled into the one store: a replica that saw no duplicates resolved the alert
of one that saw them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import redis
import requests

from cc_alerts.facts import Facts
from cc_alerts.rules import RuleContext, deliveries
from cc_alerts.rules import data_quality as dq
from resources.settings import Settings
from scripts.chaos.harness import SECRETS, signed_headers
from streaming.alerting import FACTS_ROOM, SharedFacts
from streaming.broker import broker_for
from streaming.state.shared import LEASE_KEY

T0 = datetime(2026, 3, 2, 12, 0)


def findings(rule, facts: Facts, settings: Settings, now: datetime) -> dict:
    ctx = RuleContext(settings, now, facts)
    try:
        return {f.subject: f for f in rule.evaluate(ctx).findings}
    finally:
        ctx.close()


def test_the_evaluating_replica_counts_what_another_replica_saw(redis_url, tmp_path):
    """Two replicas' facts joined by what each publishes on a real Redis, as the sidecar does."""
    url = f"{redis_url}?channel=cc-test-{uuid.uuid4().hex}"

    async def scenario() -> tuple[SharedFacts, SharedFacts]:
        joined = []
        for name in ("leader", "follower"):
            shared = SharedFacts(Facts(shared=True), broker_for(url), name)

            def deliver(room: str, text: str, shared: SharedFacts = shared) -> None:  # as `Sidecar._from_broker`
                if room == FACTS_ROOM:
                    shared.receive(text)

            await shared.broker.connect(deliver)
            joined.append(shared)
        leader, follower = joined
        try:
            deadline = time.monotonic() + 10
            while min(s.broker.listeners for s in joined) < 2:  # each counts the other listening (each 1 s)
                assert time.monotonic() < deadline, "the replicas never saw each other on the channel"
                await asyncio.sleep(0.1)
            for k in range(12):  # redelivered to the follower only
                follower.facts.duplicate("charlie", T0 - timedelta(seconds=k))
            for k in range(3):
                follower.facts.dead_letter("linear", "payload has no `data` object", T0 - timedelta(seconds=k))
            follower.facts.received("github", T0)
            follower.send()
            leader.send()  # it saw nothing new itself: nothing sent
            assert (follower.sent, leader.sent) == (1, 0)
            while leader.merged < 1:
                assert time.monotonic() < deadline, "the follower's facts never reached the leader"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # its own message came back to the follower by now: skipped
            follower.send()  # and nothing new since
            return leader, follower
        finally:
            for shared in joined:
                await shared.broker.disconnect()

    leader, follower = asyncio.run(scenario())
    assert (leader.merged, follower.merged, follower.sent) == (1, 0, 1)
    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})
    assert leader.facts.duplicates_since(T0 - timedelta(minutes=5)) == {"charlie": 12}
    assert leader.facts.last_received() == {"github": T0}
    assert findings(dq.DUPLICATES, leader.facts, settings, T0)["source:charlie"].count == 12
    found = findings(deliveries.SCHEMA_VALIDATION, leader.facts, settings, T0 + timedelta(seconds=5))
    assert "3 record(s) dropped" in found["source:linear"].message
    assert "payload has no `data` object (3)" in found["source:linear"].message
    # The follower holds its own once: what came back from Redis was not merged again.
    assert follower.facts.duplicates_since(T0 - timedelta(minutes=5)) == {"charlie": 12}


# --- end to end: two sidecar processes on one Redis and one data dir -------------------------------------

def _health(sidecar) -> dict:
    return requests.get(f"{sidecar.url}/healthz", timeout=5).json()


def _wait(what, message: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def _roles(pair) -> dict[str, str]:
    """Replica id → role, once both replicas name the same leader."""
    details = [_health(s)["live_state_detail"] for s in pair]
    roles = sorted(d.get("role") for d in details)
    if len({d.get("leader") for d in details}) == 1 and roles == ["follower", "leader"]:
        return {d["replica"]: d["role"] for d in details}
    return {}


def _hand_lease(pair, lease: redis.Redis, key: str, to) -> None:
    """The live-state lease (and so the alert rules) to `to`, as when a leader dies and `to` takes
    it; returns once the other replica's monitor skipped a round (it knows it no longer leads)."""
    [other] = [s for s in pair if s is not to]
    skipped = _health(other)["alert_monitor"]["rounds_skipped"]
    replica = _health(to)["live_state_detail"]["replica"]
    lease.set(key, replica, px=3000)  # `to` renews it from its next turn on; the other follows it
    _wait(lambda: _roles(pair).get(replica) == "leader", f"{replica} did not take the lease")
    _wait(lambda: _health(other)["alert_monitor"]["rounds_skipped"] > skipped, "the old leader's monitor went on")


def test_a_duplicates_alert_raised_from_a_follower_s_deliveries_stays_raised(make_sidecar, redis_url, tmp_path):
    channel = f"cc-test-{uuid.uuid4().hex}"
    data_dir = tmp_path / "data"
    pair = [make_sidecar({"CC_REDIS_URL": f"{redis_url}?channel={channel}", "CC_SIDECAR_WORKER_ID": name},
                         data_dir=data_dir) for name in ("a", "b")]
    roles = _wait(lambda: _roles(pair), "the replicas do not agree on a leader")
    # As they start: the leader sees none of the duplicates, the follower takes them all.
    leader, follower = sorted(pair, key=lambda s: roles[_health(s)["live_state_detail"]["replica"]] != "leader")
    # Both monitors ran their first round (5 s after start): the leader evaluated, the follower skipped.
    _wait(lambda: _health(leader)["alert_rules"].get(dq.DUPLICATES.name), "the leader never evaluated")
    _wait(lambda: _health(follower)["alert_monitor"]["rounds_skipped"], "the follower's monitor never ran")
    assert _health(leader)["alert_monitor"]["evaluates"] and not _health(follower)["alert_monitor"]["evaluates"]

    # A delivery sent 13 times to the follower only: 12 duplicates, above the rule's 10.
    body = b'{"kind": "charlie.activity", "data": {"id": "dup-1", "instance_id": "charlie-1", ' \
           b'"type": "task_started", "timestamp": "2026-01-05T10:00:00Z", "message": "again"}}'
    headers = {**signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]), "X-Delivery-Id": "alert-replicas-1"}
    answers = [requests.post(f"{follower.url}/webhooks/charlie", data=body, headers=headers, timeout=10).status_code
               for _ in range(13)]
    assert answers == [202] + [200] * 12
    # Everything the follower sent reached the leader (they stop changing once it sent them all).
    _wait(lambda: _settled(follower, leader), "the follower's facts did not reach the leader")

    lease = redis.Redis.from_url(redis_url)
    key = f"{channel}:landed:{LEASE_KEY}"
    auth = {"Authorization": f"Bearer {follower.token()}"}

    def duplicates() -> list[dict]:
        return requests.get(f"{leader.url}/api/alerts", params={"rule": dq.DUPLICATES.name}, headers=auth,
                            timeout=10).json()["alerts"]

    try:
        # The follower takes the lease: its rules are due at once, and it saw the duplicates itself.
        _hand_lease(pair, lease, key, follower)
        [opened] = _wait(duplicates, "the new leader did not evaluate at once")
        assert (opened["subject"]["key"], opened["state"], opened["count"]) == ("source:charlie", "open", 12)
        # Back to the replica that saw none of them: it evaluates at once too, with the follower's facts.
        _hand_lease(pair, lease, key, leader)
        [again] = _wait(lambda: [a for a in duplicates() if a["count"] > 12 or a["state"] == "resolved"],
                        "the first leader did not evaluate once it led again")
        assert (again["id"], again["state"], again["count"]) == (opened["id"], "open", 24), again
        assert len(duplicates()) == 1  # never resolved, never opened a second time
    finally:
        lease.close()


def _settled(follower, leader) -> bool:
    sent = _health(follower)["alert_monitor"]["facts_sent"]
    time.sleep(1.0)  # two batches
    return sent > 0 and _health(follower)["alert_monitor"]["facts_sent"] == sent == \
        _health(leader)["alert_monitor"]["facts_merged"]
