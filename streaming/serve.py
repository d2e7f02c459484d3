"""The sidecar's launcher: `python -m streaming.serve [--host H] [--port P] [--log-level L]`.

uvicorn reads a request without a deadline: a connection that never finishes its headers, or a
body sent a byte a minute, holds a file descriptor for ever, and 1,100 such connections (a
slowloris) used up the 1,024-file limit so that no webhook could even be accepted. Its only
limit, `limit_concurrency`, answers 503 to everyone once full, the attacker's connections
included. So the launcher runs uvicorn (uvloop, httptools, its websockets-sansio WebSockets)
with `GuardedHttpToolsProtocol`, which adds:

- a header timeout (`CC_HTTP_HEADER_TIMEOUT_S`): a connection whose request headers are not in
  within it is closed;
- a body timeout (`CC_HTTP_BODY_TIMEOUT_S`, from the headers): 408, then closed;
- a connection budget (`CC_HTTP_MAX_CONNECTIONS`, capped below the open-file limit): when it is
  full a new connection evicts the oldest one that is still waiting for a request's headers, or
  is refused (503) if every connection is busy with a request. A sender that completes its
  request is never starved by connections that do not.

and raises the open-file soft limit to the hard one. `uvicorn streaming.app:app` still works,
without any of that; `uvicorn --http streaming.serve:GuardedHttpToolsProtocol ...` gets the
protocol (not the file limit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import sys
from typing import Any

from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from resources.settings import Settings

logger = logging.getLogger("uvicorn.error")

# Descriptors kept out of the connection budget for the app itself: landing-log files, DuckDB,
# Redis and Postgres connections, the event loop's own, log files.
RESERVED_FILES = 128

REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 32\r\nconnection: close\r\n\r\nthe request body came too slowly")
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
        b"content-length: 32\r\nconnection: close\r\n\r\nevery connection slot is working")


def raise_open_files() -> int:
    """Raise RLIMIT_NOFILE's soft limit as far as the hard one allows; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 1 << 20, 65536):  # an unlimited hard limit is not always settable
        if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and target <= soft):
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


