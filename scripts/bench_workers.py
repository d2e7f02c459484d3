"""Acknowledged webhooks a second at saturation: one sidecar worker against two (`make bench-workers`).

Usage: python -m scripts.bench_workers [--seconds 10] [--configs 1,2] [--connections 64] [--clients 4]

Each configuration in one run, one after the other, on loopback: a Redis of its own
(`redis-server`, no persistence), the sidecar launcher on one port with `CC_SIDECAR_WORKERS` set
(`1` and `2` share the same Redis work per webhook: claims, landed markers, live rows and rooms;
`1-local` is one worker without Redis, for reference), a few WebSocket clients on `events:all`
in their own process and `scripts.bench_stream`'s signed-webhook load generator in its own
process, in closed loop (`--saturate`: each connection sends its next unique pull request as
soon as the last is answered) for `--seconds`, after a short warm-up. Few clients, so that the
clients do not take the cores the workers need. Reports per configuration the acknowledged
webhooks a second, ack latency p50/p99, the share each worker landed, the server's CPU per
webhook (every worker and thread), the cores taken by the server, the load generator, the
clients, Redis and everything else on the host ("other work": a figure taken beside it is
loaded), and the clients' delivered/expected; then the 2-worker / 1-worker ratio. Nothing is
asserted: on a host shared with other work the figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from scripts.bench_stream import (
    FIXTURE,
    JWT_SECRET,
    ROOT,
    WEBHOOK_SECRET,
    _fmt,
    _free_port,
    landed_ids,
    new_hist,
    quantiles,
)

WARMUP_S = 2.0


def start(config: str, port: int, data_dir: Path, redis_url: str, log) -> tuple[subprocess.Popen, int]:
    workers = int(config.split("-")[0])
    env = {**os.environ, "CC_DATA_DIR": str(data_dir), "CC_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "CC_JWT_SECRET": JWT_SECRET, "CC_SIDECAR_WORKERS": str(workers),
           "CC_RATE_LIMIT_WEBHOOK": "50000/second"}  # one sender at the workers' limit: checked, never reached
    if not config.endswith("-local"):
        env["CC_REDIS_URL"] = f"{redis_url}?channel=bench-{secrets.token_hex(4)}"
    proc = subprocess.Popen([sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env, stdout=log, stderr=log)
    seen: set = set()
    deadline = time.monotonic() + 120
    while len(seen) < workers:  # every worker answered (the kernel picks one per connection)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sidecar ({config}) did not start; see {log.name}")
        try:
            seen.add(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["worker"])
        except requests.RequestException:
            time.sleep(0.1)
    return proc, workers


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (the supervisor's workers)."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def load(port: int, seconds: float, connections: int, out: Path, log) -> dict:
    """bench_stream's load generator in closed loop; its output and its own CPU seconds (`cpu_s`)."""
    proc = subprocess.Popen([sys.executable, "-m", "scripts.bench_stream", "load", "--port", str(port), "--saturate",
                             "--seconds", str(seconds), "--connections", str(connections), "--unique-prs",
                             "--run", secrets.token_hex(4), "--out", str(out)], cwd=ROOT, stderr=log)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"the load generator exited with {proc.returncode}; see {log.name}")
    return {**json.loads(out.read_text()), "cpu_s": usage.ru_utime + usage.ru_stime}


def host_busy_s() -> float:
    """CPU seconds every core of the host spent on anything but idling, so far."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def share_by_worker(data_dir: Path) -> str:
    """Each landing file's share of the lines (`date=D.w1.jsonl` → w1)."""
    lines: Counter = Counter()
    for path in (data_dir / "landing" / "webhooks").glob("date=*.jsonl"):
        name = path.name.split(".")[1] if path.name.count(".") == 2 else "–"
        with path.open("rb") as handle:
            lines[name] += sum(1 for _ in handle)
    total = sum(lines.values()) or 1
    return " ".join(f"{name} {n / total:.0%}" for name, n in sorted(lines.items()))


