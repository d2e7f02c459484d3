"""GraphQL at `/graphql` (Strawberry): the REST reads as queries and the rooms as subscriptions over
`graphql-transport-ws`, with the same JWT and grants as REST and `/ws` (README, "GraphQL").

- `types.py`: the GraphQL types, made from the REST response models.
- `schema.py`: queries and subscriptions; `context.py`: the caller and its grants.
- `loaders.py`: batched reads (a page of workflows' events in one query); `limits.py`: depth and cost.
- `subscriptions.py`: a subscription as a client of the rooms hub.
- `router.py`: Strawberry's FastAPI router, built on the first request (`LazyGraphQL`).
- `export.py`: `python -m streaming.graphql.export` writes `schema.graphql`, the SDL.
"""

from __future__ import annotations

import asyncio
import importlib

from fastapi import FastAPI
from starlette.routing import Route, WebSocketRoute

PATH = "/graphql"


class LazyGraphQL:
    """`/graphql`, built on its first request (as `/socket.io/` is): Strawberry and the schema take
    a few hundred milliseconds to import, which would otherwise come before the sidecar answers its
    first webhook. The import runs in a thread, not on the event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._asgi: FastAPI | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if self._asgi is None:
            async with self._lock:
                if self._asgi is None:
                    self._asgi = await asyncio.to_thread(self._build)
        await self._asgi(scope, receive, send)

    def _build(self) -> FastAPI:
        inner = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        inner.state = self.app.state  # the sidecar's settings, serving and hub
        inner.include_router(importlib.import_module("streaming.graphql.router").router())
        return inner


def install(app: FastAPI) -> None:
    """Serve GraphQL at `/graphql` (HTTP and WebSocket), outside the OpenAPI document: its SDL describes it."""
    lazy = LazyGraphQL(app)
    app.router.routes += [Route(PATH, lazy, methods=["GET", "POST"], include_in_schema=False),
                          WebSocketRoute(PATH, lazy)]
