"""Deliveries for the chaos scenarios: real deliveries made countable, and a sender that retries as
GitHub does.

Every delivery is a real recorded GitHub payload (or a Linear / Charlie body in the documented
shape) given its own PR / issue / review / commit numbers, title and time, so each yields events
no other delivery yields: the events it should put in the lake and the marts are known before it
is sent (`normalize_delivery`, the sidecar's own normalizer), and each can be counted exactly once
at every layer. The sender retries a delivery with the same delivery id until it gets a 2xx, as
GitHub's redelivery does, and notes every answer and when it came.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cc_events import NormalizeContext
from cc_events.registry import normalize_delivery
from scripts.chaos.harness import ROOT, SECRETS


def fixtures_dir() -> Path | None:
    """The shared recorded GitHub webhooks: the nearest `shared/fixtures/github-webhooks` above the repo."""
    for folder in ROOT.parents:
        path = folder / "shared" / "fixtures" / "github-webhooks"
        if path.is_dir():
            return path
    return None


@dataclass(frozen=True)
class Delivery:
    route: str
    headers: dict[str, str]
    body: bytes
    id: str  # `<source>:<delivery id>`, as the landing log and raw/webhooks/deliveries name it
    events: tuple[str, ...]  # the event ids it must yield, each exactly once


# Kinds with events (each delivery's own), and a few the sidecar lands raw only (ping, CI).
_WITH_EVENTS = ("pull_request", "issues", "pull_request_review", "push")
_RAW_ONLY = ("ping", "check_run", "workflow_run", "release", "create")
_ISO = re.compile(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"')


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Deliveries:
    """An endless, seeded stream of unique deliveries: ~80% GitHub, 10% Linear, 10% Charlie.

    Delivery `n` happens at `base + n` seconds (every time in its payload), so a REST reader paging
    by time never meets more than a handful of events at one instant."""

    def __init__(self, seed: int = 1234, run: str | None = None, base: datetime | None = None) -> None:
        folder = fixtures_dir()
        if folder is None:
            raise RuntimeError("the shared GitHub webhook fixtures (shared/fixtures/github-webhooks) are missing")
        self.rng = random.Random(seed)
        self.run = run or uuid.uuid4().hex[:8]
        self.base = base or (datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=2))
        self.github = [(kind, json.loads(path.read_bytes())) for kind in (*_WITH_EVENTS, *_RAW_ONLY)
                       for path in sorted((folder / kind).glob("*.json"))]
        self.context = NormalizeContext()
        self.n = 0
        self.seen_events: set[str] = set()

    def __iter__(self) -> Iterator[Delivery]:
        return self

    def __next__(self) -> Delivery:
        self.n += 1
        roll = self.rng.random()
        made = self._linear() if roll < 0.1 else self._charlie() if roll < 0.2 else self._github()
        clash = self.seen_events.intersection(made.events)
        if clash:  # the generator's own bug: two deliveries must never share an event
            raise RuntimeError(f"generated deliveries share events {sorted(clash)[:3]}")
        self.seen_events.update(made.events)
        return made

    def at(self, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
        return (self.base + timedelta(seconds=self.n)).strftime(fmt)

    def _github(self) -> Delivery:
        kind, fixture = self.rng.choice(self.github)
        n = 100_000 + self.n
        payload = json.loads(json.dumps(fixture))
        title = f"chaos {self.run} #{n}"
        if isinstance(payload.get("pull_request"), dict):
            payload["number"] = n
            payload["pull_request"].update(number=n, id=n, title=title)
        if isinstance(payload.get("issue"), dict):
            payload["issue"].update(number=n, id=n, title=title)
        if isinstance(payload.get("review"), dict):
            payload["review"]["id"] = n
        for i, commit in enumerate(payload.get("commits") or []):
            commit["id"] = hashlib.sha1(f"{self.run}-{n}-{i}".encode()).hexdigest()
            commit["message"] = f"{title} commit {i}"
        if isinstance(payload.get("head_commit"), dict) and payload.get("commits"):
            payload["head_commit"]["id"] = payload["commits"][-1]["id"]
        body = _ISO.sub(f'"{self.at()}"'.encode(), json.dumps(payload).encode())
        delivery = str(uuid.UUID(int=self.rng.getrandbits(128)))
        headers = {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/chaos",
                   "X-GitHub-Event": kind, "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "123456",
                   "X-Hub-Signature-256": "sha256=" + _sign(SECRETS["CC_GITHUB_WEBHOOK_SECRET"], body)}
        return self._made("/webhooks/github", headers, body, "github", delivery, kind)

    def _linear(self) -> Delivery:
        n = self.n
        key = f"CHAOS{self.run.upper()[:4]}-{n}".replace("0", "O")  # letters, a dash, a number
        team = {"id": "team-chaos", "key": key.split("-")[0], "name": "Chaos"}
        actor = {"id": "user-chaos", "name": "Chaos Monkey", "email": "chaos@acme.dev", "type": "user"}
        at = self.at("%Y-%m-%dT%H:%M:%S.000Z")
        issue_id = f"lin-{self.run}-{n}"
        url = f"https://linear.app/acme/issue/{key}/chaos"
        if self.rng.random() < 0.5:
            data = {"id": issue_id, "createdAt": at, "updatedAt": at, "number": n, "identifier": key,
                    "title": f"chaos {self.run} {key}", "priority": 2, "url": url, "teamId": team["id"], "team": team,
                    "stateId": "state-todo", "state": {"id": "state-todo", "name": "Todo", "type": "unstarted"},
                    "creatorId": actor["id"], "labelIds": [], "previousIdentifiers": []}
            event = "Issue"
        else:
            data = {"id": f"cmt-{self.run}-{n}", "createdAt": at, "updatedAt": at, "body": f"chaos comment {n}",
                    "issueId": issue_id, "userId": actor["id"], "user": actor,
                    "issue": {"id": issue_id, "identifier": key, "title": "chaos", "teamId": team["id"], "url": url}}
            event, url = "Comment", f"{url}#comment-{n}"
        payload = {"action": "create", "type": event, "actor": actor, "createdAt": at, "data": data, "url": url,
                   "organizationId": "org-chaos", "webhookId": "wh-chaos",
                   "webhookTimestamp": int(time.time() * 1000)}
        body = json.dumps(payload).encode()
        delivery = str(uuid.UUID(int=self.rng.getrandbits(128)))
        headers = {"Content-Type": "application/json", "Linear-Event": event, "Linear-Delivery": delivery,
                   "Linear-Signature": _sign(SECRETS["CC_LINEAR_WEBHOOK_SECRET"], body)}
        return self._made("/webhooks/linear", headers, body, "linear", delivery, event)

    def _charlie(self) -> Delivery:
        record = {"id": f"act-{self.run}-{self.n}", "instance_id": f"charlie-{self.n % 3}",
                  "type": self.rng.choice(["task_started", "task_completed", "comment"]), "timestamp": self.at(),
                  "repo": "acme/api", "pr_number": 100_000 + self.n, "message": f"chaos {self.run} {self.n}"}
        body = json.dumps({"kind": "charlie.activity", "data": record}).encode()
        delivery = f"chaos-{self.run}-{self.n}"
        headers = {"Content-Type": "application/json", "X-Delivery-Id": delivery,
                   "X-Signature-256": "sha256=" + _sign(SECRETS["CC_CHARLIE_WEBHOOK_SECRET"], body)}
        return self._made("/webhooks/charlie", headers, body, "charlie", delivery, "charlie.activity")

    def _made(self, route: str, headers: dict[str, str], body: bytes, source: str, delivery: str,
              event: str) -> Delivery:
        payload = json.loads(body)
        if source == "charlie":
            payload = payload["data"]
        events = tuple(e.id for e in normalize_delivery(source, event, payload, self.context))
        return Delivery(route, headers, body, f"{source}:{delivery}", events)


# --- the sender ----------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams (cheap enough for hundreds a second
    on a loaded machine); any failure drops it and the next request opens a new one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, dict, bytes]:
        try:
            return await asyncio.wait_for(self._post(path, headers, body), timeout)
        except BaseException:
            self.close()
            raise

    async def _post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        answer = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        data = await reader.readexactly(int(answer.get("content-length", "0")))
        if answer.get("connection", "").lower() == "close":
            self.close()
        return status, answer, data

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class Ack:
    delivery: Delivery
    status: int
    body: bytes
    started: float  # monotonic, the attempt that got the 2xx
    done: float
    target: int  # index of the server that answered


@dataclass
class Tally:
    """What the sender saw."""

    sent: int = 0  # distinct deliveries started
    attempts: int = 0  # requests, retries included
    acks: dict[str, Ack] = field(default_factory=dict)
    unacked: list[Delivery] = field(default_factory=list)  # still without a 2xx when the drain ended
    statuses: Counter = field(default_factory=Counter)
    errors_5xx: list[str] = field(default_factory=list)  # 5xx other than 503 + Retry-After
    refused_4xx: list[str] = field(default_factory=list)  # a valid signed delivery must never get a 4xx
    connection_errors: int = 0

    def first_ack_after(self, moment: float) -> float | None:
        """When the first 2xx to a request sent at or after `moment` came (monotonic)."""
        done = [a.done for a in self.acks.values() if a.started >= moment]
        return min(done) if done else None

    def recovery(self, faults: list[float]) -> float | None:
        gaps = [(self.first_ack_after(t) or float("inf")) - t for t in faults]
        return max(gaps) if gaps else None


class RetryingSender:
    """`concurrency` workers send `deliveries` at about `rate` a second for `seconds`, then stop
    starting new ones and let each started one retry until it gets a 2xx (at most `drain_s` more).

    A delivery is retried with the same id and body after a connection error, a timeout or any 5xx
    (after `Retry-After`, capped, for a 503). `targets` are (host, port) in failover order: a
    delivery starts on the next target round robin and moves on after a connection error, as a
    load balancer in front of replicas would."""

    def __init__(self, targets: list[tuple[str, int]], rate: float, concurrency: int = 32,
                 attempt_timeout: float = 10.0, max_4xx: int = 3) -> None:
        self.targets = targets
        self.rate = rate
        self.concurrency = concurrency
        self.attempt_timeout = attempt_timeout
        self.max_4xx = max_4xx
        self.tally = Tally()
        self.stopping = False

    async def run(self, deliveries: Iterator[Delivery], seconds: float, drain_s: float = 30.0) -> Tally:
        started = time.monotonic()
        stop_at = started + seconds
        next_slot = [started]
        turn = [0]

        async def take() -> Delivery | None:
            now = time.monotonic()
            if now >= stop_at or self.stopping:
                return None
            slot = max(next_slot[0], now)  # no catching up: a backlog after a fault is not a burst
            next_slot[0] = slot + 1 / self.rate
            if slot > now:
                await asyncio.sleep(slot - now)
            self.tally.sent += 1
            return next(deliveries)

        async def worker(index: int) -> None:
            connections = [Connection(host, port) for host, port in self.targets]
            while (delivery := await take()) is not None:
                turn[0] += 1
                await self._deliver(delivery, connections, turn[0] % len(connections), stop_at + drain_s)
                if delivery.id not in self.tally.acks:
                    self.tally.unacked.append(delivery)
            for c in connections:
                c.close()

        await asyncio.gather(*(worker(i) for i in range(self.concurrency)))
        return self.tally

    async def _deliver(self, delivery: Delivery, connections: list[Connection], target: int, give_up: float) -> None:
        backoff = 0.05
        refused = 0
        while time.monotonic() < give_up:
            self.tally.attempts += 1
            began = time.monotonic()
            try:
                status, headers, body = await connections[target].post(
                    delivery.route, delivery.headers, delivery.body, self.attempt_timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
                # Refused, reset, or cut off mid-answer by a kill: the same delivery again, elsewhere if we can.
                self.tally.connection_errors += 1
                target = (target + 1) % len(connections)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            self.tally.statuses[status] += 1
            if 200 <= status < 300:
                self.tally.acks[delivery.id] = Ack(delivery, status, body, began, time.monotonic(), target)
                return
            if status == 503 and "retry-after" in headers:
                await asyncio.sleep(min(float(headers["retry-after"]), 1.0))
                continue
            if status >= 500:
                self.tally.errors_5xx.append(f"{status} {delivery.id}: {body[:200]!r}")
                await asyncio.sleep(backoff)
                continue
            self.tally.refused_4xx.append(f"{status} {delivery.id}: {body[:200]!r}")
            refused += 1
            if refused >= self.max_4xx:
                return
            await asyncio.sleep(backoff)
