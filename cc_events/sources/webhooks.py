"""Webhook deliveries: the envelope the sidecar lands for every delivery it acknowledged.

A delivery is not a source of its own: it carries another source's records (a GitHub PR, a Linear
comment, a pushed cron run). Its normalizer is therefore the dispatch over the other sources,
`cc_events.registry.normalize_delivery`, kept with the tables it dispatches on; this module holds
only the envelope's name and columns.
"""

from __future__ import annotations

from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

# The landing-log stream the sidecar appends every acknowledged delivery to (raw/webhooks/deliveries).
LANDING_STREAM = "webhooks"


RAW_TABLES = (
    RawTable("webhooks", "deliveries", (
        col("id", "str", required=True), col("source", "str", required=True),
        col("delivery_id", "str", required=True), col("event", "str", required=True), col("action", "str"),
        col("status", "str"), col("reason", "str"), col("repo", "str"),
        col("received_at", "time", "_received_at", required=True),
    ), "Webhook and pushed deliveries the streaming sidecar acknowledged, one row per delivery (payload in _raw)."),
)


# No normalizers here: the registry adds ("webhooks", "deliveries") → its delivery dispatch.
SOURCE = Source("webhooks", RAW_TABLES)
