"""`/graphql` as Strawberry's FastAPI router: the schema, the context, and the WebSocket's token."""

from __future__ import annotations

from typing import Any

from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from streaming.graphql import PATH
from streaming.graphql.context import authenticate, bearer_token, get_context
from streaming.graphql.schema import schema

CLOSE_FORBIDDEN = 4403  # graphql-transport-ws: the server refuses the connection


class _Socket(ASGIWebSocketAdapter):
    """Closes a refused connection with the reason it was refused (Strawberry says only "Forbidden")."""

    async def close(self, code: int, reason: str) -> None:
        refusal = getattr(self.ws.state, "graphql_refusal", None)
        await self.ws.close(code=code, reason=refusal[:120] if code == CLOSE_FORBIDDEN and refusal else reason)


class SidecarGraphQL(GraphQLRouter):
    """Strawberry's router, with the token of the WebSocket's `connection_init` checked as /ws checks
    its own: a bad, missing or expired one closes the connection (4403, with the reason)."""

    websocket_adapter_class = _Socket

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        params = context.get("connection_params") or {}
        token = bearer_token(params.get("Authorization") or params.get("authorization")) or params.get("token")
        if token is not None or context.get("principal") is None:
            authenticate(context, token if isinstance(token, str) else None)
        if context["principal"] is None:
            context["request"].state.graphql_refusal = context["auth_error"]
            raise ConnectionRejectionError
        return UNSET


def router() -> GraphQLRouter:
    """`/graphql`: POST (and GET) queries, WebSocket subscriptions; no GraphiQL (it loads from a CDN)."""
    return SidecarGraphQL(schema, path=PATH, graphql_ide=None, context_getter=get_context,
                          subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), include_in_schema=False)
