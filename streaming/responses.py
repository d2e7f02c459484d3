"""How the REST API answers: bodies encoded once with their ETag, `Cache-Control` with the seeds'
TTLs (a matching `If-None-Match` gets 304), and the 503 for marts not there yet."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from orjson import dumps as orjson_dumps
from pydantic import BaseModel

from streaming.data.marts import MartsUnavailable, iso
from streaming.params import UNKNOWN_PARAMETER

# What the routes with a body answer besides their own codes: FastAPI's 400 for a body that is not
# JSON at all (a JSON body that breaks the schema is a 422).
BAD_BODY = {400: {"description": "The body is not JSON"}}
NOT_OWNER = {403: {"description": "Not the dashboard's owner, or the token's `scopes` claim lacks `dashboards`"}}


class Answer(JSONResponse):
    """A `JSONResponse` encoded by orjson: `Sidecar.accept`'s answers (202, duplicate, 400, 503). The standard
    library's encoder was ~2 % of the event loop's time at 1,000 webhooks/s (py-spy, bench-stream);
    the bodies are our own small dicts of strings, encoded to the same compact JSON."""

    def render(self, content: Any) -> bytes:
        return orjson_dumps(content)


def with_unknown_parameter(responses: dict) -> dict:
    """`responses` with the 400 every route answers to a query parameter it does not take
    (`params.known_parameters`), beside the route's own reasons for a 400."""
    own = responses.get(400, {}).get("description")
    why = f"{own}; or {UNKNOWN_PARAMETER}" if own else UNKNOWN_PARAMETER[0].upper() + UNKNOWN_PARAMETER[1:]
    return {**responses, 400: {**responses.get(400, {}), "description": why}}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def encode(payload: Any) -> tuple[bytes, str]:
    """The JSON body and its ETag. The ETag is weak and leaves `generatedAt` out: a body computed
    again a second later with the same data revalidates (304) instead of differing by its clock."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(by_alias=True).encode()
        validated = (payload.model_dump_json(by_alias=True, exclude={"generated_at"}).encode()
                     if "generated_at" in type(payload).model_fields else body)
    else:
        body = validated = json.dumps(payload, separators=(",", ":"), default=_default).encode()
    return body, 'W/"' + hashlib.blake2b(validated, digest_size=12).hexdigest() + '"'


def cached_response(request: Request, encoded: tuple[bytes, str], max_age: int, status: int = 200) -> Response:
    body, etag = encoded
    headers = {"Cache-Control": f"private, max-age={max_age}", "ETag": etag}
    wanted = request.headers.get("if-none-match")
    # If-None-Match compares weakly (RFC 9110 13.1.2): `W/` on either side does not matter.
    if wanted and (wanted.strip() == "*" or etag.removeprefix("W/") in {t.strip().removeprefix("W/")
                                                                      for t in wanted.split(",")}):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def no_store(payload: Any, status: int = 200) -> Response:
    body, _ = encode(payload)
    return Response(body, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"})


def marts_unavailable(request: Request, exc: MartsUnavailable) -> Response:
    """The app's handler for every route: no marts to read yet (or the warehouse is gone) is a 503."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})
