"""Who is asking, over GraphQL: the same HS256 bearer JWT as REST, checked against the same grants.

Over HTTP the token is the `Authorization: Bearer …` header; over the WebSocket it is the
`connection_init` payload's `Authorization` (`"Bearer …"`) or `token`, or else the upgrade
request's header. Each root field names the REST route it answers like (`grants.need_of`), so a
token reads over GraphQL exactly what it reads over REST; an unauthenticated or out-of-scope field
is a GraphQL error saying why, with no data.
"""

from __future__ import annotations

import time
from typing import Any

from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.types import Info

from streaming import grants
from streaming.auth import AuthError, Principal, verify_token
from streaming.graphql.loaders import Loaders

UNAUTHENTICATED, FORBIDDEN = "UNAUTHENTICATED", "FORBIDDEN"


def bearer_token(value: Any) -> str | None:
    """The token of an `Authorization` value (`Bearer <jwt>`), or None."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(context: dict[str, Any], token: str | None) -> None:
    """Put the caller in `context`: its `principal`, or the reason it has none (`auth_error`)."""
    try:
        context["principal"], context["auth_error"] = verify_token(context["settings"].jwt_secret, token), None
    except AuthError as exc:
        context["principal"], context["auth_error"] = None, str(exc)


async def get_context(connection: HTTPConnection) -> dict[str, Any]:
    """Strawberry's context: one per HTTP request, one per WebSocket connection."""
    app = connection.app
    context: dict[str, Any] = {"app": app, "settings": app.state.settings, "serving": app.state.serving,
                               "sidecar": app.state.sidecar, "loaders": Loaders(app.state.serving)}
    authenticate(context, bearer_token(connection.headers.get("authorization")))
    return context


def principal(info: Info) -> Principal:
    """The caller; a GraphQL error (`UNAUTHENTICATED`) when the token is missing, bad or expired."""
    context = info.context
    who: Principal | None = context.get("principal")
    if who is None:
        raise GraphQLError(context.get("auth_error") or "no token", extensions={"code": UNAUTHENTICATED})
    if who.expires_at is not None and who.expires_at <= time.time():  # a WebSocket connection outlived it
        raise GraphQLError("token expired", extensions={"code": UNAUTHENTICATED})
    return who


def require(info: Info, need: grants.Need | None) -> Principal:
    """The caller, if it may have what `need` says; else a GraphQL error naming what it lacks."""
    who = principal(info)
    refused = grants.refusal(who, need)
    if refused:
        raise GraphQLError(refused, extensions={"code": FORBIDDEN})
    return who


def require_route(info: Info, path: str, **params: str | None) -> Principal:
    """`require` what the REST read `GET <path>` with these query parameters needs."""
    query = {name: [value] for name, value in params.items() if value is not None}
    return require(info, grants.need_of("GET", path, query))