def measure(config: str, args, work: Path, redis_url: str, redis_pid: int) -> dict:
    point = work / f"{len(list(work.iterdir()))}-{config}"
    data_dir = point / "data"
    point.mkdir(parents=True)
    port = _free_port()
    log = (point / "server.log").open("wb")
    server, workers = start(config, port, data_dir, redis_url, log)
    clients = None
    try:
        from streaming.auth import issue_token

        out = point / "clients.json"
        clients = subprocess.Popen(
            [sys.executable, "-m", "scripts.bench_stream", "clients", "--kind", "ws", "--port", str(port),
             "--token", issue_token(JWT_SECRET, "bench", ttl_s=3600), "--n", str(args.clients), "--out", str(out),
             "--batch"], cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        if clients.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the clients did not connect; see {point / 'server.log'}")
        warmup = load(port, WARMUP_S, args.connections, point / "warmup.json", log)
        pids = (server.pid, redis_pid, clients.pid)
        before, host_before = [cpu_s(pid) for pid in pids], host_busy_s()
        result = load(port, args.seconds, args.connections, point / "load.json", log)
        server_cpu, redis_cpu, clients_cpu = (cpu_s(pid) - was for pid, was in zip(pids, before, strict=True))
        host_cpu = host_busy_s() - host_before
        expected = (len(warmup["acked"]) + len(result["acked"])) * args.clients
        time.sleep(2)  # the last frames
    finally:
        if clients is not None:
            clients.send_signal(signal.SIGTERM)
            clients.wait(30)
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    delivered = json.loads(out.read_text())["events"]
    hist = new_hist()
    for i, c in result["ack_hist"].items():
        hist[int(i)] += c
    p50, p99 = quantiles(hist, (0.5, 0.99))
    landed = landed_ids(data_dir)
    acked = len(result["acked"])
    span = max(1e-9, result["last_ack"] - result["first_sent"])
    return {"config": config, "workers": workers, "acked": acked, "ack_rate": acked / span, "p50": p50, "p99": p99,
            "statuses": result["statuses"], "server_cores": server_cpu / span,
            "server_cpu_us": server_cpu / max(1, acked) * 1e6, "share": share_by_worker(data_dir),
            "lost": sum(1 for d in result["acked"] if f"github:{d}" not in landed), "delivered": delivered,
            "expected": expected, "load_cores": result["cpu_s"] / span, "redis_cores": redis_cpu / span,
            "clients_cores": clients_cpu / span,
            "other_cores": max(0.0, (host_cpu - server_cpu - redis_cpu - result["cpu_s"] - clients_cpu) / span)}


def table(results: list[dict]) -> str:
    lines = ["| workers | acks/s | ack p50 ms | ack p99 ms | landed by | server CPU µs/webhook "
             "| cores: server · load · clients · Redis · other work | client events delivered/expected | acked lost |",
             "|---|---:|---:|---:|---|---:|---|---|---:|"]
    for r in results:
        name = f"{r['workers']} (no Redis)" if r["config"].endswith("-local") else str(r["workers"])
        lines.append(f"| {name} | {r['ack_rate']:,.0f} | {_fmt(r['p50'])} | {_fmt(r['p99'])} | {r['share']} "
                     f"| {r['server_cpu_us']:.0f} | {cores(r)} | {r['delivered']:,}/{r['expected']:,} | {r['lost']} |")
    return "\n".join(lines)


def cores(r: dict) -> str:
    return " · ".join(f"{r[k]:.2f}" for k in ("server_cores", "load_cores", "clients_cores", "redis_cores",
                                               "other_cores"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="saturation per configuration")
    parser.add_argument("--configs", default="1,2",
                        help="worker counts, comma-separated, in order (`1-local`: no Redis; `1,2,1,2`: each twice)")
    parser.add_argument("--connections", type=int, default=64, help="the load generator's concurrent requests")
    parser.add_argument("--clients", type=int, default=4, help="WebSocket clients on events:all")
    args = parser.parse_args(argv)
    if not FIXTURE.is_file():
        raise SystemExit(f"the shared GitHub webhook fixture is missing: {FIXTURE}")
    configs = args.configs.split(",")
    if any(not re.fullmatch(r"\d+(-local)?", c) for c in configs):
        parser.error("--configs: worker counts such as 1,2 (or 1-local)")
    from scripts.chaos.replicas_redis import RedisServer

    results = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-workers-") as tmp:
        redis_server = RedisServer(Path(tmp)).start()
        try:
            for config in configs:
                print(f"{config} worker(s): saturating for {args.seconds:g} s with {args.connections} connections, "
                      f"{args.clients} clients ...", flush=True)
                result = measure(config, args, Path(tmp), redis_server.url, redis_server.proc.pid)
                results.append(result)
                print(f"  {result['ack_rate']:,.0f} acks/s (p50 {_fmt(result['p50'])} ms, p99 {_fmt(result['p99'])} "
                      f"ms), landed by {result['share']}, cores (server · load · clients · Redis · other work) "
                      f"{cores(result)}, lost {result['lost']}, statuses {result['statuses']}", flush=True)
        finally:
            redis_server.stop()
    print()
    print(table(results))
    rates = {c: statistics.median(r["ack_rate"] for r in results if r["config"] == c) for c in set(configs)}
    if "1" in rates and "2" in rates:  # a configuration run more than once (`--configs 1,2,1,2`): its median
        print(f"\n2 workers / 1 worker: {rates['2'] / rates['1']:.2f}× acknowledged webhooks a second "
              f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
