"""`/ws`: the plain WebSocket endpoint (JWT auth, room subscriptions, JSON messages).

Protocol: connect with `?token=<jwt>` or send `{"type": "auth", "token": ...}` first; then
`{"type": "subscribe", "rooms": [...]}` / `{"type": "unsubscribe", "rooms": [...]}`; every push is
`{"type", "room", "timestamp", "payload"}`. A bad, missing or expired token closes with 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streaming.auth import AuthError, Principal, verify_token
from streaming.rooms import is_room, message

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
AUTH_TIMEOUT_S = 10.0


async def _authenticate(ws: WebSocket, secret: str | None) -> Principal | None:
    token = ws.query_params.get("token")
    try:
        if token is None:
            try:
                first = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
            except (TimeoutError, ValueError) as exc:
                raise AuthError("send {\"type\": \"auth\", \"token\": ...} first") from exc
            if not isinstance(first, dict) or first.get("type") != "auth":
                raise AuthError("send {\"type\": \"auth\", \"token\": ...} first")
            token = first.get("token")
        return verify_token(secret, token if isinstance(token, str) else None)
    except AuthError as exc:
        await ws.close(CLOSE_UNAUTHORIZED, str(exc)[:120])
        return None


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    sidecar = ws.app.state.sidecar
    await ws.accept()
    try:
        principal = await _authenticate(ws, sidecar.settings.jwt_secret)
    except WebSocketDisconnect:
        return
    if principal is None:
        return
    hub = sidecar.hub
    client = hub.client(ws.send_text, ws.close)
    client.task = asyncio.create_task(client.run())
    expiry = None
    if principal.expires_at is not None:
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(max(0.0, principal.expires_at - time.time()),
                                 client.kick, CLOSE_UNAUTHORIZED, "token expired")
    client.offer(message("connection", None, {"sub": principal.sub}))
    try:
        while not client.closed:
            try:
                request = json.loads(await ws.receive_text())
            except ValueError:
                client.offer(message("error", None, {"detail": "not JSON"}))
                continue
            if not isinstance(request, dict):
                client.offer(message("error", None, {"detail": "send a JSON object"}))
                continue
            kind = request.get("type")
            if kind in ("subscribe", "unsubscribe"):
                rooms = request.get("rooms")
                if isinstance(rooms, str):
                    rooms = [rooms]
                if not isinstance(rooms, list):
                    client.offer(message("error", None, {"detail": "rooms must be a list of room names"}))
                    continue
                if kind == "unsubscribe":
                    for room in rooms:
                        if isinstance(room, str):
                            hub.leave(client, room)
                    client.offer(message("unsubscribed", None, {"rooms": sorted(client.rooms)}))
                    continue
                joined, denied = [], []
                for room in rooms:
                    if not is_room(room):
                        denied.append({"room": room, "reason": "no such room"})
                    elif not principal.may_join(room):
                        denied.append({"room": room, "reason": "the token's rooms claim does not allow it"})
                    else:
                        hub.join(client, room)
                        joined.append(room)
                client.offer(message("subscribed", None, {"rooms": joined, "denied": denied}))
                if "dashboard:overview" in joined and sidecar.last_status is not None:
                    client.offer(sidecar.last_status)
            elif kind == "ping":
                client.offer(message("pong", None, {}))
            elif kind == "auth":
                client.offer(message("error", None, {"detail": "already authenticated"}))
            else:
                client.offer(message("error", None, {"detail": f"unknown message type {kind!r}"}))
    except WebSocketDisconnect:
        pass
    except RuntimeError:  # the socket was closed under us (kicked or expired)
        pass
    finally:
        if expiry is not None:
            expiry.cancel()
        was_kicked = client.kicked
        hub.remove(client)
        if not was_kicked:
            client.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await client.task
