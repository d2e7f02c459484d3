"""`slow_ws_client`: a WebSocket client that never reads, beside 50 normal ones, at 500 webhooks/s.

The slow one must be closed with 4408 (`CC_WS_SLOW_AFTER_S`), which it reads when it finally
reads, whatever else the server sent meanwhile (a keepalive ping it never answered); the normal
ones must receive every acknowledged event. Wrongly accepted = a close code other than 4408;
acked lost = an acknowledged event some normal client did not receive.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import requests

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import SECRETS, Sidecar
from scripts.chaos.traffic import MARK, Sent, StalledWebSocket, percentile, send_webhooks


@dataclass
class Outcome:
    close_code: int | None
    told_too_slow: bool  # a Socket.IO `notice` {code: too_slow, closeCode: 4408} came before the close
    last_texts: list[bytes]  # the last text frames before the close
    sent: Sent
    missed: int  # acknowledged events a normal client did not receive, summed over the clients
    kicked_after_s: float | None  # from the load's start to the slow client's kick


async def slow_beside_normal(server: Sidecar, *, normal: int, rate: float, load_s: float,
                             read_after_s: float = 0.0, padding: int = 0, socket_io: bool = False) -> Outcome:
    """Connect a never-reading client and `normal` reading ones to `events:all`, post webhooks at
    `rate` for `load_s` (or until 3 s after the slow one is kicked), then, once
    `read_after_s` have passed since the slow one connected, read the slow one's close code, and
    count what the normal ones missed. `socket_io`: the never-reading client is a Socket.IO one."""
    import websockets

    slow = StalledWebSocket(server.port, server.token("slow"), socket_io=socket_io)
    received: list[set[int]] = [set() for _ in range(normal)]
    clients = []
    for i in range(normal):
        ws = await websockets.connect(f"{server.ws_url}?token={server.token(f'n{i}')}&batch=1", max_size=None,
                                      compression=None, open_timeout=30)
        await ws.send('{"type": "subscribe", "rooms": ["events:all"]}')
        while b'"subscribed"' not in await ws.recv(decode=False):
            pass
        clients.append(ws)

    async def read(i: int, ws) -> None:
        async for frame in ws:
            for seq in MARK.findall(frame if isinstance(frame, bytes) else frame.encode()):
                received[i].add(int(seq))

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(clients)]
    stop = asyncio.Event()
    started = time.monotonic()
    load = asyncio.create_task(send_webhooks(server.port, rate, load_s, "slowws", stop=stop, padding=padding))
    kicked_at = None
    while not load.done():
        await asyncio.sleep(0.25)
        if kicked_at is None:
            health = await asyncio.to_thread(requests.get, f"{server.url}/healthz", timeout=10)
            if health.json().get("slow_clients_closed"):
                kicked_at = time.monotonic()
        elif time.monotonic() - kicked_at > 3:  # the load goes on past the kick, for the normal clients
            stop.set()
    sent = await load
    # Every acked event reaches every normal client within seconds; wait for them, boundedly.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(set(sent.acked) - got for got in received):
        await asyncio.sleep(0.2)
    missed = sum(len(set(sent.acked) - got) for got in received)
    if (wait := slow.connected_at + read_after_s - time.monotonic()) > 0:
        await asyncio.sleep(wait)
    texts, code = await asyncio.to_thread(slow.ending, 15.0)
    told = any(b'"notice"' in text and b'"too_slow"' in text and b'"closeCode":4408' in text for text in texts)
    slow.close()
    for ws in clients:
        await ws.close()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return Outcome(code, told, [t[:300] for t in texts], sent, missed, None if kicked_at is None else kicked_at - started)


def run(ctx: Context) -> list[Row]:
    server = Sidecar(ctx.workdir / "data", {**SECRETS, "CC_WS_SLOW_AFTER_S": "10"}).start()
    try:
        outcome = asyncio.run(slow_beside_normal(server, normal=50, rate=500, load_s=max(5.0, ctx.seconds - 6)))
    finally:
        server.stop()
    sent = outcome.sent
    p99 = percentile(list(sent.acked.values()), 0.99)
    kicked = "never" if outcome.kicked_after_s is None else f"after {outcome.kicked_after_s:.1f} s of load"
    return [Row("slow_ws_client", attempts=sent.sent, acked_lost=outcome.missed, errors_5xx=sent.errors_5xx,
                wrongly_accepted=int(outcome.close_code != 4408),
                notes=f"slow client closed with {outcome.close_code} ({kicked}); 50 normal clients; "
                      f"{len(sent.acked):,} acked, {sent.failures} unanswered; ack p99 "
                      + ("–" if p99 is None else f"{p99 * 1000:.0f} ms"))]


SCENARIO = Scenario("slow_ws_client", run, seconds=40)
