"""Traffic for the network scenarios, the tests and `bench-slowloris`: a signed GitHub sender at a
fixed rate over keep-alive connections, slowloris attackers (stalled headers, trickled bodies),
and a WebSocket client that subscribes and then never reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from scripts.chaos.harness import SECRETS

MARK = re.compile(rb"chaos-(\d+)-")


def pull_request(seq: int, padding: int = 0) -> bytes:
    """A `pull_request` opened webhook that normalizes to one `github.pr.opened` event whose
    title carries `chaos-<seq>-` (what a room client looks for) and `padding` bytes."""
    number = 100_000 + seq
    return json.dumps({"action": "opened", "number": number, "repository": {"full_name": "acme/chaos"},
                       "pull_request": {"number": number, "title": f"chaos-{seq}-" + "x" * padding,
                                        "state": "open", "user": {"login": "octo"}, "head": {"ref": "main"},
                                        "created_at": "2026-01-05T10:00:00Z",
                                        "html_url": f"https://github.com/acme/chaos/pull/{number}"}},
                      separators=(",", ":")).encode()


@dataclass
class Sent:
    """What a sender sent and what came back."""

    sent: int = 0
    acked: dict[int, float] = field(default_factory=dict)  # seq -> seconds from send to the 2xx
    statuses: Counter = field(default_factory=Counter)
    failures: int = 0  # no answer: connection refused, reset or timed out

    @property
    def errors_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    def deliveries(self, run: str) -> set[str]:
        return {f"{run}-{seq}" for seq in self.acked}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


async def send_webhooks(port: int, rate: float, seconds: float, run: str, *, first_seq: int = 0,
                        connections: int = 8, padding: int = 0, timeout_s: float = 10.0,
                        stop: asyncio.Event | None = None) -> Sent:
    """POST signed GitHub webhooks at `rate`/s for `seconds` (or until `stop`), as GitHub would:
    each with its own delivery id `<run>-<seq>`, over `connections` keep-alive connections. A
    request that gets no answer is counted as a failure, not retried (the row counts it lost)."""
    key = SECRETS["CC_GITHUB_WEBHOOK_SECRET"].encode()
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    out = Sent()

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (seq := await queue.get()) is not None:
            body = pull_request(seq, padding)
            signature = hmac.new(key, body, hashlib.sha256).hexdigest()
            request = (f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       f"User-Agent: GitHub-Hookshot/chaos\r\nX-GitHub-Event: pull_request\r\n"
                       f"X-GitHub-Delivery: {run}-{seq}\r\nX-Hub-Signature-256: sha256={signature}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout_s):
                    if conn is None:
                        conn = await asyncio.open_connection("127.0.0.1", port)
                    reader, writer = conn
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length: *(\d+)", head)
                    await reader.readexactly(int(length.group(1)) if length else 0)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                out.failures += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            status = head[9:12].decode()
            out.statuses[status] += 1
            if status.startswith("2"):
                out.acked[seq] = time.monotonic() - started
            if b"connection: close" in head.lower():
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.monotonic()
    seq = first_seq
    while time.monotonic() - start < seconds and not (stop and stop.is_set()):
        due = start + (seq - first_seq) / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(seq)
        seq += 1
    out.sent = seq - first_seq
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return out


@dataclass
class Attack:
    opened: int = 0  # connections opened in all (reconnects included)
    cut: int = 0  # closed by the server
    answered_408: int = 0
    answered_2xx: int = 0  # must stay 0: a trickled, unsigned body is never accepted


async def slowloris(port: int, stalled: int, trickled: int, stop: asyncio.Event, attack: Attack) -> None:
    """Hold `stalled` connections that never finish their headers (a header line now and then, as
    slowloris does) and `trickled` ones that send a body a byte a second, reopening each one
    the server closes, until `stop`."""

    async def one(trickle: bool) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(1.0)
                continue
            attack.opened += 1
            try:
                if trickle:
                    writer.write(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                                 b"X-GitHub-Delivery: loris\r\nX-Hub-Signature-256: sha256=00\r\n"
                                 b"Content-Length: 100000\r\n\r\n")
                else:
                    writer.write(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        data = await asyncio.wait_for(reader.read(65536), 1.0)
                        if data.startswith(b"HTTP/1.1 408"):
                            attack.answered_408 += 1
                        elif data.startswith(b"HTTP/1.1 2"):
                            attack.answered_2xx += 1
                        if not data or data.startswith(b"HTTP/"):
                            attack.cut += 1
                            break
                    writer.write(b"{" if trickle else b"X-a: b\r\n")
                    await writer.drain()
            except OSError:
                attack.cut += 1
            finally:
                writer.close()
            await asyncio.sleep(1.0)  # reopened on the next tick, as slowloris does

    tasks = [asyncio.create_task(one(False)) for _ in range(stalled)]
    tasks += [asyncio.create_task(one(True)) for _ in range(trickled)]
    await asyncio.gather(*tasks, return_exceptions=True)


def attack_main(argv: list[str] | None = None) -> None:
    """`python -m scripts.chaos.traffic PORT STALLED TRICKLED OUT`: the slowloris in a process of its
    own (so its CPU does not skew the sender's timings); prints `ready` once its connections are
    open, and writes its `Attack` counts as JSON to OUT on SIGTERM."""
    import signal
    import sys
    from dataclasses import asdict
    from pathlib import Path

    port, stalled, trickled, out = sys.argv[1:5] if argv is None else argv
    allow_open_files(int(stalled) + int(trickled) + 256)

    async def attack_until_terminated() -> None:
        stop, attack = asyncio.Event(), Attack()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        task = asyncio.create_task(slowloris(int(port), int(stalled), int(trickled), stop, attack))
        while attack.opened < int(stalled) + int(trickled) and not task.done():
            await asyncio.sleep(0.1)
        print("ready", flush=True)
        await task
        Path(out).write_text(json.dumps(asdict(attack)))

    asyncio.run(attack_until_terminated())


def allow_open_files(n: int) -> None:
    """Let this process hold `n` sockets, within its hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n if hard == resource.RLIM_INFINITY else min(n, hard), hard))


