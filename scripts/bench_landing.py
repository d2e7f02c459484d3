"""What the shared landing in Postgres costs per webhook, against the local files (`CC_LANDING_URL`).

Usage: python -m scripts.bench_landing [--seconds 10] [--connections 64] [--configs files,postgres]

Each configuration in one run, one after the other, on loopback: one sidecar worker without Redis
(the landing is all that differs), `scripts.bench_stream`'s signed-webhook load generator in closed
loop (unique pull requests) for `--seconds` after a short warm-up. `postgres` lands in a throwaway
database on the Postgres of `CC_PG_URL` (the shared server's default), dropped afterwards.
Reports acknowledged webhooks a second, ack p50/p99, the sidecar's CPU per webhook, the Postgres
backends' CPU per webhook (the server's work for the sidecar's connection), commits (group
commits / transactions) per second, the other work on the host (a figure taken beside other work
is loaded) and acknowledged webhooks missing from the landing. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from scripts.bench_stream import (
    JWT_SECRET,
    ROOT,
    WEBHOOK_SECRET,
    _fmt,
    _free_port,
    landed_ids,
    new_hist,
    quantiles,
)
from scripts.bench_workers import WARMUP_S, cpu_s, host_busy_s, load


def _start(port: int, data_dir: Path, landing_url: str | None, log) -> subprocess.Popen:
    env = {**os.environ, "CC_DATA_DIR": str(data_dir), "CC_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "CC_JWT_SECRET": JWT_SECRET, "CC_SIDECAR_WORKERS": "1", "CC_REDIS_URL": "",
           "CC_LANDING_URL": landing_url or ""}
    proc = subprocess.Popen([sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sidecar did not start; see {log.name}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                return proc
        time.sleep(0.1)


def _backends_cpu_s(admin_url: str, database: str | None) -> float:
    """CPU seconds of the Postgres backends serving `database` (same host: the server is local)."""
    if database is None:
        return 0.0
    import psutil
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("select pid from pg_stat_activity where datname = %s", [database])]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def measure(config: str, args, work: Path, landing_url: str | None) -> dict:
    point = work / config
    data_dir = point / "data"
    point.mkdir(parents=True)
    port = _free_port()
    log = (point / "server.log").open("wb")
    database = landing_url.rsplit("/", 1)[1] if landing_url else None
    server = _start(port, data_dir, landing_url, log)
    try:
        load(port, WARMUP_S, args.connections, point / "warmup.json", log)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        before = (cpu_s(server.pid), _backends_cpu_s(args.admin_url, database), host_busy_s(), health["landing_fsyncs"])
        result = load(port, args.seconds, args.connections, point / "load.json", log)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        server_cpu = cpu_s(server.pid) - before[0]
        pg_cpu = _backends_cpu_s(args.admin_url, database) - before[1]
        host_cpu = host_busy_s() - before[2]
        commits = health["landing_fsyncs"] - before[3]
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    hist = new_hist()
    for i, c in result["ack_hist"].items():
        hist[int(i)] += c
    p50, p99 = quantiles(hist, (0.5, 0.99))
    if landing_url:
        from scripts.chaos import counting as count

        landed = set(count.landing_shared(landing_url))
    else:
        landed = landed_ids(data_dir)
    acked = len(result["acked"])
    span = max(1e-9, result["last_ack"] - result["first_sent"])
    return {"config": config, "acked": acked, "ack_rate": acked / span, "p50": p50, "p99": p99,
            "server_us": server_cpu / max(1, acked) * 1e6, "pg_us": pg_cpu / max(1, acked) * 1e6,
            "commits_s": commits / span, "server_cores": server_cpu / span, "load_cores": result["cpu_s"] / span,
            "other_cores": max(0.0, (host_cpu - server_cpu - pg_cpu - result["cpu_s"]) / span),
            "lost": sum(1 for d in result["acked"] if f"github:{d}" not in landed)}


def table(results: list[dict]) -> str:
    lines = ["| landing | acks/s | ack p50 ms | ack p99 ms | sidecar CPU µs/webhook | Postgres CPU µs/webhook "
             "| commits/s | cores: sidecar · load · other work | acked lost |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        lines.append(f"| {r['config']} | {r['ack_rate']:,.0f} | {_fmt(r['p50'])} | {_fmt(r['p99'])} | "
                     f"{r['server_us']:.0f} | {r['pg_us']:.0f} | {r['commits_s']:,.0f} | "
                     f"{r['server_cores']:.2f} · {r['load_cores']:.2f} · {r['other_cores']:.2f} | {r['lost']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--configs", default="files,postgres")
    parser.add_argument("--admin-url", default=os.environ.get("CC_PG_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    from scripts.chaos.harness import throwaway_database

    results = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-landing-") as work:
        for config in args.configs.split(","):
            if config == "postgres":
                with throwaway_database(args.admin_url, "cc_bench_landing") as url:
                    results.append(measure(config, args, Path(work), url))
            else:
                results.append(measure(config, args, Path(work), None))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
