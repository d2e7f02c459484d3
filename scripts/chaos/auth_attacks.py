"""auth_attacks: forged and mis-timed tokens over REST, /ws and Socket.IO; key confusion; scope
escalation on every route of the app; webhook signature attacks; GitHub and Linear replays.

Each probe is one attempt that must be refused (or, for a replay, answered `duplicate` and landed
once). `wrongly_accepted` counts the attempts that got past the check: a token probe answered
anything but 401 (REST), 4401 (/ws) or `connect_error` (Socket.IO); a scope probe answered
anything but 403, or a room joined past the claim; a signature probe answered 2xx or landing a
line. A 5xx is counted apart. Controls (a valid token is let in, a granted read is not refused)
run first: a sidecar that refuses everything would pass the attacks and prove nothing.

The expectations here (`EXPECTED`) are written apart from the app's own table
(`streaming.grants.ROUTES`), from the README's: a route of the app with no line here fails.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import jwt
import requests
import socketio
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.exceptions import ConnectionClosed

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import (
    SECRETS,
    Sidecar,
    github_headers,
    linear_body,
    linear_headers,
    signed_headers,
)

JWT_SECRET = SECRETS["CC_JWT_SECRET"]
ROOMS = ("dashboard:overview", "metrics:realtime", "alerts:all", "events:all")
SCOPES = ("commands", "dashboards", "alerts")
FAKE_ID = "00000000-0000-0000-0000-000000000000"

# What grants each JWT route, as the README's table says: ("room", r) is read by a token whose
# `rooms` claim allows r (`workflows:*`: every workflow; `workflows:all`: every workflow's updates),
# ("scope", s) by one with s in `scopes`.
EXPECTED: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("GET", "/dashboard/overview"): (("room", "dashboard:overview"),),
    ("GET", "/dashboard/metrics"): (("room", "metrics:realtime"),),
    ("GET", "/api/workflows"): (("room", "workflows:*"), ("room", "workflows:all")),
    ("GET", "/api/events"): (("room", "events:all"),),
    ("GET", "/api/charlie/instances"): (("room", "dashboard:overview"),),
    ("GET", "/api/charlie/commands"): (("room", "dashboard:overview"), ("scope", "commands")),
    ("POST", "/api/charlie/command"): (("scope", "commands"),),
    ("GET", "/dashboard/dashboards"): (("room", "dashboard:overview"),),
    ("GET", "/dashboard/dashboards/{dashboard_id}"): (("room", "dashboard:overview"),),
    ("GET", "/dashboard/widgets/{widget_id}/data"): (("room", "dashboard:overview"),),
    ("POST", "/dashboard/dashboards"): (("scope", "dashboards"),),
    ("PUT", "/dashboard/dashboards/{dashboard_id}"): (("scope", "dashboards"),),
    ("DELETE", "/dashboard/dashboards/{dashboard_id}"): (("scope", "dashboards"),),
    ("POST", "/dashboard/dashboards/{dashboard_id}/widgets"): (("scope", "dashboards"),),
    ("PUT", "/dashboard/widgets/{widget_id}"): (("scope", "dashboards"),),
    ("DELETE", "/dashboard/widgets/{widget_id}"): (("scope", "dashboards"),),
    ("GET", "/api/alerts"): (("room", "alerts:all"),),
    ("GET", "/api/alerts/rules"): (("room", "alerts:all"),),
    ("GET", "/api/alerts/{alert_id}"): (("room", "alerts:all"),),
    ("POST", "/api/alerts/{alert_id}/ack"): (("scope", "alerts"),),
}
# Routes that take no client token: webhook senders sign their bodies; ops and the docs are open
# (`/metrics` takes CC_METRICS_TOKEN when one is set, never a client's JWT).
NOT_JWT = ("/webhooks/", "/events", "/healthz", "/metrics")
# A body each write route accepts once authorized, so its refusal is the check's, not validation's.
BODIES = {
    "/api/charlie/command": {"instanceId": "charlie-alpha", "command": "pause"},
    "/dashboard/dashboards": {"name": "escalated"},
    "/dashboard/dashboards/{dashboard_id}": {"name": "escalated"},
    "/dashboard/dashboards/{dashboard_id}/widgets": {"type": "overview", "title": "escalated"},
    "/dashboard/widgets/{widget_id}": {"title": "escalated"},
}


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the app that wants a client token."""
    from fastapi.routing import APIRoute

    from streaming.app import create_app

    def walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
        for r in routes:
            included = getattr(r, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
            if included is not None:
                yield from walk(included.routes, prefix + getattr(r.include_context, "prefix", ""))
            elif isinstance(r, APIRoute):
                yield from ((method, prefix + r.path) for method in r.methods)

    return sorted({(m, p) for m, p in walk(create_app().routes) if not p.startswith(NOT_JWT)})


@dataclass
class Probe:
    family: str
    label: str
    answer: object  # HTTP status, /ws close code, "connected" / "refused", a room answer…
    refused: bool  # as it must be
    server_error: bool = False
    duplicated: int = 0


def row(name: str, probes: list[Probe]) -> Row:
    wrong = [p for p in probes if not p.refused and not p.server_error]
    return Row(f"auth_attacks/{name}", attempts=len(probes), wrongly_accepted=len(wrong),
               errors_5xx=sum(p.server_error for p in probes), duplicated=sum(p.duplicated for p in probes),
               notes="; ".join(f"{p.label} → {p.answer}" for p in [*wrong, *(p for p in probes if p.server_error)])[:300])


# --- tokens ---------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: object, key: bytes | None) -> str:
    """A JWT with any header, signed by HMAC-SHA256/384/512 per `header["alg"]` with `key` (None: no
    signature), as an attacker builds one without a library's checks."""
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if key is None:
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(header["alg"],
                                                                                             hashlib.sha256)
    return signing + "." + _b64(hmac.new(key, signing.encode(), digest).digest())


def key_pairs() -> dict[str, tuple[object, bytes]]:
    """An attacker's RS256 and ES256 keys: (private key, public key PEM)."""
    pairs = {}
    for alg, private in (("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                         ("ES256", ec.generate_private_key(ec.SECP256R1()))):
        public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        pairs[alg] = (private, public)
    return pairs


def forged_tokens(secret: str = JWT_SECRET) -> dict[str, str]:
    """Tokens every channel must refuse (401 / 4401 / connect_error)."""
    now = int(time.time())
    good = {"sub": "mallory", "exp": now + 600}
    key = secret.encode()
    hs = {"alg": "HS256", "typ": "JWT"}
    pairs = key_pairs()
    rsa_private, rsa_public = pairs["RS256"]
    ec_private, ec_public = pairs["ES256"]
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_private.public_key()))
    right = jwt.encode(good, secret, algorithm="HS256")
    return {
        "alg none": forge({"alg": "none", "typ": "JWT"}, good, None),
        "alg None": forge({"alg": "None"}, good, None),
        "alg NONE": forge({"alg": "NONE"}, good, None),
        "alg nOnE": forge({"alg": "nOnE"}, good, None),
        "alg none + a valid HS256 signature": forge({"alg": "none"}, good, key),
        "HS256 with the signature stripped": forge(hs, good, None),
        "HS384 with the right secret": forge({"alg": "HS384", "typ": "JWT"}, good, key),
        "HS512 with the right secret": forge({"alg": "HS512", "typ": "JWT"}, good, key),
        "RS256 by an attacker's key": jwt.encode(good, rsa_private, algorithm="RS256"),
        "ES256 by an attacker's key": jwt.encode(good, ec_private, algorithm="ES256"),
        "HS256 keyed with an RSA public key PEM": forge(hs, good, rsa_public),
        "HS256 keyed with an EC public key PEM": forge(hs, good, ec_public),
        "kid path traversal, empty key": forge({**hs, "kid": "../../../../../../dev/null"}, good, b""),
        "kid SQL injection": forge({**hs, "kid": "x' union select 'k' --"}, good, b"k"),
        "jku to an attacker's JWKS": jwt.encode(good, rsa_private, algorithm="RS256",
                                                headers={"jku": "http://127.0.0.1:9/jwks.json", "kid": "k1"}),
        "embedded jwk": jwt.encode(good, rsa_private, algorithm="RS256", headers={"jwk": jwk}),
        "wrong secret": jwt.encode(good, "not-" + secret, algorithm="HS256"),
        "expired 5 s ago": jwt.encode({**good, "exp": now - 5}, secret, algorithm="HS256"),
        "expired a day ago": jwt.encode({**good, "exp": now - 86_400}, secret, algorithm="HS256"),
        "nbf in 10 minutes": jwt.encode({**good, "nbf": now + 600}, secret, algorithm="HS256"),
        "iat in 10 minutes": jwt.encode({**good, "iat": now + 600}, secret, algorithm="HS256"),
        "no sub": jwt.encode({"exp": now + 600}, secret, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "mallory"}, secret, algorithm="HS256"),
        "sub not a string": forge(hs, {**good, "sub": 42}, key),
        "exp not a number": forge(hs, {**good, "exp": "never"}, key),
        "rooms not a list": jwt.encode({**good, "rooms": "events:all"}, secret, algorithm="HS256"),
        "scopes not a list": jwt.encode({**good, "scopes": "commands"}, secret, algorithm="HS256"),
        "claims a JSON array": forge(hs, [good], key),
        "payload of another token": right.split(".")[0] + "." + _b64(b'{"sub":"admin","exp":9999999999}') + "."
                                    + right.split(".")[2],
        "garbage": "not-a-jwt",
        "three dots": "a.b.c",
        "empty": "",
    }


