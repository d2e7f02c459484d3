"""A "duplicate" answer means the first copy is on disk; Linear replays are caught by what the
signature covers; and a restart reads the persisted dedupe index, not the week's landing log.

Real sidecar processes, killed with SIGKILL where a crash is the point."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests

TODAY = datetime.now(UTC).date().isoformat()
BODY = json.dumps({"action": "opened", "issue": {"number": 7, "title": "slow disk"},
                   "repository": {"full_name": "acme/api"}}).encode()


def deliver(server, sign, delivery: str, body: bytes = BODY) -> requests.Response:
    return requests.post(f"{server.url}/webhooks/github", data=body, headers=sign.github(body, "issues", delivery),
                         timeout=60)


def health(server) -> dict:
    return requests.get(f"{server.url}/healthz", timeout=10).json()


def wait_for(condition, what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.02)


def test_a_duplicate_is_answered_only_once_the_first_copy_is_durable(make_sidecar, sign):
    # Each landing commit waits 5 s before its write and fsync: the first copy is in flight
    # while its redelivery arrives, and a kill -9 then loses the unwritten line.
    server = make_sidecar({"CC_FAULT_FSYNC_DELAY_S": "5"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(deliver, server, sign, "slow-1")
        wait_for(lambda: health(server)["deliveries_in_flight"] == 1, "the first copy in flight")
        again = pool.submit(deliver, server, sign, "slow-1")
        wait_for(lambda: again.done() or health(server)["duplicates_waiting"] == 1, "the redelivery answered or waiting")
        server.kill()
        answers = [f.exception() or f.result() for f in (first, again)]
    acked = [a for a in answers if isinstance(a, requests.Response) and a.ok]
    server.env["CC_FAULT_FSYNC_DELAY_S"] = "0"
    server.start()
    landed = [r for r in server.landed() if r["delivery_id"] == "slow-1"]
    # Whatever was acknowledged before the crash is on disk.
    assert not acked or landed, f"acknowledged {[a.json() for a in acked]} before the crash, then lost"
    # The sender retries what was not acknowledged; the delivery ends up landed exactly once.
    retry = deliver(server, sign, "slow-1")
    assert retry.status_code in (200, 202), retry.text
    assert deliver(server, sign, "slow-1").json()["status"] == "duplicate"
    assert len([r for r in server.landed() if r["delivery_id"] == "slow-1"]) == 1


def test_a_duplicate_waits_for_the_copy_in_flight_and_gets_its_answer(make_sidecar, sign):
    server = make_sidecar({"CC_FAULT_FSYNC_DELAY_S": "1"})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: deliver(server, sign, "storm-1"), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert [r["delivery_id"] for r in server.landed()] == ["storm-1"]


def linear_comment(sign, comment_id: str) -> bytes:
    return sign.linear_body({"action": "create", "type": "Comment", "data": {"id": comment_id, "body": "hi"},
                             "webhookId": "hook-1"})


def post_linear(server, body: bytes, headers: dict) -> requests.Response:
    return requests.post(f"{server.url}/webhooks/linear", data=body, headers=headers, timeout=30)


def test_a_signed_linear_body_replayed_under_a_new_delivery_header_lands_once(make_sidecar, sign):
    server = make_sidecar()
    body = linear_comment(sign, "c-1")
    headers = sign.linear(body, "Comment")
    assert post_linear(server, body, headers).status_code == 202
    replay = post_linear(server, body, sign.linear(body, "Comment"))  # a fresh Linear-Delivery
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate", replay.text
    retry = post_linear(server, body, headers)  # Linear's own retry: the same Linear-Delivery
    assert retry.status_code == 200 and retry.json()["status"] == "duplicate"
    other = linear_comment(sign, "c-2")  # another delivery of the same webhook is not a replay
    assert post_linear(server, other, sign.linear(other, "Comment")).status_code == 202
    server.restart()
    assert post_linear(server, body, sign.linear(body, "Comment")).json()["status"] == "duplicate"
    assert len(server.landed()) == 2


def indexed_through(ids) -> int:
    """The landing offset the id file's last checkpoint vouches for (0 before the first)."""
    if not ids.exists():
        return 0
    checkpoints = [line for line in ids.read_bytes().splitlines() if line.startswith(b"[")]
    return json.loads(checkpoints[-1])[0] if checkpoints else 0