class StalledWebSocket:
    """A client of `/ws` (or of Socket.IO over WebSocket) that subscribes and then never reads: a raw
    socket with a tiny receive buffer (a client library would keep reading into its own memory),
    so the server's sends back up within kilobytes. `ending()` reads, later, everything the
    server sent."""

    def __init__(self, port: int, token: str, rooms: tuple[str, ...] = ("events:all",),
                 socket_io: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/socket.io/?EIO=4&transport=websocket" if socket_io else f"/ws?token={token}"
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        assert self.buffer.startswith(b"HTTP/1.1 101"), self.buffer[:200]
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.connected_at = time.monotonic()
        if socket_io:  # Engine.IO open, Socket.IO connect with the token, then the seeds' subscribe
            self._until(b"0")
            self.send_text("40" + json.dumps({"token": token}))
            self._until(b"40")
            self.send_text('42["subscribe",' + json.dumps({"rooms": list(rooms)}) + "]")
        else:
            self.send_text(json.dumps({"type": "subscribe", "rooms": list(rooms)}))

    def _until(self, prefix: bytes) -> None:
        for opcode, payload in self.frames(10.0):
            if opcode == 0x1 and payload.startswith(prefix):
                return
        raise RuntimeError(f"the server never sent a {prefix!r} frame")

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        assert len(data) < 65536
        head = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, len(data))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def frames(self, timeout: float = 10.0):
        """(opcode, payload) of everything the server sent, until its close frame or EOF."""
        self.sock.settimeout(timeout)

        def take(n: int) -> bytes:
            while len(self.buffer) < n:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
            out, self.buffer = self.buffer[:n], self.buffer[n:]
            return out

        try:
            while True:
                head = take(2)
                length = head[1] & 0x7F
                if length == 126:
                    length = struct.unpack("!H", take(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", take(8))[0]
                opcode = head[0] & 0x0F
                yield opcode, take(length)
                if opcode == 0x8:
                    return
        except (EOFError, ConnectionResetError, TimeoutError):
            return

    def ending(self, timeout: float = 10.0) -> tuple[list[bytes], int | None]:
        """Read everything the server sent: the last text frames before its close frame, and the
        close frame's code (None if the connection ended without one)."""
        texts: deque[bytes] = deque(maxlen=5)
        for opcode, payload in self.frames(timeout):
            if opcode == 0x1:
                texts.append(payload)
            elif opcode == 0x8:
                return list(texts), struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return list(texts), None

    def close(self) -> None:
        self.sock.close()


if __name__ == "__main__":
    attack_main()
