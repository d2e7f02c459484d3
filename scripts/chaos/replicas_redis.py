"""Two sidecar replicas over one Redis: Redis killed and restarted mid-stream, then a replica `kill -9`ed.

Both replicas share one data dir, as the README's deployment has it (each writing its own landing
files; a delivery a dying replica landed but never acknowledged is found by the other through the
claim it left in Redis, and landed once), and one Redis of their own (`redis-server --port <free> --save ""`, never the
shared one). WebSocket clients of each replica are subscribed to `events:all`; a client whose
connection drops reconnects (to the other replica when its own is gone), resubscribes and reads
`/api/events` to catch up, as a dashboard does. A retrying sender posts to both replicas and fails
over to the one left when a replica dies, with the same delivery id.

After each fault, probe deliveries are posted to every live replica until one reaches every client
of every replica ("rooms keep flowing"); the time from the fault to that is the recovery. At the
end every acknowledged delivery must be once in the landing log and in `raw/webhooks/deliveries`,
and each of its events in what every client received (live, or by its REST reads when it caught up
after a reconnect) and in what the surviving replica's `/api/events` serves. The marts are an earlier build's, holding none of these
events (a dbt build is the kill-storm scenarios' business): the REST reads serve the live events.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.chaos import Context, Row, Scenario
from scripts.chaos import counting as count
from scripts.chaos.deliveries import Connection, Deliveries, Delivery, RetryingSender, Tally
from scripts.chaos.harness import SECRETS, Sidecar, SidecarWorkers, free_port

FLOW_TIMEOUT_S = 20.0  # a fault after which no probe reaches every client this long is a failure


class RedisServer:
    """A `redis-server` of our own on a free loopback port, restartable (no persistence)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer in 10 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


@dataclass
class Client:
    """One dashboard: a WebSocket on `events:all`, reconnecting and catching up by REST."""

    name: str
    home: int
    received: Counter = field(default_factory=Counter)  # event id -> times received live
    first_seen: dict[str, float] = field(default_factory=dict)
    by_rest: set[str] = field(default_factory=set)
    on: int | None = None  # the replica it is connected to and subscribed on
    connects: list[tuple[float, int]] = field(default_factory=list)


async def _client(client: Client, replicas: list[Sidecar], stop: asyncio.Event) -> None:
    import websockets

    target = client.home
    while not stop.is_set():
        server = replicas[target]
        try:
            async with websockets.connect(f"{server.ws_url}?token={server.token()}", open_timeout=3,
                                          max_size=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
                while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "subscribed":
                    pass
                client.on = target
                client.connects.append((time.monotonic(), target))
                # Caught up after (re)subscribing: what was published while it was away. Twice: a
                # body the REST API cached just before the subscription may lack the last events.
                for pause in (0.0, 0.5):
                    await asyncio.sleep(pause)
                    client.by_rest.update(await asyncio.to_thread(count.rest_events, server.url, server.token()))
                while not stop.is_set():
                    try:
                        text = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    message = json.loads(text)
                    event = (message.get("payload") or {}).get("id") if isinstance(message, dict) else None
                    if event and message.get("room") == "events:all":
                        client.received[event] += 1
                        client.first_seen.setdefault(event, time.monotonic())
        except Exception:  # noqa: BLE001
            # Any way a connection ends (a killed replica, a refused connect, a REST read that
            # failed) is a reconnect, to the other replica.
            client.on = None
            target = 1 - target
            await asyncio.sleep(0.2)
    client.on = None


def _probe(deliveries: Deliveries) -> Delivery:
    """A Charlie activity: one event, small, signed."""
    deliveries.n += 1
    return deliveries._charlie()  # noqa: SLF001 (one kind of the generator's, outside its mix)


async def _post(server: Sidecar, delivery: Delivery) -> bool:
    connection = Connection("127.0.0.1", server.port)
    try:
        status, _, _ = await connection.post(delivery.route, delivery.headers, delivery.body, 5)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        connection.close()
    return 200 <= status < 300


async def flowing_again(fault_at: float, live: list[Sidecar], clients: list[Client], deliveries: Deliveries,
                        probes: list[Delivery]) -> float | None:
    """Post a probe to each live replica until one round reaches every client; seconds from the fault."""
    deadline = fault_at + FLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        batch = []
        for server in live:
            probe = _probe(deliveries)
            if await _post(server, probe):
                probes.append(probe)
                batch.append(probe.events[0])
        if len(batch) == len(live):
            wait_until = min(time.monotonic() + 3, deadline)
            while time.monotonic() < wait_until:
                if all(all(e in c.received for e in batch) for c in clients):
                    return max(c.first_seen[e] for c in clients for e in batch) - fault_at
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(0.2)
    return None


def empty_marts(data_dir: Path) -> None:
    """A serving snapshot as an earlier build left it, with none of this run's events: what
    `/api/events` reads beside the live events (without any snapshot it answers 503)."""
    import duckdb

    path = data_dir / "serving" / "marts.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ["event_id", "workflow_id", "source", "event_type", "actor_id", "actor_name", "actor_type",
            "actor_instance_id", "target_type", "target_id", "target_title", "target_url", "correlation_id",
            "parent_event_id", "correlation_keys", "tags", "payload"]
    with duckdb.connect(str(path)) as con:
        con.execute(f"create table fct_workflow_events ({', '.join(f'{c} varchar' for c in text)}, "
                    "correlation_key_count integer, event_at timestamp, ingested_at timestamp)")
        con.execute("create table int_correlation_keys_linked (correlation_key varchar, workflow_id varchar)")
        con.execute("create table serving_snapshot as select ?::timestamp as built_at",
                    [datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)])