def test_a_restart_reads_the_dedupe_index_not_the_landing_log(make_sidecar, sign):
    server = make_sidecar()
    landing = server.data_dir / "landing" / "webhooks" / f"date={TODAY}.jsonl"
    ids = server.data_dir / "landing" / "_index" / "webhooks" / f"date={TODAY}.ids"

    def kill_once_indexed():
        # The ids are appended just after the acks, without an fsync of their own: a kill before
        # that is the crash the second part of this test stages on purpose, not this one.
        wait_for(lambda: indexed_through(ids) == landing.stat().st_size, "the id file caught up with the landing")
        server.kill()

    deliveries = [f"d-{n}" for n in range(20)]
    for delivery in deliveries:
        assert deliver(server, sign, delivery).status_code == 202
    kill_once_indexed()
    server.start()
    index = health(server)["dedupe_index"]
    assert (index["keys"], index["landing_bytes_scanned"]) == (20, 0)
    assert {deliver(server, sign, d).json()["status"] for d in deliveries} == {"duplicate"}

    # A crash between the landing fsync and the index write: the line is durable, its id not
    # yet in the index. The next start reads just that line.
    late = json.dumps({"id": "github:late-1", "source": "github", "delivery_id": "late-1", "event": "issues",
                       "status": "raw", "payload": {}, "_received_at": datetime.now(UTC).isoformat()}) + "\n"
    server.kill()
    with landing.open("a") as handle:
        handle.write(late)
    server.start()
    index = health(server)["dedupe_index"]
    assert (index["keys"], index["landing_bytes_scanned"]) == (21, len(late))
    assert deliver(server, sign, "late-1").json()["status"] == "duplicate"

    # A power cut that tore the end of the index: what it no longer vouches for is read again.
    server.kill()
    with ids.open("r+b") as handle:
        handle.truncate(ids.stat().st_size - 5)
    server.start()
    index = health(server)["dedupe_index"]
    assert index["keys"] == 21 and 0 < index["landing_bytes_scanned"] < landing.stat().st_size
    assert {deliver(server, sign, d).json()["status"] for d in [*deliveries, "late-1"]} == {"duplicate"}
    assert deliver(server, sign, f"new-{uuid.uuid4()}").status_code == 202
    kill_once_indexed()
    server.start()
    assert health(server)["dedupe_index"]["landing_bytes_scanned"] == 0


def test_a_worker_starting_reads_every_workers_keys_and_repairs_only_its_own_index(tmp_path):
    """Workers sharing a data dir: each indexes its own landing files; at start one reads them all."""
    from datetime import UTC, datetime

    from streaming.dedupe import id_path, load
    from streaming.journal import encode_line

    now = datetime.now(UTC).replace(tzinfo=None)
    for writer, ids in (("w1", ["a", "b"]), ("w2", ["c"])):
        path = tmp_path / "webhooks" / f"date={now.date()}.{writer}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(encode_line({"id": i}, now) for i in ids))
    loaded = load(tmp_path, "webhooks", 7, writer="w1")
    assert sorted(loaded.keys) == ["a", "b", "c"]
    mine, theirs = (id_path(tmp_path / "webhooks" / f"date={now.date()}.{w}.jsonl") for w in ("w1", "w2"))
    assert mine.exists() and not theirs.exists()  # w2 indexes its own file when it starts
    assert sorted(load(tmp_path, "webhooks", 7, writer="w2").keys) == ["a", "b", "c"]
    assert theirs.exists()
