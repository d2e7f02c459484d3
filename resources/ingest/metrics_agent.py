"""The system metrics agent: CPU, memory, disk and network of this host every 30 s (psutil).

`python -m resources.ingest.metrics_agent [--interval 30] [--once]` appends one sample per tick to the
landing log stream `system_metrics` under `$CC_DATA_DIR/landing`, where the `raw/system/metrics`
asset picks it up. Run one per host.
"""

from __future__ import annotations

import argparse
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from resources.settings import Settings
from resources.storage.landing import LandingLog

STREAM = "system_metrics"


def sample(host: str | None = None) -> dict[str, Any]:
    """One reading of this machine, in the shape of raw/system/metrics."""
    import psutil  # here: the sidecar and the assets import this module for STREAM alone

    now = datetime.now(UTC).replace(tzinfo=None)
    host = host or socket.gethostname()
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    net = psutil.net_io_counters()
    load1, load5, load15 = psutil.getloadavg()
    return {
        "id": f"{host}:{now.isoformat()}:{uuid.uuid4().hex[:6]}",
        "host": host,
        "sampled_at": now.isoformat(),
        "cpu_percent": psutil.cpu_percent(interval=0.2),
        "cpu_count": psutil.cpu_count(),
        "load_1m": load1,
        "load_5m": load5,
        "load_15m": load15,
        "memory_total_bytes": memory.total,
        "memory_used_bytes": memory.total - memory.available,
        "memory_percent": memory.percent,
        "disk_total_bytes": disk.total,
        "disk_used_bytes": disk.used,
        "disk_percent": disk.percent,
        "net_bytes_sent": net.bytes_sent,
        "net_bytes_recv": net.bytes_recv,
        "process_count": len(psutil.pids()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()
    log = LandingLog(Settings.from_env().data_dir / "landing")
    while True:
        reading = sample()
        log.append(STREAM, [reading], datetime.fromisoformat(reading["sampled_at"]))
        if args.once:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