def _raw_once(data_dir: Path, landing_url: str | None = None) -> Counter:
    """`raw/webhooks/deliveries` for each landed day, as `webhooks_job` lands it (from the shared
    landing in Postgres with `landing_url`)."""
    from dagster import AssetKey, DagsterInstance, materialize

    from cc_assets.sources import raw_assets
    from resources.platform import PlatformResource
    from resources.storage.landing import LandingLog
    from resources.storage.pg_landing import PgLanding

    raw = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
    platform = PlatformResource(data_dir=str(data_dir), landing_url=landing_url)
    landing = PgLanding(landing_url) if landing_url else LandingLog(data_dir / "landing")
    for day in [d.isoformat() for d in landing.days("webhooks")]:
        with DagsterInstance.ephemeral() as instance:
            if not materialize([raw], partition_key=day, resources={"platform": platform}, instance=instance).success:
                raise RuntimeError(f"raw/webhooks/deliveries failed for {day}")
    return count.raw_deliveries(data_dir)


@dataclass
class Outcome:
    row: Row
    lost: set[str]
    duplicated: set[str]
    recoveries: dict[str, float | None]
    clients: list[Client]
    tally: Tally
    faults: dict[str, float] = field(default_factory=dict)  # monotonic time of each fault
    landed_twice: set[str] = field(default_factory=set)  # by the dying replica and by the other


def attack(ctx: Context, *, rate: float = 150, clients_per_replica: int = 2, storm_s: float | None = None,
           concurrency: int = 16, workers: bool = False, landing_url: str | None = None) -> Outcome:
    """With `workers`, the same on `CC_SIDECAR_WORKERS=2` behind one port (`workers_redis`): the
    clients and the sender reconnect to that port, and the worker killed is started again. With
    `landing_url` (`replicas_pg`), the replicas have a data dir each, as on two hosts, and land in
    that Postgres (`CC_LANDING_URL`): its unique keys, not Redis, dedupe between them."""
    storm_s = storm_s if storm_s is not None else max(10.0, ctx.seconds - 15)
    data_dir = ctx.workdir / "data"
    empty_marts(data_dir)
    redis_server = RedisServer(ctx.workdir).start()
    env = {**SECRETS, "CC_REDIS_URL": f"{redis_server.url}?channel=cc-chaos-{uuid.uuid4().hex[:8]}"}
    if landing_url:
        other = ctx.workdir / "data-b"
        empty_marts(other)
        env["CC_LANDING_URL"] = landing_url
        replicas = [Sidecar(data_dir, env, worker="a"), Sidecar(other, env, worker="b")]
        kill, name = replicas[0].kill, "replicas_pg"
    elif workers:
        server = SidecarWorkers(data_dir, env)
        replicas, kill, name = [server, server], (lambda: server.kill_worker("w1")), "workers_redis"
    else:
        replicas = [Sidecar(data_dir, env, worker="a"), Sidecar(data_dir, env, worker="b")]
        kill, name = replicas[0].kill, "replicas_redis"
    try:
        for server in dict.fromkeys(replicas):
            server.start()
        return asyncio.run(_scenario(ctx, name, replicas, kill, redis_server, data_dir, rate, clients_per_replica,
                                     storm_s, concurrency, landing_url))
    finally:
        for server in dict.fromkeys(replicas):
            server.stop()
        redis_server.stop(signal.SIGKILL)


