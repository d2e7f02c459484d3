"""Who may talk to the sidecar: HS256 JWTs for clients, HMAC signatures for webhook senders.

Every comparison of a secret-derived value goes through `hmac.compare_digest`, so a forger learns
nothing from how long a wrong signature took to refuse.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"


class AuthError(Exception):
    """Refused: the message says why (it is safe to show the sender)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated client: its subject and the rooms it may join (None: any)."""

    sub: str
    rooms: frozenset[str] | None = None
    expires_at: float | None = None  # epoch seconds (`exp`)

    def may_join(self, room: str) -> bool:
        if self.rooms is None:
            return True
        # A claim may name a family with a trailing `*`: `workflows:*`.
        return room in self.rooms or any(r.endswith("*") and room.startswith(r[:-1]) for r in self.rooms)


def issue_token(secret: str, sub: str, ttl_s: float = 3600, rooms: Iterable[str] | None = None,
                **claims: Any) -> str:
    """A token for `sub` valid for `ttl_s` seconds (for tests, scripts and the UI's backend)."""
    body: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl_s), **claims}
    if rooms is not None:
        body["rooms"] = list(rooms)
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def verify_token(secret: str | None, token: str | None) -> Principal:
    if not secret:
        raise AuthError("CC_JWT_SECRET is not set: this sidecar accepts no client tokens")
    if not token:
        raise AuthError("no token")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    rooms = claims.get("rooms")
    if rooms is not None and not (isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)):
        raise AuthError("invalid token: `rooms` must be a list of room names")
    return Principal(str(claims["sub"]), None if rooms is None else frozenset(rooms), float(claims["exp"]))


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, "sha256").hex()  # one-shot: OpenSSL's fast path


def signature_matches(secret: str, body: bytes, given: str | None, prefix: str = "") -> bool:
    """`given` is `prefix + hex(HMAC-SHA256(secret, body))` (GitHub's prefix is `sha256=`)."""
    if not given:
        return False
    expected = prefix + hmac_sha256_hex(secret, body)
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def token_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())
