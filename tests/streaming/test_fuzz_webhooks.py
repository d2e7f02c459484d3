"""Every webhook route fuzzed with valid signatures over arbitrary bodies (hypothesis, fixed seed,
a few dozen examples a route), against one real sidecar process: never a 5xx; an ack's delivery in
the landing log exactly once, and its re-send a duplicate that lands nothing; a 4xx lands nothing.
The properties and strategies are `scripts/chaos/fuzz.py`'s; `make chaos` runs many more examples.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from scripts.chaos.fuzz import ROUTES, Attempt, Fuzzer, fuzz_route
from scripts.chaos.harness import SECRETS, Sidecar, github_headers, signed_headers


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    server = Sidecar(tmp_path_factory.mktemp("fuzz") / "data", dict(SECRETS)).start()
    yield server
    server.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_signed_arbitrary_bodies_are_landed_once_or_refused(sidecar, route):
    # known=True: the strategy also draws the bodies of defects 1 and 3 (lone surrogates, deep nesting).
    fuzzer = Fuzzer(sidecar, strict=True)
    fuzz_route(fuzzer, route, max_examples=25, known=True)
    assert fuzzer.tally.acked > 0 and fuzzer.tally.acked < fuzzer.tally.attempts, "the fuzz neither acked nor refused"


def _attempt(route: str, data: str) -> Attempt:
    """A valid delivery to `route` whose payload is the JSON text `data`."""
    if route == "/webhooks/github":
        raw = data.encode()
        return Attempt(route, raw, github_headers(raw, "push"), True)
    if route == "/webhooks/linear":
        raw = (f'{{"type":"Issue","action":"update","webhookTimestamp":{int(time.time() * 1000)},'
               f'"data":{data}}}').encode()
        signature = signed_headers(raw, SECRETS["CC_LINEAR_WEBHOOK_SECRET"])["X-Signature-256"].removeprefix("sha256=")
        return Attempt(route, raw, {"Content-Type": "application/json", "Linear-Delivery": str(uuid.uuid4()),
                                    "Linear-Signature": signature}, True)
    raw = f'{{"kind":"fuzz.probe","data":{data}}}'.encode()
    secret = SECRETS["CC_CHARLIE_WEBHOOK_SECRET" if route == "/webhooks/charlie" else "CC_EVENTS_API_TOKEN"]
    return Attempt(route, raw, {**signed_headers(raw, secret), "X-Delivery-Id": str(uuid.uuid4())}, True)


# The bodies issue 10's defects 1 and 3 lost or answered 500 (each a 400 now, nothing claimed).
DEFECT_1 = "defect 1: a body the sidecar cannot re-encode was a 500 after its id was claimed: lost"
DEFECT_3 = "defect 3: JSON nested deeper than ~1,024 levels was a RecursionError (500)"
KNOWN = {
    # A lone surrogate, as JSON carries it (an escape): orjson cannot write it back.
    "lone surrogate escape": ('{"title":"\\ud800"}', DEFECT_1),
    # Deeper than orjson writes (255), in a body that is re-encoded (a line break: not landed as is).
    "300 levels, re-encoded": ("[\n" * 300 + "]" * 300, DEFECT_1),
    "2,000 levels": ("[" * 2000 + "]" * 2000, DEFECT_3),
    # Found by this fuzz: NaN sends the body to Python's parser, which keeps the integer beyond 64 bits
    # that orjson then cannot write (orjson's own parser makes it a float): the same loss as defect 1.
    "NaN and an integer beyond 64 bits": ('{"n":NaN,"id":18446744073709551616}', DEFECT_1),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(KNOWN))
def test_known_unencodable_bodies_are_landed_once_or_refused(sidecar, route, case):
    data, _defect = KNOWN[case]
    fuzzer = Fuzzer(sidecar, strict=True)
    fuzzer.check(_attempt(route, data))


def test_the_landing_log_is_read_line_by_line(sidecar):
    """The checker itself: an ack it sees lands one line with the delivery's id."""
    fuzzer = Fuzzer(sidecar, strict=True)
    attempt = _attempt("/webhooks/charlie", json.dumps({"ok": True}))
    fuzzer.check(attempt)
    assert fuzzer.tally.acked == 1 and fuzzer.landing.counts[f"charlie:{attempt.headers['X-Delivery-Id']}"] == 1
