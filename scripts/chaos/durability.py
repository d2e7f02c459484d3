"""`webhook_defects`: issue 10's webhook durability defects, each replayed many times against fresh
sidecars, counted as the table counts them.

- unstorable bodies (a lone surrogate escape, nesting past the landing encoder) on the GitHub and
  Charlie routes: must be 4xx, and the sender's fixed body under the same delivery id must land;
- too-deep bodies on every webhook route, and too-deep `filters`: must be 400;
- Linear replays: one signed body re-sent under fresh `Linear-Delivery` headers: must land once;
- duplicate storms while every landing commit is slowed (`CC_FAULT_FSYNC_DELAY_S`), some cut by
  a `kill -9`: every copy answered 2xx must be on disk after the restart, and each delivery is
  landed once after the sender's retries.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import (
    SECRETS,
    Sidecar,
    bearer,
    github_headers,
    linear_body,
    linear_headers,
    signed_headers,
)

NAME = "webhook_defects"
CHARLIE = SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]


def _deep(levels: int, kind: str = "[") -> str:
    if kind == "[":
        return "[" * levels + "]" * levels
    return '{"a":' * levels + "1" + "}" * levels


def _post(server: Sidecar, path: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(f"{server.url}{path}", data=body, headers=headers, timeout=30)


def _github(server: Sidecar, body: bytes, delivery: str) -> requests.Response:
    return _post(server, "/webhooks/github", body, github_headers(body, "issues", delivery))


def _charlie(server: Sidecar, body: bytes, delivery: str) -> requests.Response:
    return _post(server, "/webhooks/charlie", body, {**signed_headers(body, CHARLIE), "X-Delivery-Id": delivery})


def _count(row: Row, answer: requests.Response, refused: bool) -> None:
    """An answer to a probe that must be refused (`refused`) or accepted."""
    if answer.status_code >= 500:
        row.errors_5xx += 1
    elif refused and answer.status_code < 300:
        row.wrongly_accepted += 1


def unstorable(server: Sidecar, rng: random.Random, deadline: float) -> Row:
    row = Row(f"{NAME}: unstorable bodies (github, charlie)")
    surrogate = '"\\ud800"', '"a\\udfffb"', '"\\ud83d"'
    fixed: dict[str, str] = {}
    while time.monotonic() < deadline:
        route = rng.choice(["github", "charlie"])
        bad = rng.choice([f'{{"action":"opened","title":{rng.choice(surrogate)}}}',
                          '{\n "action": "opened",\n "deep": ' + _deep(rng.randint(129, 1000), rng.choice("[{")) + "\n}",
                          '{"action":"opened","deep":' + _deep(rng.randint(255, 1024)) + "}"])
        delivery = f"u-{uuid.uuid4()}"
        send = _github if route == "github" else _charlie
        body = bad if route == "github" else '{"kind":"charlie.activity","data":' + bad + "}"
        for _ in range(2):  # the sender's retry
            row.attempts += 1
            _count(row, send(server, body.encode(), delivery), refused=True)
        good = b'{"action":"opened"}' if route == "github" else b'{"kind":"charlie.activity","data":{}}'
        answer = send(server, good, delivery)
        row.attempts += 1
        _count(row, answer, refused=False)
        if answer.status_code == 202:
            fixed[f"{route}:{delivery}"] = route
        elif answer.status_code == 200:  # "duplicate": the refused body left its id claimed
            row.acked_lost += 1
    landed = Counter(r["id"] for r in server.landed())
    row.acked_lost += sum(1 for key in fixed if landed[key] == 0)
    row.duplicated += sum(n - 1 for n in landed.values() if n > 1)
    row.notes = f"{len(fixed)} fixed bodies landed after refusals"
    return row


def too_deep(server: Sidecar, rng: random.Random, deadline: float) -> Row:
    row = Row(f"{NAME}: deep bodies on every route")
    token = server.token()
    before = len(server.landed())
    while time.monotonic() < deadline:
        body = _deep(rng.choice([129, 300, 1025, 5000, 20000]), rng.choice("[{")).encode()
        answers = [
            _github(server, body, f"deep-{uuid.uuid4()}"),
            _post(server, "/webhooks/linear", body, linear_headers(body)),
            _post(server, "/webhooks/charlie", body, signed_headers(body, CHARLIE)),
            _post(server, "/events", body, bearer()),
            requests.get(f"{server.url}/dashboard/metrics", params={"filters": _deep(rng.choice([1100, 3000]))},
                         headers={"Authorization": f"Bearer {token}"}, timeout=30),
        ]
        for answer in answers:
            row.attempts += 1
            _count(row, answer, refused=True)
    row.wrongly_accepted += len(server.landed()) - before
    return row


def linear_replays(server: Sidecar, rng: random.Random, deadline: float) -> Row:
    row = Row(f"{NAME}: Linear replays under new Linear-Delivery")
    sent = 0
    while time.monotonic() < deadline:
        body = linear_body({"action": "create", "type": "Comment", "webhookId": "hook-1",
                            "data": {"id": f"c-{uuid.uuid4()}", "body": "hi"}})
        first = _post(server, "/webhooks/linear", body, linear_headers(body, "Comment"))
        row.attempts += 1
        _count(row, first, refused=False)
        sent += first.status_code == 202
        for _ in range(rng.randint(1, 4)):
            replay = _post(server, "/webhooks/linear", body, linear_headers(body, "Comment"))
            row.attempts += 1
            _count(row, replay, refused=False)
            if replay.status_code == 202:
                row.wrongly_accepted += 1
    bodies = Counter(json.dumps(r["payload"], sort_keys=True) for r in server.landed() if r["source"] == "linear")
    row.duplicated = sum(n - 1 for n in bodies.values())
    row.notes = f"{sent} bodies, each landed once"
    return row


def storms(ctx: Context, rng: random.Random, deadline: float) -> Row:
    row = Row(f"{NAME}: duplicate storms, slowed fsync, kill -9")
    server = Sidecar(ctx.workdir / "storm", {**SECRETS, "CC_FAULT_FSYNC_DELAY_S": "0.4"}).start()
    deadline = max(deadline, time.monotonic() + 12)  # a loaded machine's start-up is not the storms' time
    acked: set[str] = set()
    kills = 0
    body = b'{"action":"opened","issue":{"number":1}}'
    try:
        with ThreadPoolExecutor(8) as pool:
            round_no = 0
            while time.monotonic() < deadline:
                round_no += 1
                delivery = f"s-{round_no}"
                copies = [pool.submit(_github, server, body, delivery) for _ in range(rng.randint(2, 8))]
                kill = round_no % 3 == 0 and time.monotonic() < deadline - 4
                if kill:
                    time.sleep(rng.uniform(0.05, 0.3))  # while the copies wait on the slowed commit
                    server.kill()
                    kills += 1
                for copy in copies:
                    row.attempts += 1
                    try:
                        answer = copy.result()
                    except requests.RequestException:
                        continue  # the crash cut it: the sender retries below
                    _count(row, answer, refused=False)
                    if answer.status_code < 300:
                        acked.add(delivery)
                if kill:
                    before = set(acked)
                    t0 = time.monotonic()
                    server.start()
                    row.recovery_s = max(row.recovery_s or 0.0, time.monotonic() - t0)
                    on_disk = {r["delivery_id"] for r in server.landed()}
                    row.acked_lost += len(before - on_disk)
                for _ in range(20):  # the sender retries until acknowledged
                    answer = _github(server, body, delivery)
                    row.attempts += 1
                    _count(row, answer, refused=False)
                    if answer.status_code < 300:
                        acked.add(delivery)
                        break
        landed = Counter(r["delivery_id"] for r in server.landed())
        row.acked_lost += sum(1 for d in acked if landed[d] == 0)
        row.duplicated = sum(n - 1 for n in landed.values() if n > 1)
        row.notes = f"{round_no} deliveries, {kills} kills"
    finally:
        server.stop()
    return row


def run(ctx: Context) -> list[Row]:
    rng = random.Random(ctx.seed)
    end = time.monotonic() + ctx.seconds
    server = Sidecar(ctx.workdir / "probes", dict(SECRETS)).start()
    try:
        # Half the budget for the probes (shared by three), half for the storms and their restarts.
        share = max(end - time.monotonic(), 8.0) / 6
        rows = [unstorable(server, rng, time.monotonic() + share)]
        rows.append(too_deep(server, rng, time.monotonic() + share))
        rows.append(linear_replays(server, rng, time.monotonic() + share))
    finally:
        server.stop()
    rows.append(storms(ctx, rng, max(end - 3, time.monotonic() + 8)))
    return rows


SCENARIO = Scenario(NAME, run, seconds=30)
