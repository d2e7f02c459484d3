"""Webhooks in: verify, land durably, then normalize, correlate and publish.

Every route answers in the same order: a route without its secret refuses (403); a body over
`CC_WEBHOOK_MAX_BYTES` gets 413 (from Content-Length, and counted while streaming); a bad
signature or a stale Linear timestamp 401; malformed JSON, or JSON that cannot be stored (nested
more than `bodies.MAX_DEPTH` levels, a lone surrogate escape) 400 with the reason, before any
delivery id is claimed. A signed delivery is then landed — `2xx` only once its line is fsynced —
and a known kind whose payload the normalizer cannot use is still landed and answered 202 with
the reason (a dead letter: the normalized asset records it in
`lake/dead_letter/normalized/webhooks__deliveries`). A redelivery is answered 200 and not landed
again, once the first copy is durable (a copy still being written is waited for). A storage
failure answers 503 so the sender retries: nothing is acknowledged that is not on disk.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from cc_events.sources.system import METRICS_KIND
from streaming import bodies
from streaming.auth import signature_matches, token_matches
from streaming.ratelimit import WEBHOOK

log = logging.getLogger(__name__)

# What every webhook route answers (the module's docstring says in which order), for /openapi.json.
router = APIRouter(tags=["webhooks"], responses={
    200: {"description": "A redelivery of one already landed (`duplicate`), not landed again; "
                         "a GitHub `ping` is answered `pong`"},
    202: {"description": "Landed (fsynced): `normalized`, `raw`, or `dead_letter` with its `reason`"},
    400: {"description": "Malformed JSON, or a header or field the route needs is missing"},
    401: {"description": "The signature (or token) does not match the body; on Linear also a missing or "
                         "stale `webhookTimestamp`"},
    403: {"description": "The route's secret is not set: it refuses every request"},
    413: {"description": "The body is over `CC_WEBHOOK_MAX_BYTES`"},
    429: {"description": "The route's sender is over `CC_RATE_LIMIT_WEBHOOK`: retry after `Retry-After` seconds"},
    503: {"description": "Could not store it: retry after `Retry-After` seconds"},
})

LINEAR_REPLAY_WINDOW_S = 60.0


def _documented(headers: dict[str, tuple[bool, str]], form: bool = False) -> dict:
    """The headers and body a route reads, for /openapi.json (the routes take a bare `Request`, so
    FastAPI cannot see them): `{name: (required, description)}`, and a JSON body of any shape."""
    body = {"application/json": {"schema": {}}}
    if form:
        body["application/x-www-form-urlencoded"] = {"schema": {"type": "object", "required": ["payload"],
                                                                "properties": {"payload": {"type": "string"}}}}
    return {"parameters": [{"name": name, "in": "header", "required": required, "description": text,
                            "schema": {"type": "string"}} for name, (required, text) in headers.items()],
            "requestBody": {"required": True, "content": body}}


# (`Authorization: Bearer <the route's secret>` instead of a signature is not listed: OpenAPI ignores
# a header parameter by that name.)
_SIGNED = {"X-Signature-256": (False, "`sha256=` and the hex HMAC-SHA256 of the body with the route's secret; "
                                      "without it, `Authorization: Bearer <the secret>`"),
           "X-Delivery-Id": (False, "The delivery's id (else the body's `id`, else its SHA-256): a redelivery "
                                    "with it is not landed again")}


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status, headers=self.headers)


@dataclass
class Delivery:
    source: str
    delivery_id: str
    event: str
    payload: Any
    action: str | None = None
    repo: str | None = None
    raw: bytes = b"null"  # `payload` as the one-line JSON text it is landed as (`parse_body`, `storable`)
    # More ids that make a copy a duplicate: what a sender's signature covers, where the delivery
    # id is a header it does not (Linear).
    aliases: tuple[str, ...] = ()

    # Read a dozen times on a delivery's way (claim, write, settle, answer): made once.
    @cached_property
    def id(self) -> str:
        return f"{self.source}:{self.delivery_id}"

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


def _require_secret(value: str | None, variable: str) -> str:
    if not value:
        raise Refused(403, f"{variable} is not set: this route refuses every request until it is")
    return value


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise Refused(413, f"body of {declared} bytes is over the {limit}-byte limit")
        except ValueError as exc:
            raise Refused(400, "Content-Length is not a number") from exc
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(body: bytes) -> tuple[Any, bytes]:
    """The body's JSON value and the JSON text to land it as (`streaming.bodies.parse`); what is
    not JSON, or cannot be stored, is a 400 that says why, before any delivery id is claimed."""
    try:
        return bodies.parse(body)
    except bodies.Unstorable as exc:
        raise Refused(400, str(exc)) from exc
    except ValueError as exc:
        raise Refused(400, f"malformed JSON: {exc}") from exc


def storable(value: Any) -> bytes:
    try:
        return bodies.encode(value)
    except bodies.Unstorable as exc:
        raise Refused(400, str(exc)) from exc


def _body_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _repo(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("repository"), dict):
        name = payload["repository"].get("full_name")
        return str(name).lower() if name else None
    return None


async def within_limit(sidecar, source: str) -> None:
    """A verified sender's own rate limit (`CC_RATE_LIMIT_WEBHOOK`), apart from every client's."""
    refusal = await sidecar.limits.hit(source, WEBHOOK)
    if refusal is not None:
        raise Refused(429, refusal.detail, refusal.headers())


async def _handle(request: Request, receive, source: str) -> JSONResponse:
    sidecar = request.app.state.sidecar
    try:
        return await receive(request, sidecar)
    except Refused as refused:
        sidecar.telemetry.delivered(source, "rate_limited" if refused.status == 429 else "refused")
        return refused.response()


@router.post("/webhooks/github", summary="GitHub webhooks (X-Hub-Signature-256)", openapi_extra=_documented({
    "X-Hub-Signature-256": (True, "`sha256=` and the hex HMAC-SHA256 of the body with CC_GITHUB_WEBHOOK_SECRET"),
    "X-GitHub-Event": (True, "The event name"),
    "X-GitHub-Delivery": (True, "The delivery's id: a redelivery with it is not landed again")}, form=True))
async def github_webhook(request: Request) -> JSONResponse:
    async def receive(request: Request, sidecar) -> JSONResponse:
        secret = _require_secret(sidecar.settings.github_webhook_secret, "CC_GITHUB_WEBHOOK_SECRET")
        body = await read_body(request, sidecar.settings.webhook_max_bytes)
        if not signature_matches(secret, body, request.headers.get("x-hub-signature-256"), "sha256="):
            raise Refused(401, "X-Hub-Signature-256 does not match the body")
        await within_limit(sidecar, "github")
        event = request.headers.get("x-github-event")
        delivery = request.headers.get("x-github-delivery")
        if not event or not delivery:
            raise Refused(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", errors="replace"))
            if "payload" not in form:
                raise Refused(400, "form-encoded delivery without a payload field")
            body = form["payload"][0].encode()
        payload, raw = parse_body(body)
        action = payload.get("action") if isinstance(payload, dict) else None
        result = await sidecar.accept(Delivery("github", delivery, event, payload,
                                               action if isinstance(action, str) else None, _repo(payload), raw))
        if event == "ping" and result.status_code < 300:
            zen = payload.get("zen") if isinstance(payload, dict) else None
            return JSONResponse({"status": "pong", "zen": zen, "delivery": f"github:{delivery}"})
        return result

    return await _handle(request, receive, "github")


@router.post("/webhooks/linear", summary="Linear webhooks (Linear-Signature, 60 s replay window)",
             openapi_extra=_documented({
                 "Linear-Signature": (True, "The hex HMAC-SHA256 of the body with CC_LINEAR_WEBHOOK_SECRET; the "
                                            "body's `webhookTimestamp` (ms) must be within 60 s of now"),
                 "Linear-Delivery": (False, "The delivery's id"), "Linear-Event": (False, "The event type")}))
async def linear_webhook(request: Request) -> JSONResponse:
    async def receive(request: Request, sidecar) -> JSONResponse:
        secret = _require_secret(sidecar.settings.linear_webhook_secret, "CC_LINEAR_WEBHOOK_SECRET")
        body = await read_body(request, sidecar.settings.webhook_max_bytes)
        if not signature_matches(secret, body, request.headers.get("linear-signature")):
            raise Refused(401, "Linear-Signature does not match the body")
        payload, raw = parse_body(body)
        if not isinstance(payload, dict):
            raise Refused(400, "a Linear webhook body is a JSON object")
        stamp = payload.get("webhookTimestamp")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool):
            raise Refused(401, "no webhookTimestamp: a replay cannot be ruled out")
        if abs(time.time() * 1000 - stamp) > LINEAR_REPLAY_WINDOW_S * 1000:
            raise Refused(401, f"webhookTimestamp is more than {LINEAR_REPLAY_WINDOW_S:.0f} s from now (replay?)")
        await within_limit(sidecar, "linear")
        event = str(payload.get("type") or request.headers.get("linear-event") or "unknown")
        delivery = request.headers.get("linear-delivery") or str(payload.get("webhookId") or "") + f":{stamp}"
        action = payload.get("action")
        # Linear-Delivery is not signed: the same signed body under a new one is a replay, so
        # the body's digest is a key of the delivery too (a retry keeps both).
        return await sidecar.accept(Delivery("linear", delivery, event, payload,
                                             action if isinstance(action, str) else None, None, raw,
                                             (f"linear:{_body_id(body)}",)))

    return await _handle(request, receive, "linear")


def _pushed(payload: Any, default_kind: str | None) -> tuple[str, Any, str | None]:
    """`{"kind", "data", "id"?}`, or (with a default kind) the record or list itself."""
    if isinstance(payload, dict) and "kind" in payload:
        kind = payload["kind"]
        if not isinstance(kind, str) or not kind:
            raise Refused(400, "`kind` must be a non-empty string")
        if "data" not in payload:
            raise Refused(400, "`data` is required (a record or a list of records)")
        given = payload.get("id")
        return kind, payload["data"], str(given) if given not in (None, "") else None
    if default_kind is None:
        raise Refused(400, 'send {"kind": ..., "data": ...}')
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return default_kind, payload["events"], None
    return default_kind, payload, None


def _signed_or_bearer(request: Request, secret: str, body: bytes) -> bool:
    """`X-Signature-256: sha256=<hex HMAC of the body>` when sent, else `Authorization: Bearer
    <secret>`; both compared in constant time."""
    signed = request.headers.get("x-signature-256")
    if signed is not None:
        return signature_matches(secret, body, signed, "sha256=")
    bearer = request.headers.get("authorization", "")
    return bearer[:7].lower() == "bearer " and token_matches(secret, bearer[7:].strip())


@router.post("/webhooks/charlie", summary="Charlie instances' activity (X-Signature-256 or Bearer token)",
             openapi_extra=_documented({**_SIGNED, "X-Charlie-Event": (False, "The kind, when the body has no `kind`")}))
async def charlie_webhook(request: Request) -> JSONResponse:
    async def receive(request: Request, sidecar) -> JSONResponse:
        secret = _require_secret(sidecar.settings.charlie_webhook_secret, "CC_CHARLIE_WEBHOOK_SECRET")
        body = await read_body(request, sidecar.settings.webhook_max_bytes)
        if not _signed_or_bearer(request, secret, body):
            raise Refused(401, "send a matching X-Signature-256 or Authorization: Bearer <CC_CHARLIE_WEBHOOK_SECRET>")
        await within_limit(sidecar, "charlie")
        kind, data, given = _pushed(parse_body(body)[0], request.headers.get("x-charlie-event") or "charlie.activity")
        delivery = request.headers.get("x-delivery-id") or given or _body_id(body)
        return await sidecar.accept(Delivery("charlie", delivery, kind, data, raw=storable(data)))

    return await _handle(request, receive, "charlie")


@router.post("/events", summary="Events from bots, cron jobs and metrics agents (Bearer token or X-Signature-256)",
             openapi_extra=_documented(_SIGNED))
async def push_events(request: Request) -> JSONResponse:
    async def receive(request: Request, sidecar) -> JSONResponse:
        token = _require_secret(sidecar.settings.events_api_token, "CC_EVENTS_API_TOKEN")
        body = await read_body(request, sidecar.settings.webhook_max_bytes)
        if not _signed_or_bearer(request, token, body):
            raise Refused(401, "send Authorization: Bearer <CC_EVENTS_API_TOKEN> or a matching X-Signature-256")
        await within_limit(sidecar, "events")
        kind, data, given = _pushed(parse_body(body)[0], None)
        if kind == METRICS_KIND:
            return await sidecar.accept_metrics(data)
        delivery = request.headers.get("x-delivery-id") or given or _body_id(body)
        return await sidecar.accept(Delivery("events", delivery, kind, data, raw=storable(data)))

    return await _handle(request, receive, "events")


ROUTES = {"/webhooks/github": github_webhook, "/webhooks/linear": linear_webhook,
          "/webhooks/charlie": charlie_webhook, "/events": push_events}


class Inbound:
    """What a webhook route reads of its request, for the fast path: the headers (lowercase names,
    the first value of each, as Starlette's `Headers.get`), the body as it streams in (`stream()`),
    and the app. Starlette's `Request` built a header list and looked each name up by a scan:
    5 µs a webhook, for the five headers a route reads."""

    __slots__ = ("headers", "app", "_receive")

    def __init__(self, scope: dict, receive) -> None:
        self.app = scope["app"]
        self._receive = receive
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self.headers = headers

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return


async def fast_path(app, scope, receive, send) -> bool:
    """Answer a webhook POST without FastAPI's middleware, routing and request handler; False if
    `scope` is not one.

    The webhook routes take a request and return a response, nothing else of FastAPI's (no
    dependencies, no validation, no response model), yet the middleware stack, routing among the
    API's routes and the request handler were a fifth of the sidecar's CPU per webhook (py-spy,
    bench-stream). The routes stay registered on the router, so the OpenAPI document is unchanged;
    `streaming.app.SidecarApp` calls this before anything else. The route reads an `Inbound`, and
    its answer (a `JSONResponse`, without background tasks) is sent as its two ASGI messages."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    handler = ROUTES.get(scope["path"])
    if handler is None:
        return False
    started = time.perf_counter()
    scope["app"] = app
    response = await handler(Inbound(scope, receive))
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
    app.state.sidecar.telemetry.acked(scope["path"], time.perf_counter() - started)
    return True
