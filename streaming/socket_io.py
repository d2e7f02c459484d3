"""Socket.IO at `/socket.io/` (python-socketio), for the seeds' client as it is written:

    const socket = io(url, {auth: {token}, transports: ['websocket']})
    socket.emit('subscribe', {rooms: ['dashboard:overview', 'alerts:all']})
    socket.on('system.status.update', (msg) => ...)   // msg = {type, room, timestamp, payload}

Same JWT as `/ws` (`auth.token`; a bad or expired one refuses the connection, `connect_error`
with the reason), same rooms and the token's `rooms` claim, same messages: each is emitted as an
event named by its `type` with the whole `{type, room, timestamp, payload}` as its argument
(`socket.onAny` gets them all). `auth.batch: true` asks for `batch` events instead, each an
array of every message that was waiting for the client.

python-socketio speaks the protocol (handshake, heartbeats, namespaces, acks); fan-out does not
go through its rooms but through `streaming.rooms.Hub`, like `/ws`: one bounded queue and sender
per client, drop-with-notice, disconnect when stuck, and every replica's broker feeding it. An
event's Engine.IO packet is encoded once and shared by every non-batching client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import packet as eio_packet
from fastapi import FastAPI

from streaming.auth import AuthError, Principal, verify_token
from streaming.rooms import Client, as_text, message, message_type
from streaming.ws import CLOSE_UNAUTHORIZED, FrameWriter, text_frame

PATH = "socket.io"


def _event(text: str) -> str:
    """The Socket.IO EVENT `[type, message]` (packet type 2) of one message."""
    return '2["' + message_type(text) + '",' + text + "]"


def _batch(texts: list[str]) -> str:
    """The Socket.IO EVENT `["batch", [messages...]]`."""
    return '2["batch",[' + ",".join(texts) + "]]"


def _packet(data: str) -> eio_packet.Packet:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data=data)
    pkt.encode()  # now, once: the packet caches it and is shared by every client it is for
    return pkt


def event_packet(text: str) -> eio_packet.Packet:
    """One message as an Engine.IO MESSAGE packet, for Engine.IO's own send path."""
    return _packet(_event(text))


def batch_packet(texts: list[str]) -> eio_packet.Packet:
    return _packet(_batch(texts))


def framed_event(text: str) -> bytes:
    """One message as the WebSocket frame of its Engine.IO MESSAGE (`4` + the Socket.IO packet),
    for a client whose frames go out through `FrameWriter`."""
    return text_frame(("4" + _event(text)).encode())


def framed_batch(texts: list[str]) -> bytes:
    return text_frame(("4" + _batch(texts)).encode())


@dataclass
class _Session:
    client: Client
    principal: Principal
    expiry: asyncio.TimerHandle | None = None


def create_server(app: FastAPI) -> socketio.AsyncServer:
    """The Socket.IO server of `app` (its handlers read `app.state.sidecar`, made in the lifespan)."""
    # Any origin: clients authenticate with a token they send, never with cookies.
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", logger=False, engineio_logger=False)
    sessions: dict[str, _Session] = {}

    @sio.event
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        sidecar = app.state.sidecar
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            principal = verify_token(sidecar.settings.jwt_secret, token if isinstance(token, str) else None)
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from exc
        batch = isinstance(auth, dict) and auth.get("batch") is True
        eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
        socket = sio.eio.sockets[eio_sid]

        # A WebSocket client under uvicorn: frames encoded once per room turn, written straight to
        # its transport (`ws.FrameWriter`); Engine.IO's own pings and answers keep their own path.
        scope = environ.get("asgi.scope") or {}
        writer = FrameWriter.of(scope) if scope.get("type") == "websocket" else None

        async def send(items: list[Any]) -> None:  # a batching client's are `batch_packet`s already
            if writer is not None:
                for frame in items:
                    await writer.write(frame)
                return
            # Engine.IO's own queue is unbounded: while its writer has not taken what we gave it
            # last time, wait, so a client that does not read backs up in our bounded queue,
            # where the policy applies (and Engine.IO never holds more than one turn's worth).
            if socket.queue.qsize():
                await socket.queue.join()
            for pkt in items:
                await sio.eio.send_packet(eio_sid, pkt)

        async def close(code: int, reason: str) -> None:
            code_name = "token_expired" if code == CLOSE_UNAUTHORIZED else "too_slow"
            notice = message("notice", None, {"code": code_name, "closeCode": code, "detail": reason})
            if writer is not None:
                # Past flow control, like `/ws` (`FrameWriter.close`): the notice, Socket.IO's
                # DISCONNECT, the close frame; Engine.IO then sees the socket closed and ends the session.
                writer.close(code, reason, sidecar.settings.ws_close_grace_s,
                             (framed_event(notice), text_frame(b"41")))
                return
            with contextlib.suppress(Exception):
                await sio.eio.send_packet(eio_sid, event_packet(notice))
            await sio.disconnect(sid)

        if writer is None:
            client = sidecar.hub.client(send, close, as_text if batch else event_packet, batch=batch,
                                        pack=batch_packet)
        else:
            client = sidecar.hub.client(send, close, as_text if batch else framed_event, batch=batch,
                                        pack=framed_batch, write_now=writer.write_now)
        session = sessions[sid] = _Session(client, principal)
        client.task = asyncio.create_task(client.run())
        if principal.expires_at is not None:
            session.expiry = asyncio.get_running_loop().call_later(
                max(0.0, principal.expires_at - time.time()), client.kick, CLOSE_UNAUTHORIZED, "token expired")

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        session = sessions.pop(sid, None)
        if session is None:
            return
        client = session.client
        if session.expiry is not None:
            session.expiry.cancel()
        was_kicked = client.kicked
        app.state.sidecar.hub.remove(client)
        if client.task is None or client.task is asyncio.current_task():
            return  # the sender itself is closing a kicked client
        if not was_kicked:
            client.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await client.task

    def rooms_of(data: Any) -> list | None:
        rooms = data.get("rooms") if isinstance(data, dict) else data
        if isinstance(rooms, str):
            rooms = [rooms]
        return rooms if isinstance(rooms, list) else None

    @sio.event
    async def subscribe(sid: str, data: Any = None) -> dict:
        session = sessions.get(sid)
        if session is None:
            return {"error": "not connected"}
        rooms = rooms_of(data)
        client = session.client
        if rooms is None:
            error = {"detail": "send {rooms: [...]}: rooms must be a list of room names"}
            client.send_message(message("error", None, error))
            return {"error": error["detail"]}
        sidecar = app.state.sidecar
        answer = sidecar.hub.subscribe(client, rooms, session.principal.may_join)
        client.send_message(message("subscribed", None, answer))
        if "dashboard:overview" in answer["rooms"] and sidecar.last_status is not None:
            client.send_message(sidecar.last_status)
        return answer  # the ack, for emit('subscribe', {...}, (answer) => ...)

    @sio.event
    async def unsubscribe(sid: str, data: Any = None) -> dict:
        session = sessions.get(sid)
        if session is None:
            return {"error": "not connected"}
        answer = app.state.sidecar.hub.unsubscribe(session.client, rooms_of(data) or [])
        session.client.send_message(message("unsubscribed", None, answer))
        return answer

    return sio


def mount(app: FastAPI) -> socketio.AsyncServer:
    """Serve Socket.IO from `app` at `/socket.io/`, the client's default path."""
    sio = create_server(app)
    app.mount(f"/{PATH}", socketio.ASGIApp(sio, socketio_path=PATH))
    return sio
