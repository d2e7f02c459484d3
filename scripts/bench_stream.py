"""Webhook → client latency of the sidecar's rooms, against a Node.js Socket.IO relay (`make bench-stream`).

Usage: python -m scripts.bench_stream [--seconds 10] [--points 1000x100,2000x100]
                                     [--targets ws,ws:fixed,socketio,node] [--server-env CC_WS_BATCH_MS=5 ...]
                                     [--scrape-every 5]

One process tree on loopback. For each target and load point (events/s x clients): the server
(the sidecar under uvicorn with uvloop and httptools, or `streaming/js/peer.mjs`, a Node
Socket.IO server that only relays), the clients in their own processes (at most 250 each), all
subscribed to `events:all`, and a load generator in its own process posting the real GitHub
fixture `pull_request/opened` signed as GitHub does, each with a unique delivery id and its send
time in the PR title. A client takes each event's latency as its arrival time minus that send
time, per event even when a frame carries many (the sidecar's clients ask for batches: `?batch=1`,
`auth.batch`; the Node peer emits one frame per event). A sidecar target runs with the room
batching its name says (`ws`, `socketio`: `CC_ROOM_BATCH=adaptive`; `ws:fixed`, `socketio:fixed`:
the fixed `CC_WS_BATCH_MS` window), so old and new are measured in one run. Acks: the generator's
202s, their rate and latency; "lost" is every acknowledged delivery missing from the sidecar's
landing log afterwards. CPU: the server's CPU seconds (every thread) over the load, per
acknowledged webhook. `--scrape-every S` measures each sidecar point twice, without and then with
a Prometheus-like scrape of `/metrics` every S seconds during the load, so the same run says what
scraping costs a webhook. Prints the table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The shared recorded webhooks: the nearest `shared/fixtures` above the repo (a worktree sits deeper).
FIXTURE = next((path for folder in ROOT.parents if (path := folder / "shared" / "fixtures" / "github-webhooks" /
                "pull_request" / "opened.payload.json").is_file()),
               ROOT.parent / "shared" / "fixtures" / "github-webhooks" / "pull_request" / "opened.payload.json")
JS_DIR = ROOT / "streaming" / "js"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789abcdef0123"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"
MARKER = re.compile(r"bench-\d+-(\d{19})")
CLIENTS_PER_PROCESS = 250
# A point whose clients still receive after this long past the load (one frame per event to Python
# clients can take minutes) is cut: its delivered/sent says how far they got.
DRAIN_S = 60.0

# --- latency histogram: 10 µs buckets to 100 ms, then 1 ms buckets to 120 s -------------------------

FINE, COARSE = 10_000, 120_000


def new_hist() -> list[int]:
    return [0] * (FINE + COARSE)


def bucket(us: int) -> int:
    if us < 100_000:
        return max(0, us // 10)
    return FINE + min(us // 1000 - 100, COARSE - 1)


def bucket_us(index: int) -> float:
    return (index * 10 + 5) if index < FINE else (index - FINE + 100) * 1000 + 500


def quantiles(hist: list[int], qs: tuple[float, ...]) -> list[float | None]:
    total = sum(hist)
    if not total:
        return [None for _ in qs]
    out, seen, i = [], 0, 0
    for q in qs:
        target = max(1, int(q * total + 0.999999))
        while seen + hist[i] < target:
            seen += hist[i]
            i += 1
        out.append(bucket_us(i) / 1000)
    return out


# --- clients (own process) ---------------------------------------------------------------------


async def run_clients(args) -> None:
    import websockets

    hist = new_hist()
    stats = {"events": 0, "frames": 0, "max_us": 0, "connected": 0, "closed": 0}
    stop = asyncio.Event()

    def record(text: str) -> None:
        now = time.time_ns()
        worst = stats["max_us"]
        n = 0
        for sent in MARKER.findall(text):
            us = (now - int(sent)) // 1000
            hist[us // 10 if us < 100_000 else bucket(us)] += 1
            if us > worst:
                worst = us
            n += 1
        stats["events"] += n
        stats["frames"] += n > 0
        stats["max_us"] = worst

    async def client(i: int) -> None:
        batch = "1" if args.batch else "0"
        if args.kind == "ws":
            url = f"ws://127.0.0.1:{args.port}/ws?token={args.token}&batch={batch}"
        else:
            url = f"ws://127.0.0.1:{args.port}/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, max_size=None, compression=None, ping_interval=None,
                                      open_timeout=60) as ws:
            if args.kind == "ws":
                await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            else:  # Engine.IO open, Socket.IO connect with auth, then the seeds' subscribe
                await ws.recv()
                await ws.send("40" + json.dumps({"token": args.token, "batch": bool(args.batch)}))
                while not (await ws.recv()).startswith("40"):
                    pass
                await ws.send('42["subscribe",{"rooms":["events:all"]}]')
            stats["connected"] += 1
            async for frame in ws:
                if frame == "2":  # Engine.IO ping
                    await ws.send("3")
                    continue
                record(frame if isinstance(frame, str) else frame.decode())
        stats["closed"] += 1

    async def connect_all() -> list[asyncio.Task]:
        tasks = []
        for i in range(args.n):
            tasks.append(asyncio.create_task(client(i)))
            if i % 25 == 24:
                await asyncio.sleep(0.05)
        return tasks

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = await connect_all()
    progress = Path(args.out + ".progress")
    reported = False
    while not stop.is_set():
        if stats["connected"] == args.n and not reported:
            print("ready", flush=True)
            reported = True
        progress.write_text(str(stats["events"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    for task in tasks:
        task.cancel()
    Path(args.out).write_text(json.dumps({**stats, "cpu_s": time.process_time(),
                                          "hist": {i: c for i, c in enumerate(hist) if c}}))


# --- load generator (own process) ----------------------------------------------------------------


async def run_load(args) -> None:
    payload = json.loads(FIXTURE.read_text())
    payload["pull_request"]["title"] = "@@MARK@@"
    if args.unique_prs:  # a pull request of its own per delivery (else one PR, so one event id, for all)
        payload["number"] = payload["pull_request"]["number"] = "@@NUM@@"
    before, after = json.dumps(payload, separators=(",", ":")).encode().split(b"@@MARK@@")
    key = WEBHOOK_SECRET.encode()
    # `--saturate`: every connection sends its next webhook as soon as the last is answered, for
    # `--seconds` (closed loop: what the server acknowledges at its limit); else `--rate` a second.
    total = 1 << 62 if args.saturate else int(args.rate * args.seconds)
    queue: asyncio.Queue[int | None] = asyncio.Queue(args.connections if args.saturate else 0)
    ack_hist = new_hist()
    by_second: dict[int, list[float]] = {}  # second of the load -> ack latencies (ms) of webhooks sent in it
    acked: list[str] = []
    statuses: dict[str, int] = {}
    first_sent = [0.0]
    last_ack = [0.0]

    def pushed(seq: int, sent: int, delivery: str) -> bytes:
        """`POST /events`: a weather opportunity of its own (an event in no workflow), its send time in its title."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent / 1e9))
        body = json.dumps({"kind": "weather.opportunity", "data": {
            "id": f"bench-{args.run}-{seq}", "market": "bench", "city": f"bench-{seq}-{sent}", "contract": "high",
            "status": "open", "detected_at": stamp, "updated_at": stamp}}).encode()
        return (f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {args.events_token}\r\nX-Delivery-Id: {delivery}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        while (seq := await queue.get()) is not None:
            sent = time.time_ns()
            delivery = f"bench-{args.run}-{seq}"
            if args.events_token:
                writer.write(pushed(seq, sent, delivery))
            else:
                body = before + f"bench-{seq}-{sent}".encode() + after
                if args.unique_prs:
                    body = body.replace(b'"@@NUM@@"', str(100_000 + seq).encode())
                signature = hmac.new(key, body, hashlib.sha256).hexdigest()
                writer.write((f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: pull_request\r\n"
                              f"X-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: sha256={signature}\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            done = time.time_ns()
            statuses[status] = statuses.get(status, 0) + 1
            if status == "202":
                acked.append(delivery)
                ack_hist[bucket((done - sent) // 1000)] += 1
                by_second.setdefault(int(sent / 1e9 - first_sent[0]), []).append((done - sent) / 1e6)
                last_ack[0] = done / 1e9
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(args.connections)]
    await asyncio.sleep(0.2)
    start = time.monotonic()
    first_sent[0] = time.time()
    for seq in range(total):
        delay = start + (args.seconds if args.saturate else seq / args.rate) - time.monotonic()
        if args.saturate and delay <= 0:
            total = seq
            break
        if not args.saturate and delay > 0.001:
            await asyncio.sleep(delay)
        await queue.put(seq)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    Path(args.out).write_text(json.dumps({
        "sent": total, "statuses": statuses, "acked": acked, "first_sent": first_sent[0], "last_ack": last_ack[0],
        "ack_hist": {i: c for i, c in enumerate(ack_hist) if c},
        "ack_p99_by_s": [round(sorted(v)[int(0.99 * (len(v) - 1))], 1) for _, v in sorted(by_second.items())]}))


# --- orchestration -------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def start_server(target: str, port: int, data_dir: Path, log, server_env: dict[str, str] | None = None,
                 settle: bool = True) -> subprocess.Popen:
    if target == "node":
        proc = subprocess.Popen(["node", "peer.mjs", str(port), WEBHOOK_SECRET], cwd=JS_DIR, stdout=log, stderr=log)
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        return proc
    env = {**os.environ, "CC_DATA_DIR": str(data_dir), "CC_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "CC_JWT_SECRET": JWT_SECRET,
           # Every client is the one `bench` token, and the load is one sender: limits checked (their cost
           # is part of the figure) but never reached.
           "CC_RATE_LIMIT_SUBSCRIBE": "unlimited", "CC_RATE_LIMIT_WEBHOOK": "50000/second", **(server_env or {})}
    args = [sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)
    _wait_ready(f"http://127.0.0.1:{port}/healthz", proc, settle)
    return proc


def _wait_ready(url: str, proc: subprocess.Popen, settle: bool = True, timeout: float = 120) -> None:
    """Until the sidecar has started: the live workflow state has compiled its chain (`/healthz`
    says `ready`) and the alert monitor's first round is over (`alert_monitor.rounds`). The load
    measures a running sidecar, not its first seconds: compiling takes the core, and the first
    round reads back the landing log and every rule's files (a second's transient, `ack p99 by
    second` showed it; without `settle`, `--no-settle`, the load starts without waiting for it)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            health = requests.get(url, timeout=5).json()
            monitor = health.get("alert_monitor")
            settled = not settle or not monitor or not monitor.get("evaluates") or monitor.get("rounds")
            if health.get("live_state") == "ready" and settled:
                return
        except requests.RequestException:  # not answering yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not report live_state ready (and the alert monitor's first round) in {timeout} s")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its threads used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def landed_ids(data_dir: Path) -> set[str]:
    ids = set()
    for path in (data_dir / "landing" / "webhooks").glob("date=*.jsonl"):
        with path.open("rb") as f:
            for line in f:
                match = re.search(rb'"id":"(github:[^"]+)"', line[:300])
                if match:
                    ids.add(match.group(1).decode())
    return ids


class Scraper:
    """Reads `/metrics` every `every_s` seconds, as Prometheus would, until stopped."""

    def __init__(self, port: int, every_s: float) -> None:
        self.url, self.every_s = f"http://127.0.0.1:{port}/metrics", every_s
        self.took_s: list[float] = []
        self.size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        if self.every_s:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        import requests

        with requests.Session() as session:
            while not self._stop.wait(self.every_s):
                started = time.perf_counter()
                response = session.get(self.url, timeout=30)
                self.took_s.append(time.perf_counter() - started)
                self.size = len(response.content)


def measure(target: str, rate: int, clients: int, seconds: float, work: Path,
            server_env: dict[str, str] | None = None, scrape_every_s: float = 0.0, settle: bool = True) -> dict:
    """One target (`ws`, `ws:fixed`, `socketio`, `socketio:fixed`, `node`) at one load point; with
    `scrape_every_s`, `/metrics` read that often during the load."""
    from streaming.auth import issue_token

    label = target
    target, _, mode = target.partition(":")
    if target != "node":
        server_env = {**(server_env or {}), "CC_ROOM_BATCH": mode or "adaptive"}
    run = secrets.token_hex(4)
    point = work / f"{label.replace(':', '-')}-{rate}-{clients}{f'-scraped{scrape_every_s:g}' if scrape_every_s else ''}"
    data_dir = point / "data"
    point.mkdir(parents=True)
    port = _free_port()
    log = (point / "server.log").open("wb")
    server = start_server(target, port, data_dir, log, server_env, settle)
    client_procs, outs = [], []
    try:
        kind = "ws" if target == "ws" else "sio"
        batch = target != "node"
        token = issue_token(JWT_SECRET, "bench", ttl_s=3600)
        remaining = clients
        while remaining:
            n = min(CLIENTS_PER_PROCESS, remaining)
            remaining -= n
            out = point / f"clients-{len(outs)}.json"
            outs.append(out)
            client_procs.append(subprocess.Popen(
                [sys.executable, "-m", "scripts.bench_stream", "clients", "--kind", kind, "--port", str(port),
                 "--token", token, "--n", str(n), "--out", str(out)] + (["--batch"] if batch else []),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True))
        for proc in client_procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"clients did not connect; see {point / 'server.log'}")
        load_out = point / "load.json"
        server_cpu = _cpu_s(server.pid)
        with Scraper(port, scrape_every_s if target != "node" else 0.0) as scraper:
            subprocess.run([sys.executable, "-m", "scripts.bench_stream", "load", "--port", str(port), "--rate",
                            str(rate), "--seconds", str(seconds), "--run", run, "--out", str(load_out)], cwd=ROOT,
                           check=True, stderr=log)
        load = json.loads(load_out.read_text())
        server_cpu = _cpu_s(server.pid) - server_cpu  # the load's span: acks are in, fan-out mostly done
        expected = len(load["acked"]) * clients
        # Drain: until every client has every acknowledged event, nothing moved for 3 s, or DRAIN_S.
        last, still_since, drain_end = -1, time.monotonic(), time.monotonic() + DRAIN_S
        while time.monotonic() - still_since < 3 and time.monotonic() < drain_end:
            got = sum(int(p.read_text() or 0) for p in (Path(str(o) + ".progress") for o in outs) if p.exists())
            if got >= expected:
                break
            if got != last:
                last, still_since = got, time.monotonic()
            time.sleep(0.2)
    finally:
        for proc in client_procs:
            proc.send_signal(signal.SIGTERM)
        for proc in client_procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _stop(server)
        log.close()
    hist, delivered, frames, worst, clients_cpu = new_hist(), 0, 0, 0, 0.0
    for out in outs:
        result = json.loads(out.read_text())
        delivered += result["events"]
        frames += result["frames"]
        clients_cpu += result["cpu_s"]
        worst = max(worst, result["max_us"])
        for i, c in result["hist"].items():
            hist[int(i)] += c
    ack_hist = new_hist()
    for i, c in load["ack_hist"].items():
        ack_hist[int(i)] += c
    acked = len(load["acked"])
    lost = None
    if target != "node":
        landed = landed_ids(data_dir)
        lost = sum(1 for d in load["acked"] if f"github:{d}" not in landed)
    span = max(1e-9, load["last_ack"] - load["first_sent"])
    p50, p99 = quantiles(hist, (0.5, 0.99))
    a50, a99 = quantiles(ack_hist, (0.5, 0.99))
    return {"target": label, "rate": rate, "clients": clients, "sent": load["sent"], "acked": acked,
            "events_per_frame": delivered / frames if frames else None,
            "statuses": load["statuses"], "ack_rate": acked / span, "ack_p50": a50, "ack_p99": a99,
            "p50": p50, "p99": p99, "max": worst / 1000, "delivered": delivered, "expected": expected, "lost": lost,
            "server_cpu_us": server_cpu / max(1, acked) * 1e6, "server_cores": server_cpu / span,
            "clients_cores": clients_cpu / span, "scrape_every_s": scrape_every_s if scraper.took_s else 0.0,
            "scrapes": len(scraper.took_s), "scrape_ms": 1000 * sum(scraper.took_s) / max(1, len(scraper.took_s)),
            "scrape_bytes": scraper.size, "ack_p99_by_s": load.get("ack_p99_by_s", [])}


def _fmt(value, digits=1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("clients", "load"):
        parser = argparse.ArgumentParser()
        parser.add_argument("role")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--kind", default="ws")
        parser.add_argument("--token", default="")
        parser.add_argument("--n", type=int, default=1)
        parser.add_argument("--batch", action="store_true")
        parser.add_argument("--rate", type=float, default=1000)
        parser.add_argument("--seconds", type=float, default=10)
        parser.add_argument("--run", default="x")
        parser.add_argument("--connections", type=int, default=64)
        parser.add_argument("--unique-prs", action="store_true")
        parser.add_argument("--saturate", action="store_true", help="closed loop for --seconds (ignores --rate)")
        parser.add_argument("--events-token", default="", help="post weather events to /events instead")
        args = parser.parse_args(argv)
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(run_clients(args) if args.role == "clients" else run_load(args))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="load per point")
    parser.add_argument("--points", default="1000x100,2000x100", help="events/s x clients, comma-separated")
    parser.add_argument("--targets", default="ws,ws:fixed,socketio,node",
                        help="ws, socketio (adaptive batching), ws:fixed, socketio:fixed (the fixed window), node")
    parser.add_argument("--server-env", action="append", default=[], metavar="CC_NAME=value",
                        help="settings for the sidecar, e.g. CC_WS_BATCH_MS=5 (repeatable)")
    parser.add_argument("--no-settle", action="store_true",
                        help="start the load once the live state is ready, without waiting for the alert monitor's first round")
    parser.add_argument("--scrape-every", type=float, default=0.0, metavar="S",
                        help="also measure each sidecar point with /metrics read every S seconds during the load")
    args = parser.parse_args(argv)
    server_env = dict(item.split("=", 1) for item in args.server_env)
    targets = args.targets.split(",")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}: expected some of {', '.join(TARGETS)}")
    if "node" in targets and not (JS_DIR / "node_modules" / "socket.io").is_dir():
        print("skipping the Node peer: node or `npm ci` in streaming/js missing (make install)")
        targets.remove("node")
    points = [tuple(int(x) for x in p.split("x")) for p in args.points.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-stream-") as tmp:
        for rate, clients in points:
            for target, scrape in ((t, s) for t in targets
                                   for s in ((0.0, args.scrape_every) if args.scrape_every and t != "node" else (0.0,))):
                scraped = f", /metrics every {scrape:g} s" if scrape else ""
                print(f"{target}: {rate} events/s, {clients} clients{scraped} ...", flush=True)
                result = measure(target, rate, clients, args.seconds, Path(tmp), server_env, scrape,
                                 not args.no_settle)
                results.append(result)
                if result["scrapes"]:
                    print(f"  {result['scrapes']} scrapes, {result['scrape_ms']:.1f} ms and "
                          f"{result['scrape_bytes']:,} bytes each", flush=True)
                print(f"  p50 {_fmt(result['p50'])} ms  p99 {_fmt(result['p99'])} ms  max {_fmt(result['max'])} ms  "
                      f"delivered {result['delivered']}/{result['expected']}  acks {result['acked']}/{result['sent']} "
                      f"({result['ack_rate']:.0f}/s, p50 {_fmt(result['ack_p50'])} p99 {_fmt(result['ack_p99'])} ms)  "
                      f"lost {result['lost']}  events/frame {_fmt(result['events_per_frame'], 2)}  "
                      f"server CPU {result['server_cpu_us']:.0f} µs/webhook "
                      f"({result['server_cores']:.2f} cores; clients {result['clients_cores']:.2f})", flush=True)
                # Where in the load the tail was: a start-up transient, or throughout.
                print(f"  ack p99 by second of the load, ms: {' '.join(f'{v:g}' for v in result['ack_p99_by_s'])}",
                      flush=True)
    print()
    print(table(results, server_env))


TARGETS = ("ws", "ws:fixed", "socketio", "socketio:fixed", "node")


def _name(target: str, server_env: dict[str, str]) -> str:
    endpoint, _, mode = target.partition(":")
    if endpoint == "node":
        return "Node socket.io relay"
    window = float(server_env.get("CC_WS_BATCH_MS", 8))
    return {"ws": "/ws", "socketio": "Socket.IO"}[endpoint] + (f" (fixed {window:g} ms)" if mode else " (adaptive)")


def table(results: list[dict], server_env: dict[str, str]) -> str:
    """The run as a Markdown table: each row against the Node relay's at the same point."""
    peer = {(r["rate"], r["clients"]): r for r in results if r["target"] == "node"}

    def versus(r: dict, key: str) -> str:
        ref = peer.get((r["rate"], r["clients"]))
        if not ref or r is ref or not ref[key] or r[key] is None:
            return "–"
        return f"{r[key] / ref[key]:.2f}×"

    lines = ["| endpoint | events/s | clients | p50 ms | p99 ms | max ms | p50 / p99 vs Node relay | delivered/sent "
             "| events/frame | acks/s | ack p50 ms | ack p99 ms | acked lost | server CPU µs/webhook "
             "| server / clients cores |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        share = r["delivered"] / r["expected"] if r["expected"] else 0
        scraped = f", /metrics every {r['scrape_every_s']:g} s" if r.get("scrape_every_s") else ""
        lines.append(
            f"| {_name(r['target'], server_env)}{scraped} | {r['rate']:,} | {r['clients']} | {_fmt(r['p50'])} | {_fmt(r['p99'])} "
            f"| {_fmt(r['max'])} | {versus(r, 'p50')} / {versus(r, 'p99')} "
            f"| {r['delivered']:,}/{r['expected']:,} ({share:.1%}) | {_fmt(r['events_per_frame'], 2)} "
            f"| {r['ack_rate']:,.0f} | {_fmt(r['ack_p50'])} | {_fmt(r['ack_p99'])} "
            f"| {'–' if r['lost'] is None else r['lost']} | {r['server_cpu_us']:.0f} "
            f"| {r['server_cores']:.2f} / {r['clients_cores']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
