"""`/ws`: the plain WebSocket endpoint (JWT auth, room subscriptions, JSON messages).

Protocol: connect with `?token=<jwt>` or send `{"type": "auth", "token": ...}` first; then
`{"type": "subscribe", "rooms": [...]}` / `{"type": "unsubscribe", "rooms": [...]}`; every push is
`{"type", "room", "timestamp", "payload"}`. A bad, missing or expired token closes with 4401.
A client that asks for batches (`?batch=1`, or `"batch": true` in the auth message) gets every
frame as a JSON array of messages: everything that was waiting for it, one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from websockets.exceptions import InvalidState

from streaming.auth import AuthError, Principal, verify_token
from streaming.rooms import as_text, json_array, message

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
AUTH_TIMEOUT_S = 10.0


# The ASGI `send` of the server itself, put in the scope by `streaming.app.SidecarApp`.
SCOPE_SEND = "cc.server_send"


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2): what a server sends. The
    RSV1 bit is clear, so it is valid whether or not permessage-deflate was negotiated (RFC 7692
    6: a message may go uncompressed)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def framed(text: str) -> bytes:
    """One message, framed: the wire item of a client that takes messages one by one."""
    return text_frame(text.encode())


def framed_array(texts: list[str]) -> bytes:
    """A batch of messages as one framed JSON array."""
    return text_frame(json_array(texts).encode())


class FrameWriter:
    """Writes frames encoded once (`framed`, `framed_array`) straight to uvicorn's transport.

    Through ASGI every frame is re-encoded for each client: the text to UTF-8, then framed, then
    joined (three copies of a batch that is a hundred kilobytes at 5,000 events/s), and four
    layers of send wrappers run. A room's frame is the same bytes for every member, so here it is
    encoded once and each client's send is one `transport.write`. Flow control is uvicorn's own:
    a write waits while the transport is paused, so a slow client still backs up into its room
    queue and is dropped from there. Only with uvicorn's websockets-sansio protocol (its default);
    with any other server `of()` is None and frames go through ASGI. Socket.IO's WebSocket
    clients get the same (`streaming.socket_io`)."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, scope: dict) -> FrameWriter | None:
        """The writer of a WebSocket connection's ASGI `scope`, if its server is uvicorn's."""
        protocol = getattr(scope.get(SCOPE_SEND), "__self__", None)
        if type(protocol).__name__ != "WebSocketsSansIOProtocol" or not all(hasattr(protocol, name) for name in (
                "transport", "writable", "disconnected", "close_sent", "conn", "queue", "close_timer", "loop")):
            return None
        return cls(protocol)

    async def write(self, frame: bytes) -> None:
        protocol = self._protocol
        if not protocol.writable.is_set():
            await protocol.writable.wait()
        if protocol.disconnected or protocol.close_sent or protocol.transport.is_closing():
            raise WebSocketDisconnect(1006)
        protocol.transport.write(frame)

    def write_now(self, frames: list[bytes]) -> bool:
        """Write `frames` now, as one write, if the transport takes them without waiting (not paused
        by flow control, not closing); False, and nothing written, if not: the client's own sender
        then writes them when it can (`rooms.Client.write_now`)."""
        protocol = self._protocol
        if not protocol.writable.is_set() or protocol.disconnected or protocol.close_sent \
                or protocol.transport.is_closing():
            return False
        protocol.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        return True

    def close(self, code: int, reason: str, grace_s: float, frames: tuple[bytes, ...] = ()) -> None:
        """Close now, past flow control: `frames`, then the close frame, go to the transport at once.

        A client that stopped reading has a full transport, so an ASGI `websocket.close` waits
        behind flow control until uvicorn's keepalive gives up on the unanswered ping and closes
        with 1011; the client never learns it was too slow. Written now, the close frame ends
        the transport's buffer: a client that reads again within `grace_s` reads its backlog,
        then 4408; past that the connection is dropped (the descriptor is not held for a client
        that never reads). A client that answers the close is closed at once."""
        protocol = self._protocol
        if protocol.disconnected or protocol.close_sent or protocol.transport.is_closing():
            return
        try:
            protocol.conn.send_close(code, reason)
        except InvalidState:  # the client's close crossed ours
            return
        protocol.transport.write(b"".join((*frames, *protocol.conn.data_to_send())))
        protocol.close_sent = True  # also stops uvicorn's keepalive pings
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if getattr(protocol, "read_paused", False):  # to read the client's answer to the close
            protocol.read_paused = False
            protocol.transport.resume_reading()
        protocol.close_timer = protocol.loop.call_later(grace_s, protocol.transport.abort)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