def valid_token(secret: str = JWT_SECRET, **kwargs) -> str:
    return jwt.encode({"sub": "control", "exp": int(time.time()) + 600, **kwargs}, secret, algorithm="HS256")


def rest_status(url: str, method: str, path: str, token: str | None, body: object = None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.request(method, url + path, headers=headers, json=body, timeout=10).status_code


async def ws_query(ws_url: str, token: str) -> object:
    """The close code of /ws?token=…, or "open" if it was let in (answered `connection`)."""
    return await _ws_answer(f"{ws_url}?token={token}", None)


async def ws_first_message(ws_url: str, token: str) -> object:
    return await _ws_answer(ws_url, json.dumps({"type": "auth", "token": token}))


async def _ws_answer(url: str, first: str | None) -> object:
    try:
        async with websockets.connect(url, open_timeout=5) as ws:
            if first is not None:
                await ws.send(first)
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if isinstance(message, dict) and message.get("type") == "connection":
                    return "open"
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006
    except TimeoutError:
        return "no answer"


async def sio_answer(url: str, token: str) -> str:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return "refused"
    await client.disconnect()
    return "connected"


def token_probes(url: str, ws_url: str, tokens: dict[str, str], family: str = "tokens") -> list[Probe]:
    """Each token over REST (a read and a command), /ws (query and first message) and Socket.IO."""
    probes = []
    for label, token in tokens.items():
        for method, path, body in (("GET", "/dashboard/dashboards", None),
                                   ("POST", "/api/charlie/command", BODIES["/api/charlie/command"])):
            status = rest_status(url, method, path, token, body)
            probes.append(Probe(family, f"{label}: {method} {path}", status, status == 401, status >= 500))

    async def sockets() -> None:
        for label, token in tokens.items():
            for name, call in (("/ws ?token=", ws_query), ("/ws auth message", ws_first_message)):
                code = await call(ws_url, token)
                probes.append(Probe(family, f"{label}: {name}", code, code == 4401))
            answer = await sio_answer(url, token)
            probes.append(Probe(family, f"{label}: Socket.IO", answer, answer == "refused"))

    asyncio.run(sockets())
    return probes


def token_controls(url: str, ws_url: str, secret: str = JWT_SECRET) -> None:
    """A valid token is let in on every channel (else the attacks' refusals prove nothing)."""
    token = valid_token(secret)
    status = rest_status(url, "GET", "/dashboard/dashboards", token)
    answers = asyncio.run(_all_answers(url, ws_url, token))
    if status != 200 or answers != ["open", "open", "connected"]:
        raise RuntimeError(f"a valid token was refused: REST {status}, /ws and Socket.IO {answers}")


async def _all_answers(url: str, ws_url: str, token: str) -> list[object]:
    return [await ws_query(ws_url, token), await ws_first_message(ws_url, token), await sio_answer(url, token)]


# --- scopes ---------------------------------------------------------------------------------------------

def all_but(grants: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    """Claims that grant everything except `grants` (a token one step short of the route)."""
    denied_rooms = {name for kind, name in grants if kind == "room"}
    rooms = [r for r in ROOMS if r not in denied_rooms]
    rooms += ["workflows:github:*", "workflows:linear:ENG-1"] if "workflows:*" in denied_rooms else ["workflows:*"]
    scopes = [s for s in SCOPES if ("scope", s) not in grants]
    return {"rooms": rooms, "scopes": scopes}


def concrete(path: str) -> str:
    return path.replace("{dashboard_id}", FAKE_ID).replace("{widget_id}", FAKE_ID).replace("{alert_id}", FAKE_ID)


def scope_probes(url: str, routes: list[tuple[str, str]]) -> list[Probe]:
    """Every route with a token granted nothing, and with one granted all but what the route needs."""
    probes = []
    for method, path in routes:
        grants = EXPECTED.get((method, path))
        if grants is None:
            probes.append(Probe("scopes", f"{method} {path}", "no line in EXPECTED: say what grants it", False))
            continue
        body = BODIES.get(path) if method in ("POST", "PUT") else None
        for label, claims in (("granted nothing", {"rooms": [], "scopes": []}), ("all but its grant", all_but(grants))):
            status = rest_status(url, method, concrete(path), valid_token(**claims), body)
            probes.append(Probe("scopes", f"{method} {path} ({label})", status, status == 403, status >= 500))
    # The cases of the defect: a full reader commands; a workflow reader lists every workflow or
    # reads every event, or another workflow's.
    for label, method, path, claims, body in (
            ("a token with no claims commands", "POST", "/api/charlie/command", {},
             BODIES["/api/charlie/command"]),
            ("a reader of one workflow lists workflows", "GET", "/api/workflows",
             {"rooms": ["workflows:linear:ENG-1"]}, None),
            ("a reader of one workflow reads every event", "GET", "/api/events",
             {"rooms": ["workflows:linear:ENG-1"]}, None),
            ("a reader of one workflow reads another's events", "GET", "/api/events?workflow=linear:ENG-2",
             {"rooms": ["workflows:linear:ENG-1"]}, None),
            ("a reader of some workflows lists workflows", "GET", "/api/workflows",
             {"rooms": ["workflows:linear:*"]}, None),
            ("a reader of one workflow writes dashboards", "POST", "/dashboard/dashboards",
             {"rooms": ["workflows:linear:ENG-1"]}, BODIES["/dashboard/dashboards"])):
        status = rest_status(url, method, path, valid_token(**claims), body)
        probes.append(Probe("scopes", label, status, status == 403, status >= 500))
    return probes


def room_probes(url: str, ws_url: str) -> list[Probe]:
    """A token limited to GitHub workflows asks /ws and Socket.IO for every other room, `workflows:all`
    (every workflow's updates) too."""
    token = valid_token(rooms=["workflows:github:*"])
    wanted = [*ROOMS, "workflows:*", "workflows:all", "workflows:linear:ENG-1", "workflows:github:acme/api#7"]
    allowed = {"workflows:github:acme/api#7"}
    probes = []

    async def run() -> None:
        async with websockets.connect(f"{ws_url}?token={token}", open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": wanted}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if message.get("type") == "subscribed":
                    joined = set(message["payload"]["rooms"])
                    break
        probes.extend(Probe("scopes", f"/ws joins {room}", room in joined, (room in joined) == (room in allowed))
                      for room in wanted)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
        try:
            answer = await client.call("subscribe", {"rooms": wanted}, timeout=5)
        finally:
            await client.disconnect()
        joined = set(answer["rooms"])
        probes.extend(Probe("scopes", f"Socket.IO joins {room}", room in joined,
                            (room in joined) == (room in allowed)) for room in wanted)

    asyncio.run(run())
    return probes


# --- webhook signatures and replays ---------------------------------------------------------------------

def _pull_request(number: int) -> bytes:
    repo = "acme/attacks"
    return json.dumps({"action": "opened", "number": number, "repository": {"full_name": repo},
                       "sender": {"login": "octo", "type": "User"},
                       "pull_request": {"number": number, "title": "t", "state": "open", "user": {"login": "octo"},
                                        "html_url": f"https://github.com/{repo}/pull/{number}",
                                        "head": {"ref": f"b{number}"}, "base": {"repo": {"full_name": repo}}}}).encode()


def _linear_issue() -> bytes:
    issue = uuid.uuid4().hex
    return linear_body({"action": "create", "type": "Issue", "data": {"id": issue, "identifier": "ENG-9",
                        "title": "replayed", "teamId": "t", "state": {"id": "s", "name": "Todo"}}})


def _sha1(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def signature_attacks() -> Iterator[tuple[str, str, bytes, dict[str, str]]]:
    """(label, path, body, headers) of deliveries that must be refused with 401."""
    gh_secret, lin_secret = SECRETS["CC_GITHUB_WEBHOOK_SECRET"], SECRETS["CC_LINEAR_WEBHOOK_SECRET"]
    body = _pull_request(1)
    good = github_headers(body, "pull_request")
    sig = good["X-Hub-Signature-256"]
    yield "github: wrong secret", "/webhooks/github", body, github_headers(body, "pull_request", secret="nope")
    yield "github: signature of another body", "/webhooks/github", body, {
        **good, "X-Hub-Signature-256": github_headers(_pull_request(2), "pull_request")["X-Hub-Signature-256"]}
    yield "github: truncated signature", "/webhooks/github", body, {**good, "X-Hub-Signature-256": sig[:-2]}
    yield "github: prefix only", "/webhooks/github", body, {**good, "X-Hub-Signature-256": "sha256="}
    yield "github: bare hex", "/webhooks/github", body, {**good, "X-Hub-Signature-256": sig.removeprefix("sha256=")}
    no_sig = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
    yield "github: missing header", "/webhooks/github", body, no_sig
    yield "github: sha1= in the sha256 header", "/webhooks/github", body, {
        **good, "X-Hub-Signature-256": "sha1=" + _sha1(gh_secret, body)}
    yield "github: only the legacy sha1 header", "/webhooks/github", body, {
        **no_sig, "X-Hub-Signature": "sha1=" + _sha1(gh_secret, body)}

    body = _linear_issue()
    good = linear_headers(body)
    yield "linear: wrong secret", "/webhooks/linear", body, linear_headers(body, secret="nope")
    yield "linear: signature of another body", "/webhooks/linear", body, {
        **good, "Linear-Signature": linear_headers(_linear_issue())["Linear-Signature"]}
    yield "linear: truncated signature", "/webhooks/linear", body, {**good, "Linear-Signature": good["Linear-Signature"][:-2]}
    yield "linear: missing header", "/webhooks/linear", body, {k: v for k, v in good.items() if k != "Linear-Signature"}
    yield "linear: sha1= signature", "/webhooks/linear", body, {**good, "Linear-Signature": "sha1=" + _sha1(lin_secret, body)}
    stale = linear_body({"action": "create", "type": "Issue", "data": {"id": "old"}}, int(time.time() * 1000) - 120_000)
    yield "linear: signed, 2 minutes old", "/webhooks/linear", stale, linear_headers(stale)

    for path, secret in (("/webhooks/charlie", SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]),
                         ("/events", SECRETS["CC_EVENTS_API_TOKEN"])):
        body = json.dumps({"kind": "alert", "data": {"message": "x"}} if path == "/events" else
                          {"id": "attack-1", "instance_id": "charlie-alpha", "type": "task.progress",
                           "timestamp": "2026-01-05T10:00:00Z"}).encode()
        good = signed_headers(body, secret)
        name = path.rsplit("/", 1)[-1]
        yield f"{name}: wrong secret", path, body, signed_headers(body, "nope")
        yield f"{name}: signature of another body", path, body, signed_headers(body + b" ", secret) | {
            "Content-Type": "application/json"}
        yield f"{name}: truncated signature", path, body, {**good, "X-Signature-256": good["X-Signature-256"][:-2]}
        yield f"{name}: missing header", path, body, {"Content-Type": "application/json"}
        yield f"{name}: sha1= signature", path, body, {**good, "X-Signature-256": "sha1=" + _sha1(secret, body)}
        yield f"{name}: wrong bearer", path, body, {"Content-Type": "application/json",
                                                    "Authorization": "Bearer not-" + secret}


def signature_probes(server: Sidecar) -> list[Probe]:
    before = len(server.landed())
    probes = []
    for label, path, body, headers in signature_attacks():
        status = requests.post(server.url + path, data=body, headers=headers, timeout=10).status_code
        probes.append(Probe("signatures", label, status, status == 401, status >= 500))
    landed = len(server.landed()) - before
    if landed:
        probes.append(Probe("signatures", "lines landed by refused deliveries", landed, False))
    return probes


def github_replay_probes(server: Sidecar, replays: int = 3) -> list[Probe]:
    """The same delivery (same X-GitHub-Delivery) sent again: 200 duplicate, landed once."""
    body = _pull_request(int(time.time()) % 100_000)
    headers = github_headers(body, "pull_request")
    delivery = headers["X-GitHub-Delivery"]
    answers = [requests.post(server.url + "/webhooks/github", data=body, headers=headers, timeout=10)
               for _ in range(1 + replays)]
    probes = [Probe("replays", "github: first delivery", answers[0].status_code, answers[0].status_code == 202)]
    probes += [Probe("replays", "github: same X-GitHub-Delivery again", a.status_code,
                     a.status_code == 200 and a.json().get("status") == "duplicate", a.status_code >= 500)
               for a in answers[1:]]
    landed = sum(1 for line in server.landed() if line.get("delivery_id") == delivery)
    probes.append(Probe("replays", "github: landed once", landed, landed == 1, duplicated=max(0, landed - 1)))
    return probes


def linear_replay_probes(server: Sidecar, replays: int = 2) -> list[Probe]:
    """The same signed body with a new Linear-Delivery each time (the signature does not cover it),
    within the 60 s window: it must be answered as a duplicate and landed once."""
    body = _linear_issue()
    answers = [requests.post(server.url + "/webhooks/linear", data=body, headers=linear_headers(body), timeout=10)
               for _ in range(1 + replays)]
    probes = [Probe("replays", "linear: first delivery", answers[0].status_code, answers[0].status_code == 202)]
    probes += [Probe("replays", "linear: same body, new Linear-Delivery", a.status_code,
                     a.status_code == 200 and a.json().get("status") == "duplicate", a.status_code >= 500)
               for a in answers[1:]]
    landed = sum(1 for line in server.landed() if json.dumps(line.get("payload"), sort_keys=True)
                 == json.dumps(json.loads(body), sort_keys=True))
    probes.append(Probe("replays", "linear: landed once", landed, landed == 1, duplicated=max(0, landed - 1)))
    return probes


# --- the scenario ---------------------------------------------------------------------------------------

@contextmanager
def sidecar(workdir, env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    server = Sidecar(workdir / f"data-{uuid.uuid4().hex[:6]}", {**SECRETS, **(env or {})})
    try:
        yield server.start()
    finally:
        server.stop()


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []

    def family(name: str, make: Callable[[], list[Probe]]) -> None:
        rows.append(row(name, make()))

    with sidecar(ctx.workdir) as server:
        token_controls(server.url, server.ws_url)
        family("forged tokens", lambda: token_probes(server.url, server.ws_url, forged_tokens()))
        family("scope escalation", lambda: scope_probes(server.url, app_routes()) + room_probes(server.url,
                                                                                                 server.ws_url))
        family("webhook signatures", lambda: signature_probes(server))
        family("github replay", lambda: github_replay_probes(server))
        family("linear replay", lambda: linear_replay_probes(server))
    # Key confusion: an operator pasted an RS256 public key as CC_JWT_SECRET. Tokens signed by its
    # private key, or by HMAC keyed with the (public) PEM, must both be refused, and with a 401.
    private, public = key_pairs()["RS256"]
    with sidecar(ctx.workdir, {"CC_JWT_SECRET": public.decode()}) as server:
        good = {"sub": "mallory", "exp": int(time.time()) + 600}
        family("key confusion", lambda: token_probes(server.url, server.ws_url, {
            "RS256 by the key pair whose public key is the secret": jwt.encode(good, private, algorithm="RS256"),
            "HS256 keyed with that public key": forge({"alg": "HS256", "typ": "JWT"}, good, public)},
            "key confusion"))
    return rows


SCENARIO = Scenario("auth_attacks", run, seconds=20)
