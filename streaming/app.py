"""The sidecar's ASGI app: `uvicorn streaming.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from streaming.live import LiveEvents


def get_live(request: Request) -> LiveEvents:
    """Dependency: the events seen since the last dbt build."""
    return request.app.state.live


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.live = LiveEvents()
    yield


app = FastAPI(title="Command Center sidecar", lifespan=lifespan)
