"""The system metrics agent: CPU, memory, disk and network of this host every 30 s (psutil;
`CC_METRICS_INTERVAL_S`).

`python -m resources.ingest.metrics_agent [--interval 30] [--once]` takes one sample per tick and,
with `CC_EVENTS_API_TOKEN` set, sends it to the sidecar (`POST $CC_SIDECAR_URL/events`, kind
`system.metrics`, the token as Bearer), which lands it and pushes it to the `metrics:realtime`
room at once. Without a token it lands the sample itself in the landing log stream
`system_metrics` under `$CC_DATA_DIR/landing`, where the `raw/system/metrics` asset picks it up.
Run one per host.

While the sidecar cannot take samples (down, timing out, 5xx, refusing the token) the agent
lands them in the landing log (the durable fallback: the next dbt build has them) and keeps
them in an outbox, `$CC_DATA_DIR/state/metrics_agent/outbox.jsonl`, which survives a restart of
the agent. Every tick sends the outbox first, oldest first, in batches of `BATCH_MAX`, so the
sidecar catches up once it is back. Nothing is lost: a sample leaves the outbox only once the
sidecar acknowledged it (or refused it for good, e.g. 400: then it stays only in the landing
log). Nothing counts twice: every sample has a unique `id`, the sidecar lands an id once however
often it is sent (`Sidecar.accept_metrics`), and `raw/system/metrics` keeps one row per id, so a
sample landed both here and by the sidecar is one row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cc_events.helpers import parse_time
from resources.settings import Settings
from resources.storage.landing import landing_for

STREAM = "system_metrics"
# The `POST /events` kind of a batch of samples (`cc_events.sources.system.METRICS_KIND`).
KIND = "system.metrics"
# Samples per POST: a catch-up after a day-long outage (2,880 samples) is six requests of ~300 kB.
BATCH_MAX = 500
# The sidecar remembers the ids it landed this many days (its dedupe window); an outbox sample
# older than that is not sent again (the landing log has it), or a resend could land twice.
RESEND_DAYS = 2
# Short against the 30 s tick: a sidecar that does not answer in time is treated as down.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


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


def sampled_at(record: dict[str, Any]) -> datetime:
    """The sample's time, naive UTC (the lake's convention)."""
    return parse_time(record["sampled_at"], "sampled_at")


class Outbox:
    """Samples landed here that the sidecar has not acknowledged yet, oldest first.

    A JSON-lines file: added samples are appended and fsynced; removing rewrites the rest under a
    temporary name and renames it over the file, so a crash leaves the old list or the new one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._samples: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # torn by a crash while appending: its sample is in the landing log
                    continue
                if isinstance(record, dict) and record.get("id"):
                    self._samples[str(record["id"])] = record

    def __len__(self) -> int:
        return len(self._samples)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._samples

    def pending(self) -> list[dict[str, Any]]:
        """What to send, oldest first; samples past the sidecar's dedupe window are forgotten."""
        horizon = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=RESEND_DAYS)
        stale = [i for i, s in self._samples.items() if sampled_at(s) < horizon]
        if stale:
            log.warning("%d sample(s) older than %d days are not sent again (they are in the landing log)",
                        len(stale), RESEND_DAYS)
            self.remove(stale)
        return sorted(self._samples.values(), key=sampled_at)

    def add(self, samples: list[dict[str, Any]]) -> None:
        if not samples:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(b"".join(json.dumps(s, separators=(",", ":")).encode() + b"\n" for s in samples))
            handle.flush()
            os.fsync(handle.fileno())
        for s in samples:
            self._samples[str(s["id"])] = s

    def remove(self, ids: Iterable[str]) -> None:
        gone = [i for i in ids if i in self._samples]
        if not gone:
            return
        for i in gone:
            del self._samples[i]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(b"".join(json.dumps(s, separators=(",", ":")).encode() + b"\n"
                                  for s in self._samples.values()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


@dataclass
class Delivered:
    """What one delivery did: samples the sidecar acknowledged, samples landed here, and how many
    still wait in the outbox."""

    sent: int = 0
    landed: int = 0
    waiting: int = 0


class _Down(Exception):
    """The sidecar did not take the batch this time (unreachable, timeout, 5xx, 408, 429, 401, 403)."""


class _Refused(Exception):
    """The sidecar refused the batch for good (400, 413, ...): sending it again would not help."""


class MetricsAgent:
    """Delivers samples: to the sidecar when configured, else (and while it is down) the landing log."""

    def __init__(self, settings: Settings, host: str | None = None, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.host = host
        self.read_timeout_s = read_timeout_s
        self.landing = landing_for(settings)
        self.outbox = Outbox(settings.state_dir / "metrics_agent" / "outbox.jsonl")
        self.token = settings.events_api_token
        self.url = f"{settings.sidecar_base_url}/events"
        self._session: Any = None
        self._down = False  # to log an outage once, not every tick

    @property
    def pushes(self) -> bool:
        """Sends to the sidecar (a token is set); otherwise only lands."""
        return bool(self.token)

    def tick(self) -> Delivered:
        """Take one sample of this host and deliver it (after the outbox)."""
        return self.deliver([sample(self.host)])

    def deliver(self, samples: list[dict[str, Any]]) -> Delivered:
        """The outbox and then `samples` to the sidecar in batches; what it does not take is landed
        here (the outbox's samples already are) and kept in the outbox for the next delivery."""
        done = Delivered()
        if not self.pushes:
            done.landed = self._land(samples)
            return done
        backlog = self.outbox.pending()
        queue = backlog + [s for s in samples if str(s["id"]) not in self.outbox]
        new_ids = {str(s["id"]) for s in samples}
        handled: set[str] = set()
        for start in range(0, len(queue), BATCH_MAX):
            batch = queue[start:start + BATCH_MAX]
            try:
                self._post(batch)
                done.sent += len(batch)
            except _Refused as refused:
                log.error("the sidecar refused %d sample(s) for good, they stay in the landing log only: %s",
                          len(batch), refused)
                done.landed += self._land([s for s in batch if str(s["id"]) in new_ids])
            except _Down as down:
                if not self._down:
                    log.warning("the sidecar at %s did not take samples (%s): landing them here until it is back",
                                self.url, down)
                self._down = True
                break
            handled.update(str(s["id"]) for s in batch)
            self.outbox.remove(str(s["id"]) for s in batch)
        else:
            if self._down and done.sent:
                log.warning("the sidecar is back: sent %d sample(s)", done.sent)
            self._down = False
        unsent = [s for s in samples if str(s["id"]) not in handled and str(s["id"]) not in self.outbox]
        # The outbox first: a crash between the two leaves a sample that will still be sent, never
        # one landed here that the sidecar never gets.
        self.outbox.add(unsent)
        done.landed += self._land(unsent)
        done.waiting = len(self.outbox)
        return done

    def _land(self, samples: list[dict[str, Any]]) -> int:
        landed = 0
        by_day: dict[Any, list[dict[str, Any]]] = {}
        for s in samples:
            by_day.setdefault(sampled_at(s).date(), []).append(s)
        for group in by_day.values():
            # Under the sample's own day, as the sidecar lands it, so its partition finds it.
            # Keyed by sample id: in the shared landing, the sidecar's copy of one sent later from
            # the outbox is then a duplicate (the raw asset dedupes the files by id).
            landed += self.landing.append(STREAM, group, sampled_at(group[0]), keys=[str(s["id"]) for s in group])
        return landed

    def _post(self, batch: list[dict[str, Any]]) -> None:
        import requests  # here: the sidecar and the assets import this module for STREAM alone

        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(self.url, json={"kind": KIND, "data": batch},
                                          headers={"Authorization": f"Bearer {self.token}"},
                                          timeout=(CONNECT_TIMEOUT_S, self.read_timeout_s))
        except requests.RequestException as exc:
            raise _Down(type(exc).__name__) from exc
        if response.ok:
            return
        detail = f"{response.status_code} {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
            raise _Down(detail)  # 401/403: a token to fix; the outbox waits for it
        raise _Refused(detail)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=settings.metrics_interval_s,
                        help="seconds between samples (default: CC_METRICS_INTERVAL_S, 30)")
    parser.add_argument("--once", action="store_true", help="one sample (and the outbox), then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s metrics agent: %(message)s")
    agent = MetricsAgent(settings)
    if agent.pushes:
        log.info("sending samples every %.0f s to %s (%d waiting in the outbox)", args.interval, agent.url,
                 len(agent.outbox))
    else:
        log.info("no CC_EVENTS_API_TOKEN: landing samples every %.0f s in %s", args.interval,
                 agent.landing if settings.landing_url else settings.landing_dir / STREAM)
    try:
        while True:
            started = time.monotonic()
            agent.tick()
            if args.once:
                return
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()


if __name__ == "__main__":
    main()
