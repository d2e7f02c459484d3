"""The monitor: evaluates the sidecar's rules on their cadence and applies what they find.

Runs on its own thread in the sidecar (never on the event loop: a rule may read the lake). Each
rule is due every `cadence_s` (stale data every 30 s, missing points every minute, duplicates
every 5 minutes, ...); a due rule is evaluated and its `Evaluation` reconciled with the store in
one transaction. A rule that fails raises `monitor_rule_failed` about itself instead of
stopping the others. `clock` is injectable: the cadence tests drive it by hand.

With replicas, one evaluates: each reconciles into the one shared store, so replicas evaluating on
their own facts undid each other's alerts (a replica that saw no duplicates resolved the alert of
one that saw them, which raised it again: a notification each time). `leads()` says whether this
one is it (the sidecar's live-state leader, `streaming/alerting.py`); while it says no, rounds are
skipped, and once it says yes every rule is due at once: a failover does not wait a cadence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cc_alerts.facts import Facts
from cc_alerts.model import Change, Finding
from cc_alerts.rules import Rule, RuleContext, sidecar_rules
from cc_alerts.store import AlertStore, utcnow

log = logging.getLogger(__name__)

RULE_FAILED = "monitor_rule_failed"  # listed in cc_alerts/rules/pipeline.py
# The first round waits this long: a starting sidecar reads its dedupe index and answers the
# webhooks that queued while it was down first; no rule's cadence is shorter.
FIRST_ROUND_S = 5.0


class Monitor:
    def __init__(self, store: AlertStore, settings: Any, facts: Facts | None = None,
                 rules: Sequence[Rule] | None = None, clock: Callable[[], datetime] = utcnow,
                 tick_s: float = 1.0, first_round_s: float = FIRST_ROUND_S,
                 leads: Callable[[], bool] = lambda: True) -> None:
        self.store, self.settings = store, settings
        self.leads = leads
        self._led = True  # whether `leads()` said yes at the last round
        self.skipped = 0  # rounds skipped while another replica evaluates
        self.rounds = 0  # rounds this replica evaluated (`/healthz`: the first one is over)
        self.first_round_s = first_round_s
        self.facts = facts if facts is not None else Facts()
        self.rules = list(rules) if rules is not None else sidecar_rules()
        # Rules whose `monitor_rule_failed` another monitor (another replica, this one before a
        # restart) may have left open: their next success resolves it.
        self._failed_elsewhere = {rule.name for rule in self.rules}
        self._clock, self.tick_s = clock, tick_s
        self._due: dict[str, datetime] = {}
        self.evaluations: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def context(self, now: datetime) -> RuleContext:
        return RuleContext(self.settings, now, self.facts, dict(getattr(self.settings, "alert_thresholds", {}) or {}))

    def evaluate(self, rule: Rule, now: datetime | None = None) -> list[Change]:
        """Evaluate one rule now and apply it (whatever its cadence)."""
        now = now or self._clock()
        ctx = self.context(now)
        t0 = time.perf_counter()
        try:
            evaluation = rule.evaluate(ctx)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - one rule's failure is an alert, not the monitor's end
            log.exception("alert rule %s failed", rule.name)
            self.evaluations[rule.name] = {"at": now, "ms": (time.perf_counter() - t0) * 1000,
                                           "error": f"{type(exc).__name__}: {exc}"}
            return [self.store.raise_alert(Finding(
                RULE_FAILED, f"rule:{rule.name}", "warning",
                f"the {rule.name} rule could not be evaluated: {type(exc).__name__}: {exc}"[:500]), now)]
        finally:
            ctx.close()
        changes = self.store.reconcile(rule.name, evaluation.findings, now, evaluation.covers)
        if self.evaluations.get(rule.name, {}).get("error") or rule.name in self._failed_elsewhere:
            self._failed_elsewhere.discard(rule.name)
            failed = self.store.resolve(RULE_FAILED, f"rule:{rule.name}", now)
            if failed is not None:
                changes.append(failed)
        self.evaluations[rule.name] = {"at": now, "ms": round((time.perf_counter() - t0) * 1000, 1),
                                       "findings": len(evaluation.findings), "error": None}
        return changes

    def run_due(self, now: datetime | None = None) -> list[Change]:
        """Evaluate every rule whose time has come, if this replica evaluates; returns what changed."""
        if not self._leading():
            return []
        now = now or self._clock()
        changes: list[Change] = []
        for rule in self.rules:
            due = self._due.get(rule.name)
            if due is not None and now < due:
                continue
            self._due[rule.name] = now + timedelta(seconds=rule.cadence_s or 30.0)
            changes += self.evaluate(rule, now)
        self.rounds += 1
        return changes

    def _leading(self) -> bool:
        leads = bool(self.leads())
        if leads and not self._led:  # newly the evaluating replica: every rule now, whatever the last one did
            self._due.clear()
            self._failed_elsewhere = {rule.name for rule in self.rules}
        if not leads:
            self.skipped += 1
        self._led = leads
        return leads

    def _run(self) -> None:
        self._stop.wait(self.first_round_s)
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - the store may be briefly unavailable: try again
                log.exception("the alert monitor's round failed")
            self._stop.wait(self.tick_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        """Whether this replica evaluates the rules (else another replica does, and `detail` is
        from when this one last did)."""
        return {"evaluates": bool(self.leads()), "rounds": self.rounds, "rounds_skipped": self.skipped}

    def detail(self) -> dict[str, Any]:
        return {name: {**e, "at": e["at"].isoformat(timespec="seconds") + "Z"} for name, e in self.evaluations.items()}