async def _scenario(ctx: Context, name: str, replicas: list[Sidecar], kill, redis_server: RedisServer, data_dir: Path,
                    rate: float, clients_per_replica: int, storm_s: float, concurrency: int,
                    landing_url: str | None = None) -> Outcome:
    deliveries = Deliveries(ctx.seed)
    probes: list[Delivery] = []
    stop = asyncio.Event()
    clients = [Client(f"{'ab'[r]}{i}", r) for r in range(2) for i in range(clients_per_replica)]
    tasks = [asyncio.create_task(_client(c, replicas, stop)) for c in clients]
    deadline = time.monotonic() + 15
    while any(c.on is None for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the WebSocket clients did not subscribe in 15 s")
        await asyncio.sleep(0.05)

    sender = RetryingSender([("127.0.0.1", s.port) for s in replicas], rate, concurrency)
    recoveries: dict[str, float | None] = {}
    fault_at: dict[str, float] = {}
    started = time.monotonic()

    async def faults() -> None:
        await asyncio.sleep(storm_s * 0.25)
        moment = fault_at["redis restart"] = time.monotonic()
        await asyncio.to_thread(redis_server.stop, signal.SIGKILL)  # a crash; no persistence: it comes back empty
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.start)
        recoveries["redis restart"] = await flowing_again(moment, replicas, clients, deliveries, probes)
        await asyncio.sleep(max(0.0, started + storm_s * 0.6 - time.monotonic()))
        moment = fault_at["replica kill"] = time.monotonic()
        await asyncio.to_thread(kill)
        recoveries["replica kill"] = await flowing_again(moment, replicas[1:], clients, deliveries, probes)

    faulting = asyncio.create_task(faults())
    tally = await sender.run(deliveries, storm_s)
    await faulting
    # Settle: the last messages delivered, the REST bodies past their live refresh.
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)

    survivor = replicas[1]
    served = await asyncio.to_thread(count.rest_events, survivor.url, survivor.token())
    acked = [a.delivery for a in tally.acks.values()] + probes
    ledger = count.Ledger(acked)
    # Every client must hold every event: received live, or read when it caught up after a
    # reconnect. An event one client lacks counts as lost; one given twice to a client, duplicated.
    live = count.Finding("clients")
    for c in clients:
        mine = ledger.events("client", Counter(dict.fromkeys(set(c.received) | c.by_rest, 1)))
        twice = {e for e, n in c.received.items() if n > 1}
        live.lost |= mine.lost
        live.duplicated |= {d.id for d in acked if twice.intersection(d.events)}
    rest = ledger.events("rest", served)
    landed = count.landing_shared(landing_url) if landing_url else count.landing(data_dir)
    landing = ledger.deliveries("landing", landed)
    raw = ledger.deliveries("raw", await asyncio.to_thread(_raw_once, data_dir, landing_url))
    lost, dup, checked = count.summary([landing, raw, live, rest])
    not_flowing = [name for name, took in recoveries.items() if took is None]
    notes = [f"{tally.sent:,} deliveries + {len(probes)} probes at {tally.sent / storm_s:.0f}/s, "
             f"{len(clients)} clients", checked,
             "recovery " + ", ".join(f"{k} {'NEVER' if v is None else f'{v:.1f} s'}" for k, v in recoveries.items()),
             f"{sum(1 for n in landed.values() if n > 1)} landed twice"]
    if dup:
        # Landed by the replica that died before its ack, then again by the other: the claim
        # it held should have told the other (streaming/claims.py).
        notes.append(f"{len(dup & {d for d, n in landed.items() if n > 1})} of the duplicated were landed by both "
                     "replicas")
    if not_flowing:
        notes.append(f"rooms stopped flowing after: {', '.join(not_flowing)}")
    if tally.unacked:
        notes.append(f"{len(tally.unacked)} never acked")
    if tally.refused_4xx:
        notes.append(f"4xx to valid deliveries: {tally.refused_4xx[:2]}")
    took = [v for v in recoveries.values() if v is not None]
    row = Row(name, attempts=tally.sent + len(probes), acked_lost=len(lost) + len(not_flowing),
              duplicated=len(dup), errors_5xx=len(tally.errors_5xx),
              recovery_s=max(took) if took and not not_flowing else None, notes="; ".join(notes))
    twice = {d for d, n in landed.items() if n > 1}
    return Outcome(row, lost, dup, recoveries, clients, tally, fault_at, twice)


def run(ctx: Context) -> list[Row]:
    return [attack(ctx).row]


SCENARIO = Scenario("replicas_redis", run, seconds=60, needs=("redis",))

