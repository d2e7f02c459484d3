"""Who may talk to the sidecar: HS256 JWTs for clients, HMAC signatures for webhook senders.

A client token's claims say what it may do: `rooms` what it may read (the rooms it may join, and
the REST reads that show the same data, `streaming.grants`), `scopes` what it may change
(`commands`, `dashboards`, `alerts`). No `rooms` claim reads everything; `commands` is never implied.

Every comparison of a secret-derived value goes through `hmac.compare_digest`, so a forger learns
nothing from how long a wrong signature took to refuse.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from streaming.rooms import ALL_WORKFLOWS

ALGORITHM = "HS256"
# How far ahead of ours an issuer's clock may be: a token whose `nbf` or `iat` is at most this far in
# the future is accepted (it was just minted on a host a little ahead). `exp` gets none: a token is
# refused from the second it expires, as the rooms' expiry timer closes a client then too.
CLOCK_SKEW_S = 30
# What a token may change. `dashboards` (create, change or delete its own dashboards and widgets) and
# `alerts` (acknowledge one) are granted to a token that names neither `rooms` nor `scopes` (the
# full user token of before scopes existed); `commands` (POST /api/charlie/command) only ever by name.
SCOPES = ("commands", "dashboards", "alerts")
IMPLIED_SCOPES = frozenset({"dashboards", "alerts"})


# Said on every refusal (401, /ws close reason: at most 123 bytes) and logged at start-up, so an
# operator whose every call answers 401 learns why rather than doubting the token.
NO_SECRET = "no JWT secret is configured (CC_JWT_SECRET is unset): this sidecar accepts no client token"


class AuthError(Exception):
    """Refused: the message says why (it is safe to show the sender)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated client: its subject, the rooms it may read (None: any) and what it may change."""

    sub: str
    rooms: frozenset[str] | None = None
    expires_at: float | None = None  # epoch seconds (`exp`)
    scopes: frozenset[str] = frozenset()

    def may_join(self, room: str) -> bool:
        """May read `room`: join it over /ws or Socket.IO, and the REST reads it grants."""
        if self.rooms is None:
            return True
        if room == ALL_WORKFLOWS:
            # Every workflow's state: granted by its own name or by a claim on every workflow room,
            # never by a narrower family (`workflows:a*` starts it, yet is not every workflow).
            return room in self.rooms or self.may_join_all("workflows:")
        # A claim may name a family with a trailing `*`: `workflows:*`.
        return room in self.rooms or any(r.endswith("*") and room.startswith(r[:-1]) for r in self.rooms)

    def may_join_all(self, prefix: str) -> bool:
        """May read every room whose name starts with `prefix` (`workflows:`): a list of them all."""
        return self.rooms is None or any(r.endswith("*") and prefix.startswith(r[:-1]) for r in self.rooms)

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def issue_token(secret: str, sub: str, ttl_s: float = 3600, rooms: Iterable[str] | None = None,
                scopes: Iterable[str] | None = None, **claims: Any) -> str:
    """A token for `sub` valid for `ttl_s` seconds (for tests, scripts and the UI's backend):
    `rooms` limits what it reads, `scopes` names what it may change (`["commands"]` to command)."""
    body: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl_s), **claims}
    if rooms is not None:
        body["rooms"] = list(rooms)
    if scopes is not None:
        body["scopes"] = list(scopes)
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def _names(claims: dict[str, Any], name: str) -> frozenset[str] | None:
    value = claims.get(name)
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise AuthError(f"invalid token: `{name}` must be a list of names")
    return frozenset(value)


def verify_token(secret: str | None, token: str | None) -> Principal:
    if not secret:
        raise AuthError(NO_SECRET)
    if not token:
        raise AuthError("no token")
    principal = _verified(secret, token)
    if principal.expires_at is not None and principal.expires_at <= time.time():  # exp gets no leeway
        raise AuthError("token expired")
    return principal


# A token seen before is not decoded again: the rate limits read a request's token before its
# route does (30 µs each, a REST read's 4%). Only tokens that verified are kept (a refusal raises,
# and lru_cache keeps no exception), and expiry is judged again on every use (`verify_token`).
@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> Principal:
    try:
        # Only HS256 with our secret: the header's `alg`, `kid` and `jku` choose nothing (an RS256,
        # HS512 or `none` token is refused however it was signed).
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=CLOCK_SKEW_S,
                            options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.PyJWTError as exc:  # InvalidKeyError too: a PEM key as CC_JWT_SECRET refuses every token
        raise AuthError(f"invalid token: {exc}") from exc
    if float(claims["exp"]) <= time.time():  # inside the leeway, which is for nbf and iat only
        raise AuthError("token expired")
    rooms, scopes = _names(claims, "rooms"), _names(claims, "scopes")
    if scopes is None:
        scopes = IMPLIED_SCOPES if rooms is None else frozenset()
    return Principal(str(claims["sub"]), rooms, float(claims["exp"]), scopes)


# hashlib lets go of the interpreter while it hashes 2,048 bytes or more in one call, and getting it
# back makes the event loop wait for whichever thread took it meanwhile (the landing writer, the
# live state): fed in slices below that, the HMAC of a 24 KB webhook keeps it. bench-stream at
# 1,000 x 100, three alternating pairs: 756-805 against 856-880 µs of CPU a webhook.
_HASH_SLICE = 2047


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod="sha256")  # OpenSSL's HMAC
    view = memoryview(body)
    for start in range(0, len(view), _HASH_SLICE):
        mac.update(view[start:start + _HASH_SLICE])
    return mac.hexdigest()


def signature_matches(secret: str, body: bytes, given: str | None, prefix: str = "") -> bool:
    """`given` is `prefix + hex(HMAC-SHA256(secret, body))` (GitHub's prefix is `sha256=`)."""
    if not given:
        return False
    expected = prefix + hmac_sha256_hex(secret, body)
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def token_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())
