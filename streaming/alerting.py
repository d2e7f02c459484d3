"""The sidecar's alerting: the rules' monitor and the notifier it starts, and, with replicas, which
replica evaluates the rules and the live facts the replicas share for it.

Every replica runs a monitor, and every one reconciles into the one alert store. Each used to
evaluate every rule with what it alone saw live (`cc_alerts/facts.py`): a replica that saw no
duplicates resolved the alert of one that saw ten, which raised it again at its next round (a
notification each time), and every replica did the same rule work over the same files. Now the
replica holding the live-state lease (`streaming/state/shared.py`) evaluates; the others skip
their rounds, and one that takes the lease over evaluates every rule at once (`Monitor.leads`).
Without Redis, or while the lease is not known yet, a replica evaluates, as a lone sidecar does.

So that the one evaluating sees every replica's deliveries, each replica sends what it saw itself
on the broker's `FACTS_ROOM` (at most every `FACTS_EVERY_S`, and only when it saw something: the
latest delivery per source, each duplicate and dead letter) and merges the others' into its own
`Facts`. Every replica holds them all, so whichever takes over has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from cc_alerts.facts import Facts
from streaming.state.shared import FOLLOWER, sent_by

log = logging.getLogger(__name__)

FACTS_ROOM = "_alert_facts"  # the broker's room for the replicas' facts (never a client's: "_")
FACTS_EVERY_S = 0.5


def evaluates_here(state: Any) -> Callable[[], bool]:
    """`Monitor(leads=...)` for a sidecar whose live state is `state`: it evaluates the rules unless
    it follows another replica's live state."""
    return lambda: state.sharing is None or state.sharing.role != FOLLOWER


class SharedFacts:
    """This replica's facts, sent to the other replicas, and theirs merged into `facts`."""

    def __init__(self, facts: Facts, broker: Any, replica: str) -> None:
        self.facts, self.broker, self.replica = facts, broker, replica
        self._own = sent_by(replica)
        self.sent = self.merged = 0

    def send(self) -> None:
        """What this replica saw since the last send, if anything, to the others. With none listening
        (one worker on Redis) nothing is encoded: a replica that subscribes later starts from what
        arrives after it."""
        new = self.facts.take_new()
        if new is None or self.broker.listeners < 2:
            return
        self.broker.publish(FACTS_ROOM, orjson.dumps({"from": self.replica, "facts": new}).decode())
        self.sent += 1

    def receive(self, text: str) -> None:
        """A message on `FACTS_ROOM` (on the event loop)."""
        if text.startswith(self._own):  # this replica's own, back from Redis
            return
        try:
            self.facts.merge(orjson.loads(text)["facts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("alert facts: a message that cannot be read (%s)", exc)
            return
        self.merged += 1

    async def run(self, every_s: float = FACTS_EVERY_S) -> None:
        """Send every `every_s` (a task on the sidecar's loop, with Redis)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.send()
            except Exception:  # noqa: BLE001 - the next turn sends what is new by then
                log.exception("alert facts: sending failed")

    def detail(self) -> dict[str, int]:
        return {"facts_sent": self.sent, "facts_merged": self.merged}


def start_alerts(store: Any, settings: Any, facts: Facts, leads: Callable[[], bool]) -> tuple[Any, Any]:
    """The rules' monitor (None with `CC_ALERT_MONITOR` off) and the notifier, started, each on its
    own threads: a rule reading the lake or a channel that hangs never touches the event loop (so
    never a webhook's acknowledgement)."""
    from cc_alerts.monitor import Monitor
    from cc_alerts.notify import Notifier

    monitor = None
    if settings.alert_monitor:
        monitor = Monitor(store, settings, facts, leads=leads)
        monitor.start()
    notifier = Notifier.from_settings(store, settings)
    notifier.start()
    return monitor, notifier


def monitor_status(monitor: Any, shared: SharedFacts) -> dict[str, Any] | None:
    """For `/healthz`: whether this replica evaluates the rules, and the facts it shared."""
    return None if monitor is None else {**monitor.status(), **shared.detail()}
