"""`replicas_redis` on the sidecar's workers: `CC_SIDECAR_WORKERS=2` behind one port, over a Redis of
their own, which is killed and restarted mid-stream before a worker is `kill -9`ed (and started
again by the supervisor). Clients and the retrying sender reconnect to the same port, where the
kernel picks a worker; every acknowledged delivery must be landed once and reach every client."""

from __future__ import annotations

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.replicas_redis import attack


def run(ctx: Context) -> list[Row]:
    return [attack(ctx, workers=True).row]


SCENARIO = Scenario("workers_redis", run, seconds=60, needs=("redis",))