async def _authenticate(ws: WebSocket, secret: str | None) -> tuple[Principal, bool] | None:
    token = ws.query_params.get("token")
    batch = _truthy(ws.query_params.get("batch"))
    try:
        if token is None:
            try:
                first = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
            except (TimeoutError, ValueError) as exc:
                raise AuthError("send {\"type\": \"auth\", \"token\": ...} first") from exc
            if not isinstance(first, dict) or first.get("type") != "auth":
                raise AuthError("send {\"type\": \"auth\", \"token\": ...} first")
            token = first.get("token")
            batch = batch or _truthy(first.get("batch"))
        return verify_token(secret, token if isinstance(token, str) else None), batch
    except AuthError as exc:
        await ws.close(CLOSE_UNAUTHORIZED, str(exc)[:120])
        return None


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    sidecar = ws.app.state.sidecar
    await ws.accept()
    try:
        authenticated = await _authenticate(ws, sidecar.settings.jwt_secret)
    except WebSocketDisconnect:
        return
    if authenticated is None:
        return
    principal, batch = authenticated

    hub = sidecar.hub
    writer = FrameWriter.of(ws.scope)
    if writer is None:
        async def send(frames: list[str]) -> None:  # a batching client's are JSON arrays already
            for text in frames:
                await ws.send_text(text)

        client = hub.client(send, ws.close, batch=batch)
    else:
        async def send(frames: list[bytes]) -> None:  # framed once per room turn, not per client
            for frame in frames:
                await writer.write(frame)

        async def close(code: int, reason: str) -> None:
            writer.close(code, reason, sidecar.settings.ws_close_grace_s)

        client = hub.client(send, close, as_text if batch else framed, batch=batch, pack=framed_array,
                            write_now=writer.write_now)
    client.task = asyncio.create_task(client.run())
    expiry = None
    if principal.expires_at is not None:
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(max(0.0, principal.expires_at - time.time()),
                                 client.kick, CLOSE_UNAUTHORIZED, "token expired")
    client.send_message(message("connection", None, {"sub": principal.sub}))
    try:
        while not client.closed:
            try:
                request = json.loads(await ws.receive_text())
            except ValueError:
                client.send_message(message("error", None, {"detail": "not JSON"}))
                continue
            if not isinstance(request, dict):
                client.send_message(message("error", None, {"detail": "send a JSON object"}))
                continue
            kind = request.get("type")
            if kind in ("subscribe", "unsubscribe"):
                rooms = request.get("rooms")
                if isinstance(rooms, str):
                    rooms = [rooms]
                if not isinstance(rooms, list):
                    client.send_message(message("error", None, {"detail": "rooms must be a list of room names"}))
                    continue
                if kind == "unsubscribe":
                    client.send_message(message("unsubscribed", None, hub.unsubscribe(client, rooms)))
                    continue
                answer = hub.subscribe(client, rooms, principal.may_join)
                client.send_message(message("subscribed", None, answer))
                if "dashboard:overview" in answer["rooms"] and sidecar.last_status is not None:
                    client.send_message(sidecar.last_status)
            elif kind == "ping":
                client.send_message(message("pong", None, {}))
            elif kind == "auth":
                client.send_message(message("error", None, {"detail": "already authenticated"}))
            else:
                client.send_message(message("error", None, {"detail": f"unknown message type {kind!r}"}))
    except WebSocketDisconnect:
        pass
    except RuntimeError:  # the socket was closed under us (kicked or expired)
        pass
    finally:
        await release(hub, client, expiry)


async def release(hub: Any, client: Any, expiry: asyncio.TimerHandle | None) -> None:
    """A hub client's end (a /ws connection's or a GraphQL subscription's): off the hub, its token
    timer stopped, its sender task finished (a kicked client's task ends by itself)."""
    if expiry is not None:
        expiry.cancel()
    was_kicked = client.kicked
    hub.remove(client)
    if not was_kicked:
        client.task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await client.task
