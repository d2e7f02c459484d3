"""GraphQL subscriptions as one more protocol on the rooms hub (`streaming.rooms.Hub`).

A subscription is a hub client, as a `/ws` or Socket.IO connection is: it joins the rooms its
token may join, and the one fan-out that feeds those (every replica's broker included) feeds it.
It takes the messages as their JSON text (the wire format of `/ws` clients without uvicorn's
frame writer, whose groups it shares) and each subscriber turns one into its own selection. The
hub's policy applies unchanged: a subscriber that does not read backs up into its group's bounded
log, has the oldest dropped, and is closed when it stays behind (`CC_WS_QUEUE_MAX`,
`CC_WS_SLOW_AFTER_S`); a token's expiry ends its subscriptions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError

from streaming.auth import Principal
from streaming.rooms import not_a_room
from streaming.ws import CLOSE_UNAUTHORIZED, release


@dataclass(frozen=True)
class _Closed:
    reason: str


def refuse_rooms(principal: Principal, rooms: list[str]) -> None:
    """A GraphQL error for the first room the token may not join, with /ws's reason."""
    for room in rooms:
        unknown = not_a_room(room)
        if unknown is not None:
            raise GraphQLError(f"`{room}`: {unknown}", extensions={"code": "BAD_USER_INPUT"})
        if not principal.may_join(room):
            raise GraphQLError(f"may not join `{room}`: the token's rooms claim does not allow it",
                               extensions={"code": "FORBIDDEN"})


async def room_messages(sidecar: Any, principal: Principal, rooms: list[str],
                        first: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """The messages of `rooms` (already granted: `refuse_rooms`) as dicts, `first` before them,
    until the subscriber stops or the hub closes it (too slow, token expired, shutting down)."""
    hub = sidecar.hub
    # One turn at a time: the sender waits while the subscriber has not taken the last one, so a
    # subscriber that does not read backs up into the hub's bounded log, where the policy applies.
    inbox: asyncio.Queue[list[Any] | _Closed] = asyncio.Queue(maxsize=1)

    async def send(items: list[Any]) -> None:
        await inbox.put(items)

    async def close(code: int, reason: str) -> None:
        while not inbox.empty():  # what was not taken is lost with the subscription
            inbox.get_nowait()
        inbox.put_nowait(_Closed(reason))

    client = hub.client(send, close)
    client.task = asyncio.create_task(client.run())
    for room in rooms:
        hub.join(client, room)
    expiry = None
    if principal.expires_at is not None:
        expiry = asyncio.get_running_loop().call_later(max(0.0, principal.expires_at - time.time()),
                                                       client.kick, CLOSE_UNAUTHORIZED, "token expired")
    try:
        if first is not None:
            yield orjson.loads(first)
        while True:
            items = await inbox.get()
            if isinstance(items, _Closed):
                raise GraphQLError(f"subscription closed: {items.reason}", extensions={"code": "CLOSED"})
            for item in items:
                yield orjson.loads(item)
    finally:
        await release(hub, client, expiry)
