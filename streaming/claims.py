"""Webhook dedupe between workers: a delivery is claimed in Redis while one worker lands it.

Each worker's own index (`streaming.dedupe`) knows what it landed; with `CC_REDIS_URL` the workers
(on one host or several) also share one key per delivery (`RedisBroker.claim`): a claim
`c:<writer>:<ms>:<replica>@<host and data dir>` from before the landing write until the line is
fsynced, then the landed marker. A copy that finds a landed marker is a duplicate; one that finds
another worker's claim waits for it to turn into the marker (a duplicate) or go away (the write
failed: it claims and lands itself), as a copy waits for one in flight in its own worker.

A worker killed between its fsync and its marker leaves a claim behind and maybe a line. Its
claim is taken over once the worker is known dead (at once when it wrote in this data dir on
this host: its `WriterLock` is free, or it was this worker's earlier life; else when the claim
expires), and the dead worker's landing file is searched from its end for the delivery
(`find_landed`): found, the copy is a duplicate; not found, it is landed. So a sender retrying an
unanswered delivery on another worker gets it landed exactly once, whichever worker died when.
The dead worker never published what it landed (it publishes after its marker): the worker that
finds its claim does (`RECOVERED`), and so does one that finds such a claim on a copy its own
index holds (`recover`), so clients and the live state get the events once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from resources.storage.landing import WriterLock
from streaming.broker import LANDED, LANDED_TTL_S, Broker
from streaming.dedupe import find_landed

log = logging.getLogger(__name__)

# A claim outlives a landing write this long (a write takes milliseconds; a slower disk, under
# `CC_FAULT_FSYNC_DELAY_S`, gets more): past it, its worker is taken for dead.
CLAIM_TTL_S = 5.0
POLL_S = 0.02  # a waiting copy looks at the claim this often
# The dead worker's file is searched back to this long before its claim (clocks, group commits).
SEARCH_SLACK_S = 5.0
# What `SharedClaims.claim` answers beside a `Held` claim and `LANDED` (a duplicate): landed by a
# worker that died before announcing it, now marked landed, for the caller to publish.
RECOVERED = "recovered"


class Held:
    """This worker's claim of one delivery, until its write settles."""

    def __init__(self, claims: SharedClaims, keys: tuple[str, ...], owner: str) -> None:
        self.claims = claims
        self.keys = keys
        self.owner = owner
        self._settled: asyncio.Future | None = None

    def settle(self, durable: bool) -> asyncio.Future:
        """Landed: the marker replaces the claim; failed: the claim goes, for a copy to land. Once
        per claim (the first call decides), on its own: a request that goes away after the fsync
        still leaves the marker."""
        if self._settled is None:
            broker = self.claims.broker
            work = broker.mark_landed(self.keys) if durable else broker.swap(self.keys[0], self.owner, None)
            self._settled = asyncio.ensure_future(work)
        return self._settled


class SharedClaims:
    def __init__(self, broker: Broker, landing_root: Path, stream: str, writer: str | None, replica: str,
                 ttl_s: float = CLAIM_TTL_S) -> None:
        self.broker = broker
        self.landing_root = landing_root
        self.stream = stream
        self.writer = writer or ""
        landing_root.mkdir(parents=True, exist_ok=True)
        folder = os.stat(landing_root)
        # Where this worker writes: a claim's worker is known dead only by one that writes there too.
        self.place = f"{socket.gethostname()}/{folder.st_dev:x}.{folder.st_ino:x}"
        self.replica = f"{replica}@{self.place}"
        self.ttl_ms = int(ttl_s * 1000)
        self.taken_over = 0  # claims of dead workers taken over (for /healthz and tests)
        self.found_landed = 0  # ... whose delivery the dead worker had landed

    def _owner(self) -> str:
        return f"c:{self.writer}:{int(time.time() * 1000)}:{self.replica}"

    async def claim(self, keys: tuple[str, ...]) -> Held | str:
        """This worker's claim of a delivery to land; else `LANDED` (a worker landed it) or
        `RECOVERED` (a dead worker landed it without a word: publish it)."""
        while True:
            owner = self._owner()
            held = await self.broker.claim(keys, owner, self.ttl_ms)
            if held is None:
                return Held(self, keys, owner)
            if held == LANDED:
                return LANDED
            if await self._wait(keys[0], held):
                continue  # it went: claim again
            owner = self._owner()
            if not await self.broker.swap(keys[0], held, owner, self.ttl_ms):
                continue  # someone else moved first
            self.taken_over += 1
            if await self._landed_by(held, keys[0]):
                self.found_landed += 1
                await self.broker.mark_landed(keys)
                return RECOVERED
            return Held(self, keys, owner)

    async def recover(self, keys: tuple[str, ...]) -> bool:
        """For a delivery this worker's index holds: True when a worker (this one's earlier life,
        or one whose files it read at start) landed it and died before announcing it — its claim is
        still there — now marked landed for the caller to publish; False for a plain duplicate."""
        held = await self.broker.holder(keys[0])
        if held is None or held == LANDED:
            return False
        _, writer, _, replica = _parse(held)
        if not await asyncio.to_thread(self._dead, writer, replica):
            return False
        if not await self.broker.swap(keys[0], held, LANDED, int(LANDED_TTL_S * 1000)):
            return False
        await self.broker.mark_landed(keys)
        return True

    async def _wait(self, key: str, held: str) -> bool:
        """Wait while `key` holds `held`: True once it changed, False once its worker is dead."""
        _, writer, _, replica = _parse(held)
        deadline = time.monotonic() + self.ttl_ms / 1000
        checked = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - checked >= 0.1:
                checked = time.monotonic()
                if await asyncio.to_thread(self._dead, writer, replica):
                    return False
            await asyncio.sleep(POLL_S)
            if await self.broker.holder(key) != held:
                return True
        return await self.broker.holder(key) != held

    def _dead(self, writer: str, replica: str) -> bool:
        """Known dead: a worker writing in this data dir on this host whose name is free again, or
        this worker's earlier life (one process per name). Of another nothing is known: its claim
        expires."""
        if replica.rpartition("@")[2] != self.place:
            return False
        if writer == self.writer:
            return replica != self.replica
        return WriterLock.held(self.landing_root, writer or None) is False

    async def _landed_by(self, held: str, key: str) -> bool:
        """Whether the dead worker that held `key`'s claim landed it (in this data dir)."""
        _, writer, at_ms, _ = _parse(held)
        if writer == self.writer:
            return False  # this worker's earlier life: its lines were read at start (the index)
        since = datetime.fromtimestamp(at_ms / 1000, UTC).replace(tzinfo=None) - timedelta(seconds=SEARCH_SLACK_S)
        found = await asyncio.to_thread(find_landed, self.landing_root, self.stream, writer or None, key, since)
        if found is not None:
            log.warning("%s was landed in %s by a worker that died before saying so: a duplicate", key, found.name)
        return found is not None


def _parse(held: str) -> tuple[str, str, int, str]:
    """`c:<writer>:<ms>:<replica>` (a foreign value parses as a claim of no known worker)."""
    parts = held.split(":", 3)
    if len(parts) != 4 or parts[0] != "c":
        return "c", "?", 0, ""
    try:
        return parts[0], parts[1], int(parts[2]), parts[3]
    except ValueError:
        return "c", parts[1], 0, parts[3]
