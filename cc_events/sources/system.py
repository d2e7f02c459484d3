"""Host metrics from the metrics agent: raw rows for the warm rollups and the live room, no event
(a sample is a measurement, not something that happened to a piece of work)."""

from __future__ import annotations

from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

# The `POST /events` kind the agent pushes its samples under; the sidecar lands them as rows.
METRICS_KIND = "system.metrics"


RAW_TABLES = (
    RawTable("system", "metrics", (
        col("id", "str", required=True), col("host", "str", required=True),
        col("sampled_at", "time", required=True), col("cpu_percent", "float"), col("cpu_count", "int"),
        col("load_1m", "float"), col("load_5m", "float"), col("load_15m", "float"),
        col("memory_total_bytes", "int"), col("memory_used_bytes", "int"), col("memory_percent", "float"),
        col("disk_total_bytes", "int"), col("disk_used_bytes", "int"), col("disk_percent", "float"),
        col("net_bytes_sent", "int"), col("net_bytes_recv", "int"), col("process_count", "int"),
    ), "Host metrics from the metrics agent (psutil), one row per sample (every 30 s per host)."),
)


SOURCE = Source("system", RAW_TABLES)
