"""Nothing acknowledged is lost: a crash after the ack, a restart, redeliveries, and the landing
log → raw partition → normalized events path, exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import requests
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from cc_assets.normalized import normalized_events
from cc_assets.sources import raw_assets
from cc_events import NormalizeContext, normalize
from resources.platform import PlatformResource
from sensors.webhooks import webhooks_sensor

TODAY = datetime.now(UTC).date().isoformat()


def deliver(sidecar, sign, body: bytes, event: str, delivery: str):
    return requests.post(f"{sidecar.url}/webhooks/github", data=body, headers=sign.github(body, event, delivery),
                         timeout=10)


def test_acknowledged_then_killed_then_restarted(make_sidecar, sign, github_fixtures):
    server = make_sidecar()
    bodies = {f"d-{path.stem}": path.read_bytes() for path in sorted((github_fixtures / "pull_request").glob("*.json"))}
    for delivery, body in bodies.items():
        assert deliver(server, sign, body, "pull_request", delivery).status_code == 202
    server.kill()  # SIGKILL right after the last ack: no shutdown, no flush
    assert sorted(r["delivery_id"] for r in server.landed()) == sorted(bodies)
    server.start()
    # Every redelivery after the restart is recognised: the dedupe set came back from the log.
    for delivery, body in bodies.items():
        answer = deliver(server, sign, body, "pull_request", delivery)
        assert answer.status_code == 200 and answer.json()["status"] == "duplicate"
    assert sorted(r["delivery_id"] for r in server.landed()) == sorted(bodies)


def test_landing_to_raw_partition_and_events_exactly_once(make_sidecar, sign, github_fixtures):
    server = make_sidecar()
    opened = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    closed = (github_fixtures / "pull_request" / "closed.payload.json").read_bytes()
    ping = (github_fixtures / "ping" / "payload.json").read_bytes()
    assert deliver(server, sign, opened, "pull_request", "x-1").status_code == 202
    assert deliver(server, sign, opened, "pull_request", "x-1").status_code == 200  # redelivered
    assert deliver(server, sign, closed, "pull_request", "x-2").status_code == 202
    assert deliver(server, sign, ping, "ping", "x-3").status_code == 200
    server.kill()

    # A replica that crashed between its fsync and its ack may land a delivery twice; the asset
    # must still make one row of it.
    log_path = server.data_dir / "landing" / "webhooks" / f"date={TODAY}.jsonl"
    first_line = log_path.read_text().splitlines()[0]
    with log_path.open("a") as handle:
        handle.write(first_line + "\n")

    platform = PlatformResource(data_dir=str(server.data_dir))
    sensor_result = webhooks_sensor(build_sensor_context(resources={"platform": platform}))
    assert [r.partition_key for r in sensor_result] == [TODAY]

    raw = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
    for _ in range(2):  # a re-run replaces the partition, it does not add to it
        assert materialize([raw, normalized_events], partition_key=TODAY, resources={"platform": platform},
                           instance=DagsterInstance.ephemeral(), selection=[raw.key, *normalized_events.keys]).success
    lake = server.data_dir / "lake"
    rows = pq.read_table(lake / "raw" / "webhooks" / "deliveries" / f"date={TODAY}" / "part-0.parquet").to_pylist()
    assert sorted(r["delivery_id"] for r in rows) == ["x-1", "x-2", "x-3"]
    assert {r["delivery_id"]: r["status"] for r in rows} == {"x-1": "normalized", "x-2": "normalized", "x-3": "raw"}
    events = pq.read_table(lake / "normalized" / "events" / f"date={TODAY}" / "part-0.parquet").to_pylist()
    ids = sorted(e["event_id"] for e in events)
    assert ids == ["github:pr:codertocat/hello-world#2:closed", "github:pr:codertocat/hello-world#2:opened"]

    # The same PR seen by the REST poll normalizes to the same ids: the staging dedupe on
    # event_id counts it once.
    pr = json.loads(closed)["pull_request"]
    polled = normalize("github", "pull_requests", pr, NormalizeContext(), {"repo": "Codertocat/Hello-World"})
    assert sorted(e.id for e in polled) == ids

    # Nothing new: the sensor waits.
    context = build_sensor_context(resources={"platform": platform}, cursor=json.dumps(
        {d: (log_path.parent / f"date={d}.jsonl").stat().st_size if (log_path.parent / f"date={d}.jsonl").exists()
         else 0 for d in [TODAY]}))
    again = webhooks_sensor(context)
    assert not isinstance(again, list)