def connection_budget(wanted: int) -> int:
    """`wanted`, capped so that a full budget still leaves files for the app."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FILES))


class Guard:
    """One server's budget, the connections waiting for a request's headers (oldest first), and the
    read deadlines of its connections.

    The deadlines are not a timer per request (arming and cancelling two timers per webhook cost
    12 µs): each phase has one timeout, so a connection's deadline is its arming time plus that,
    and deadlines armed in order stay in order. One timer, at the earliest deadline, closes what
    is due then and is set again at the next one."""

    def __init__(self, settings: Settings, connections: set) -> None:
        self.header_timeout_s = settings.http_header_timeout_s
        self.body_timeout_s = settings.http_body_timeout_s
        self.budget = connection_budget(settings.http_max_connections)
        self.connections = connections  # uvicorn's: every open HTTP and WebSocket connection
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}  # insertion order: the oldest first
        self.headers_due: dict[GuardedHttpToolsProtocol, float] = {}  # arming order: the earliest first
        self.bodies_due: dict[GuardedHttpToolsProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.evicted = self.refused = 0

    @classmethod
    def of(cls, server_state: Any) -> Guard:
        guard = getattr(server_state, "cc_guard", None)
        if guard is None:
            guard = server_state.cc_guard = cls(Settings.from_env(), server_state.connections)
        return guard

    def admit(self) -> bool:
        """Make room for one more connection; False if none can be made."""
        while len(self.connections) >= self.budget:
            if not self.waiting:
                self.refused += 1
                return False
            oldest = next(iter(self.waiting))
            self.waiting.pop(oldest)
            self.disarm(oldest)
            # Counted out now: its connection_lost comes on a later loop turn.
            self.connections.discard(oldest)
            oldest.transport.abort()
            if not self.evicted:
                logger.warning("%d connections open: evicting the oldest that have sent no request", self.budget)
            self.evicted += 1
        return True

    def wait(self, protocol: GuardedHttpToolsProtocol) -> None:
        self.waiting.pop(protocol, None)
        self.waiting[protocol] = None

    def arm_headers(self, protocol: GuardedHttpToolsProtocol) -> None:
        self.bodies_due.pop(protocol, None)
        self.headers_due.pop(protocol, None)
        self._arm(protocol.loop, self.headers_due, protocol, self.header_timeout_s)

    def arm_body(self, protocol: GuardedHttpToolsProtocol) -> None:
        self.headers_due.pop(protocol, None)
        self.bodies_due.pop(protocol, None)
        self._arm(protocol.loop, self.bodies_due, protocol, self.body_timeout_s)

    def armed(self, protocol: GuardedHttpToolsProtocol) -> bool:
        return protocol in self.headers_due or protocol in self.bodies_due

    def disarm(self, protocol: GuardedHttpToolsProtocol) -> None:
        self.headers_due.pop(protocol, None)
        self.bodies_due.pop(protocol, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, due: dict, protocol: GuardedHttpToolsProtocol,
             timeout_s: float) -> None:
        at = due[protocol] = loop.time() + timeout_s
        if self._timer is None or at < self._timer_at:
            self._schedule(loop, at)

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._expire, loop), at

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for due, expired in ((self.headers_due, "_headers_too_slow"), (self.bodies_due, "_body_too_slow")):
            while due:
                protocol, at = next(iter(due.items()))
                if at > now:
                    break
                del due[protocol]
                getattr(protocol, expired)()
        nexts = [next(iter(due.values())) for due in (self.headers_due, self.bodies_due) if due]
        if nexts:
            self._schedule(loop, min(nexts))


class HeadWithBody:
    """A webhook response's transport: its head is written with its body, one system call per
    response where uvicorn makes two (a write to a loopback socket runs the receiver's side of TCP
    too). Only for the webhook routes, whose answer (`streaming.webhooks.fast_path`) sends both at
    once: a streamed response's head must not wait for its first part."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.head = transport, b""

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.transport.write(data)
        elif not self.head:
            self.head = data  # the head: held for the body
        else:
            self.transport.write(self.head + data)
            self.head = None

    def close(self) -> None:
        if self.head:
            self.transport.write(self.head)
        self.head = None
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts and the connection budget (`Guard`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = Guard.of(self.server_state)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        admitted = self.guard.admit()
        super().connection_made(transport)
        if not admitted:
            transport.write(BUSY)
            transport.close()
            return
        self.guard.wait(self)
        self.guard.arm_headers(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.disarm(self)
        self.guard.waiting.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.guard.armed(self):  # the next request on a kept-alive connection: its headers are timed too
            self.guard.arm_headers(self)

    def on_headers_complete(self) -> None:
        self.guard.disarm(self)
        self.guard.waiting.pop(self, None)
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self.guard.arm_body(self)

    def on_message_complete(self) -> None:
        self.guard.disarm(self)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle until the next request: evictable
            self.guard.wait(self)

    def handle_websocket_upgrade(self) -> None:
        self.guard.disarm(self)
        self.guard.waiting.pop(self, None)
        super().handle_websocket_upgrade()

    def _start_asgi_task(self, cycle, app) -> None:
        from streaming.webhooks import ROUTES  # the worker's app has it loaded; the launcher never needs it

        if cycle.scope["method"] == "POST" and cycle.scope["path"] in ROUTES:
            cycle.transport = HeadWithBody(cycle.transport)

        async def run(scope, receive, send) -> None:
            try:
                await app(scope, receive, send)
            except Exception:
                # The app saw a request cut short by the body timeout (Starlette raises
                # ClientDisconnect): already answered 408, nothing to log.
                if not getattr(cycle, "cc_timed_out", False):
                    raise

        super()._start_asgi_task(cycle, run)

    def _headers_too_slow(self) -> None:
        self.guard.waiting.pop(self, None)
        self.transport.close()

    def _body_too_slow(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.cc_timed_out = True
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--app", default="streaming.app:app", help="the ASGI app, as an import string")
    parser.add_argument("--reuse-port", action="store_true",
                        help="listen beside other processes on the port (SO_REUSEPORT): one of several workers")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.sidecar_workers > 1 and not args.reuse_port:  # the supervisor of CC_SIDECAR_WORKERS workers
        from streaming.workers import supervise

        passed = ["--log-level", args.log_level, "--app", args.app] + (["--no-access-log"] if args.no_access_log else [])
        sys.exit(supervise(settings, args.host, args.port, passed))
    raise_open_files()
    options = dict(log_level=args.log_level, access_log=not args.no_access_log, http=GuardedHttpToolsProtocol,
                   ws_ping_interval=settings.ws_ping_interval_s, ws_ping_timeout=settings.ws_ping_timeout_s)
    if not args.reuse_port:
        uvicorn.run(args.app, host=args.host, port=args.port, **options)
        return
    from streaming.workers import reuse_port_socket

    # uvicorn.run, on a socket of our own: uvicorn has no SO_REUSEPORT option.
    try:
        sock = reuse_port_socket(args.host, args.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(uvicorn.Config(args.app, host=args.host, port=args.port, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
