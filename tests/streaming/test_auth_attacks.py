"""Attacks on the sidecar's authentication and authorization, over real HTTP, /ws and Socket.IO
against a sidecar process: the fast form of `make chaos`'s `auth_attacks` (the same probes)."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
import requests

from scripts.chaos import auth_attacks as attacks
from scripts.chaos.harness import SECRETS, Sidecar


def failures(probes: list[attacks.Probe]) -> list[str]:
    return [f"{p.label} → {p.answer}" for p in probes if not p.refused or p.server_error]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Sidecar:
    """One sidecar for the module: every probe here leaves it as it found it but for landed lines."""
    started = Sidecar(tmp_path_factory.mktemp("auth") / "data", dict(SECRETS)).start()
    yield started
    started.stop()


def test_forged_tokens_are_refused_on_rest_ws_and_socket_io(server):
    attacks.token_controls(server.url, server.ws_url)
    probes = attacks.token_probes(server.url, server.ws_url, attacks.forged_tokens())
    assert len(probes) >= 30 * 5
    assert failures(probes) == []


def test_a_public_key_pasted_as_the_secret_refuses_both_confusions_with_401(make_sidecar):
    """An RS256 public key as CC_JWT_SECRET: neither a token its private key signed nor one HMAC-keyed
    with the public PEM gets in. Before, the second was a 500 on REST (PyJWT's InvalidKeyError
    escaped) and a dropped socket on /ws."""
    private, public = attacks.key_pairs()["RS256"]
    pem = make_sidecar({"CC_JWT_SECRET": public.decode()})
    claims = {"sub": "mallory", "exp": int(time.time()) + 600}
    probes = attacks.token_probes(pem.url, pem.ws_url, {
        "RS256 by the pair's private key": jwt.encode(claims, private, algorithm="RS256"),
        "HS256 keyed with the public PEM": attacks.forge({"alg": "HS256", "typ": "JWT"}, claims, public)})
    assert failures(probes) == []


def test_nbf_and_iat_get_30_s_of_clock_skew_and_exp_none(server):
    """An issuer's clock a few seconds ahead is tolerated (CLOCK_SKEW_S = 30); minutes ahead is not,
    and a token is refused from the second it expires."""
    now = int(time.time())
    let_in = {"nbf 5 s ahead": {"nbf": now + 5}, "iat 5 s ahead": {"iat": now + 5}}
    keep_out = {"nbf 2 min ahead": {"nbf": now + 120}, "iat 2 min ahead": {"iat": now + 120},
                "expired 1 s ago": {"exp": now - 1}}
    for label, extra in let_in.items():
        token = attacks.valid_token(**extra)
        assert attacks.rest_status(server.url, "GET", "/dashboard/dashboards", token) == 200, label
        assert asyncio.run(attacks._all_answers(server.url, server.ws_url, token)) == ["open", "open", "connected"]
    tokens = {label: attacks.valid_token(**extra) for label, extra in keep_out.items()}
    assert failures(attacks.token_probes(server.url, server.ws_url, tokens)) == []


@pytest.mark.parametrize("route", sorted(set(attacks.app_routes()) | set(attacks.EXPECTED)),
                         ids=lambda r: f"{r[0]} {r[1]}")
def test_no_route_reads_or_changes_past_the_tokens_claims(server, route):
    """Every route of the app, with a token granted nothing and one granted all but the route's own
    room or scope: 403. A new route fails here until it is in the grants table (and in EXPECTED)."""
    assert route in attacks.app_routes(), f"{route} is in EXPECTED but the app has no such route"
    assert route in attacks.EXPECTED, f"{route}: say what grants it in streaming/grants.py and in EXPECTED"
    probes = attacks.scope_probes(server.url, [route])
    assert failures(probes) == []
    method, path = route
    refused = requests.request(method, server.url + attacks.concrete(path), timeout=10,
                               json=attacks.BODIES.get(path) if method in ("POST", "PUT") else None,
                               headers={"Authorization": f"Bearer {attacks.valid_token(rooms=[], scopes=[])}"})
    # The refusal names what the token lacks.
    assert all(f"`{name}`" in refused.json()["detail"] for _, name in attacks.EXPECTED[route]), refused.text


def test_the_cases_of_the_defect_are_refused(server):
    """A token with no claims commands; a token limited to one workflow lists them all, reads every
    event or another workflow's: each was answered (503 here, with no marts; 200 with them), now 403."""
    probes = attacks.scope_probes(server.url, [])
    assert len(probes) == 6 and failures(probes) == []
    answer = requests.post(f"{server.url}/api/charlie/command", json=attacks.BODIES["/api/charlie/command"],
                           headers={"Authorization": f"Bearer {server.token()}"}, timeout=10)
    assert answer.status_code == 403 and "`commands` scope" in answer.json()["detail"]


def test_rooms_past_the_claim_are_denied_on_ws_and_socket_io(server):
    assert failures(attacks.room_probes(server.url, server.ws_url)) == []


def test_webhook_signature_attacks_are_refused_and_land_nothing(server):
    probes = attacks.signature_probes(server)
    assert len(probes) >= 26 and failures(probes) == []


def test_a_github_replay_is_a_duplicate_landed_once(server):
    assert failures(attacks.github_replay_probes(server)) == []


def test_a_linear_replay_with_a_new_delivery_header_is_a_duplicate_landed_once(server):
    assert failures(attacks.linear_replay_probes(server)) == []


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4095, 24_000])
def test_the_sliced_hmac_is_the_one_senders_sign_with(size):
    """The webhook's HMAC is fed to OpenSSL in slices (`streaming.auth._HASH_SLICE`, so that
    hashlib keeps the interpreter): at every size around a slice it is the standard HMAC-SHA256,
    and one flipped byte of the body no longer matches."""
    import hashlib
    import hmac
    import os

    from streaming.auth import hmac_sha256_hex, signature_matches

    body = os.urandom(size)
    expected = hmac.new(b"the-secret", body, hashlib.sha256).hexdigest()
    assert hmac_sha256_hex("the-secret", body) == expected
    assert signature_matches("the-secret", body, "sha256=" + expected, prefix="sha256=")
    if size:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        assert not signature_matches("the-secret", flipped, "sha256=" + expected, prefix="sha256=")
