"""Injected failures, matched by the prefix of the request target (path and query).

    {"match": "/github/repos/acme/api/pulls", "status": 429, "times": 2, "retry_after": 1}
    {"match": "/github", "status": 403, "rate_limit": true, "retry_after": 30}
    {"match": "/linear", "kind": "malformed_json", "times": 1}
    {"match": "/charlie", "kind": "bad_record"}
    {"match": "/github", "kind": "down"}          # 503 until cleared
    {"match": "/github", "kind": "disconnect"}    # the connection closes without a response
    {"match": "/github", "kind": "timeout", "delay": 5}  # held 5 s, then closed unanswered
    {"match": "/", "status": 502, "rate": 0.1, "seed": 3}  # a seeded 10% of requests, until cleared
    {"match": "/cron/v1/stream", "kind": "drop_stream", "after": 3, "times": 1}  # cut after 3 events
    {"match": "/github/graphql#PullRequestReviews", "status": 503}  # one GitHub GraphQL operation

A GitHub GraphQL request is matched as `<target>#<operation name>`, so a fault can spoil one
operation and leave the others.

`times` omitted means until cleared. The first live fault that matches wins; a fault with a
`rate` matches only that share of the requests it could match (a coin flip from its own RNG,
seeded by `seed`, so a storm is repeatable for a given order of requests), and `used` counts the
requests it actually spoiled.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

STATUSES = (403, 429, 500, 502, 503)
EARLY_KINDS = ("down", "disconnect", "timeout")  # answer instead of the API (or never answer)
LATE_KINDS = ("malformed_json", "bad_record", "drop_stream")  # spoil a 200 the API gave
# Removed from the spoiled record: whichever of these it has (a PR loses number and created_at).
REQUIRED_FIELDS = ("number", "created_at", "identifier", "sha", "submitted_at", "timestamp")


@dataclass(slots=True)
class Fault:
    match: str
    status: int | None = None
    kind: str | None = None
    times: int | None = None
    retry_after: int | None = None
    rate_limit: bool = False
    after: int | None = None  # drop_stream: events sent before the connection is cut
    rate: float | None = None  # the share of matching requests this fault spoils; None: all of them
    seed: int = 0  # the RNG behind `rate`
    delay: float = 30.0  # timeout: seconds the request is held before the connection is closed
    used: int = 0

    @classmethod
    def parse(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict) or not isinstance(spec.get("match"), str):
            raise ValueError("a fault is an object with a `match` path prefix")
        unknown = set(spec) - {"match", "status", "kind", "times", "retry_after", "rate_limit", "after", "rate",
                               "seed", "delay"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**spec)
        if (fault.status is None) == (fault.kind is None):
            raise ValueError("a fault has either a `status` or a `kind`")
        if fault.status is not None and fault.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if fault.kind is not None and fault.kind not in EARLY_KINDS + LATE_KINDS:
            raise ValueError(f"kind must be one of {EARLY_KINDS + LATE_KINDS}")
        if fault.times is not None and (not isinstance(fault.times, int) or fault.times < 1):
            raise ValueError("times must be a positive integer")
        if fault.after is not None and (not isinstance(fault.after, int) or fault.after < 0):
            raise ValueError("after must be a non-negative integer")
        if fault.rate is not None and (isinstance(fault.rate, bool) or not isinstance(fault.rate, int | float)
                                       or not 0 < fault.rate <= 1):
            raise ValueError("rate must be a number in (0, 1]")
        if isinstance(fault.seed, bool) or not isinstance(fault.seed, int):
            raise ValueError("seed must be an integer")
        if isinstance(fault.delay, bool) or not isinstance(fault.delay, int | float) or not 0 <= fault.delay <= 600:
            raise ValueError("delay must be a number of seconds in [0, 600]")
        return fault

    @property
    def live(self) -> bool:
        return self.times is None or self.used < self.times


class Faults:
    """The active faults; thread-safe, as the server answers requests on many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rngs: list[random.Random] = []  # one per fault, beside it: a Random is not JSON

    def set(self, specs: Any) -> list[dict]:
        faults = [Fault.parse(s) for s in (specs if isinstance(specs, list) else [specs])]
        with self._lock:
            self._faults = faults
            self._rngs = [random.Random(f.seed) for f in faults]
        return self.describe()

    def clear(self) -> None:
        with self._lock:
            self._faults = []
            self._rngs = []

    def describe(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def take(self, target: str, late: bool, kind: str | None = None) -> Fault | None:
        """The first live fault matching `target` (early: statuses and outages; late: `kind`), used once."""
        with self._lock:
            for fault, rng in zip(self._faults, self._rngs, strict=True):
                if not fault.live or not target.startswith(fault.match):
                    continue
                if (late and fault.kind == kind) or (not late and fault.kind not in LATE_KINDS):
                    if fault.rate is not None and rng.random() >= fault.rate:
                        continue
                    fault.used += 1
                    return fault
        return None


def records(payload: Any) -> list | None:
    """The list of records in a response: a GitHub page (or its Actions `workflow_runs` / Checks
    `check_runs`), Charlie `events`/`instances`, GraphQL `nodes` (Linear's, and GitHub's nested
    under the repository: the shallowest list), OpenClaw `sessions`, cron `events`, weather
    `opportunities`."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("events", "instances", "sessions", "opportunities", "workflow_runs", "check_runs"):
            if isinstance(payload.get(key), list):
                return payload[key]
        level = [v for v in (payload.get("data") or {}).values() if isinstance(v, dict)]
        while level:
            for value in level:
                if isinstance(value.get("nodes"), list):
                    return value["nodes"]
            level = [v for value in level for v in value.values() if isinstance(v, dict)]
    return None


def spoil(items: list) -> None:
    """Make the middle record of a page schema-invalid, leaving the others intact."""
    record = items[len(items) // 2]
    if isinstance(record, dict):
        dropped = [f for f in REQUIRED_FIELDS if f in record]
        for name in dropped or ["id"]:
            record.pop(name, None)
