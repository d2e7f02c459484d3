"""Two sidecar replicas as on two hosts (a data dir each, no shared volume) landing in one Postgres
(`CC_LANDING_URL`), over one Redis: Redis killed and restarted empty mid-stream, then a replica
`kill -9`ed, under a retrying sender that fails over between them with the same delivery ids.

`replicas_redis`'s attack and checks on the shared landing: every acknowledged delivery once in
`cc_landing.lines` and in `raw/webhooks/deliveries` (read from it), every event at every client
and in the survivor's `/api/events`. A copy sent to the other replica is a duplicate by the table's
unique keys even while Redis is down or after it forgot everything; a delivery the killed replica
committed without answering is found there by the retry, and published by the survivor.
The database is a throwaway one on the shared server, dropped afterwards.
"""

from __future__ import annotations

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import PG_ADMIN_URL, throwaway_database
from scripts.chaos.replicas_redis import attack


def run(ctx: Context) -> list[Row]:
    with throwaway_database(PG_ADMIN_URL, "cc_chaos_landing") as url:
        return [attack(ctx, landing_url=url).row]


SCENARIO = Scenario("replicas_pg", run, seconds=60, needs=("redis", "postgres"))
