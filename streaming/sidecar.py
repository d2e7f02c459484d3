"""The sidecar's state and its one pipeline: land durably → normalize → correlate → publish.

One `Sidecar` per process, made in the app's lifespan: the group-commit landing log, the set of
delivery ids (and host sample ids) already acknowledged, the live-event and live-sample stores,
the rooms of this replica's clients and the broker that fans messages out to every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from datetime import datetime
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from cc_alerts.facts import Facts
from cc_alerts.store import alert_store
from cc_events import InvalidRecord, NormalizeContext
from cc_events.latest import context_from_lake
from cc_events.model import NormalizedEvent
from cc_events.registry import normalize_delivery
from cc_events.sources.webhooks import LANDING_STREAM
from cc_events.updates import restates, updated_type
from resources.ingest.metrics_agent import RESEND_DAYS
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.settings import Settings
from resources.storage.lake import Lake
from resources.storage.landing import landing_for
from streaming.alerting import FACTS_ROOM, SharedFacts, evaluates_here, start_alerts
from streaming.broker import MemoryBroker, broker_for
from streaming.claims import CLAIM_TTL_S, RECOVERED, Held, SharedClaims
from streaming.correlate import Correlator
from streaming.data.marts import MartsUnavailable, iso, marts_from_settings, utcnow
from streaming.dedupe import DeliveryIndex
from streaming.journal import GroupCommitLog, encode_line
from streaming.live import LiveEvents, event_dict
from streaming.metrics_in import accept_metrics
from streaming.pg_journal import PgCommitLog
from streaming.ratelimit import RateLimits
from streaming.responses import Answer
from streaming.rooms import ALL_WORKFLOWS, Hub, message
from streaming.samples import ROOM as METRICS_ROOM
from streaming.samples import LiveSamples
from streaming.state.shared import STATE_ROOM, sent_by, start_sharing
from streaming.state.workflows import LiveState, carried_by
from streaming.telemetry import Telemetry
from streaming.webhooks import Delivery

log = logging.getLogger(__name__)

# `system.status.update` goes out at most this often while the overview's numbers move.
STATUS_PUSH_S = 0.5
# The lake's Linear teams and Charlie instances are looked at this often (read again when changed).
CONTEXT_INTERVAL_S = 5.0
ALERT_KIND = "alert"
# The alert store is looked at this often for changes (whoever made them) to push to `alerts:all`.
ALERTS_FEED_S = 0.5
ALERTS_ROOM = "alerts:all"
# The broker's channel for the live events themselves (no client can join it: not a room name).
LIVE_ROOM = "_live"
# With the shared landing, a copy another replica landed is published by this one if its events
# have not reached this replica this long after (that replica died before publishing them).
LANDED_ELSEWHERE_WAIT_S = 1.0
_TIMES = ("event_at", "occurred_at", "received_at")


class Sidecar:
    def __init__(self, settings: Settings, live: LiveEvents, samples: LiveSamples | None = None) -> None:
        self.settings = settings
        self.live = live
        self.samples = samples if samples is not None else LiveSamples()
        self.writer = settings.sidecar_worker_id
        self.telemetry = Telemetry()  # its own metrics, at /metrics (streaming/telemetry.py)
        self.landing = landing_for(settings)
        # With CC_LANDING_URL every replica lands in one Postgres: its unique keys are the dedupe
        # across replicas and hosts (no files, no Redis claims); the indexes only hold what this
        # process landed or waits for.
        self.shared_landing = settings.landing_url is not None
        self.journal: GroupCommitLog | PgCommitLog
        if self.shared_landing:
            self.journal = PgCommitLog(settings.landing_url, self.writer, settings.fault_fsync_delay_s,
                                       self.telemetry.committed)
            self.deliveries = DeliveryIndex(None, LANDING_STREAM)
            self.sample_ids = DeliveryIndex(None, METRICS_STREAM)
        else:
            # This worker's own landing files among the workers sharing the data dir: its name's lock
            # first, then the indexes, which read every worker's files and index this one's tails.
            self.journal = GroupCommitLog(settings.landing_dir, settings.fault_fsync_delay_s, self.writer,
                                          self.telemetry.committed)
            self.deliveries = DeliveryIndex(settings.landing_dir, LANDING_STREAM, writer=self.writer)
            # Host samples, by sample id, over the window in which the metrics agent sends one again.
            self.sample_ids = DeliveryIndex(settings.landing_dir, METRICS_STREAM, days=RESEND_DAYS,
                                            writer=self.writer)
        self.hub = Hub(settings.ws_queue_max, settings.ws_slow_after_s, settings.ws_batch_ms / 1000,
                       settings.ws_frames_per_s, settings.room_batch, settings.room_busy_share)
        self.broker = broker_for(settings.redis_url)
        self._shared = not isinstance(self.broker, MemoryBroker)  # replicas share delivery keys and live rows
        # Rate limits per token and action, and per webhook source: in the broker's Redis, if any.
        self.limits = RateLimits.for_broker(settings, self.broker, on_refused=self.telemetry.refused,
                                            on_error=self.telemetry.rate_limit_errors.inc)
        self.marts = marts_from_settings(settings)  # the last build's marts, as the REST API reads them
        self.correlator = Correlator(self.marts)
        # Each affected workflow's fct_workflows row, recomputed as its events arrive.
        self.state = LiveState(settings, self.marts, self.correlator, live)
        self.serving: Any = None  # the REST reads (streaming/data/serving.py), set by the app
        # Alerts: what this replica saw live and, with Redis, what the others saw (the rules read
        # it), the store every process shares, the rules' monitor and the notifier (cc_alerts/,
        # streaming/alerting.py), started in `start`.
        self.facts = Facts(shared=self._shared)
        self.alerts = alert_store(settings)
        self.monitor: Any = None
        self.notifier: Any = None
        self._alert_seq: int | None = None
        self.context = NormalizeContext()
        self._context_seen: tuple | None = None
        self._learned_teams: set[str] = set()
        self.replica = uuid.uuid4().hex[:12]  # tells this replica's own live events from the others'
        self._own_live = sent_by(self.replica)  # how its LIVE_ROOM messages begin
        self.shared_facts = SharedFacts(self.facts, self.broker, self.replica)  # sent and merged with Redis
        # Deliveries claimed across replicas while one lands them (with Redis).
        self.claims = SharedClaims(self.broker, settings.landing_dir, LANDING_STREAM, self.writer, self.replica,
                                   max(CLAIM_TTL_S, 20 * settings.fault_fsync_delay_s))
        self.last_status: str | None = None
        self._status_key: Any = None
        self._status_seen: Any = None
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.broker.connect(self._from_broker)
        self._context_seen = await asyncio.to_thread(self._context_files)
        self.context = await asyncio.to_thread(self._load_context)
        self.state.on_change(self._state_changed)
        if self._shared:  # one replica computes the live state and evaluates the rules (on all replicas' facts)
            self._tasks += [start_sharing(self.state, self.broker, self.replica),
                            asyncio.create_task(self.shared_facts.run())]
        self.state.start()
        self._tasks += [asyncio.create_task(self._every(CONTEXT_INTERVAL_S, self._refresh_context)),
                        asyncio.create_task(self._every(STATUS_PUSH_S, self._refresh_status)),
                        asyncio.create_task(self._every(ALERTS_FEED_S, self._alerts_feed))]
        if self.telemetry.multiprocess:  # the other workers read this one's gauges from its files
            self._tasks.append(asyncio.create_task(self.telemetry.sample_every(self)))
        await asyncio.to_thread(self._start_alerts)

    def _start_alerts(self) -> None:
        try:
            self._alert_seq = self.alerts.last_seq()  # push what changes from now on
        except Exception:  # noqa: BLE001 - a store down at start-up: the feed starts when it is back
            log.exception("the alert store is unavailable")
        self.monitor, self.notifier = start_alerts(self.alerts, self.settings, self.facts, evaluates_here(self.state))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self.hub.all_clients():
            client.kick(1001, "server shutting down")
        await self.broker.disconnect()
        for part in (self.monitor, self.notifier):
            if part is not None:
                await asyncio.to_thread(part.stop)
        await asyncio.to_thread(self.alerts.close)
        await asyncio.to_thread(self.state.close)
        await self.limits.close()
        self.journal.close()
        self.marts.close()

    async def _every(self, interval: float, step) -> None:
        while True:
            try:
                await step()
            except Exception:  # a background refresh must never stop
                log.exception("sidecar background step failed")
            await asyncio.sleep(interval)

    def _load_context(self) -> NormalizeContext:
        """Linear teams and Charlie identities as last landed (what makes ENG-12 a key)."""
        try:
            return context_from_lake(Lake(self.settings.lake_dir))
        except Exception:  # an unreadable lake leaves the previous context
            log.exception("could not read the normalize context from the lake")
            return self.context

    def _context_files(self) -> tuple:
        """What the context is read from, as (path, size, mtime): unchanged, nothing to read."""
        raw = self.settings.lake_dir / "raw"
        found = []
        for table in ("linear/teams", "charlie/instances", "webhooks/linear__issues"):
            for path in (raw / table).glob("*/*.parquet"):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(sorted(found))

    async def _refresh_context(self) -> None:
        files = await asyncio.to_thread(self._context_files)
        if files == self._context_seen:
            return
        context = await asyncio.to_thread(self._load_context)
        self._context_seen = files
        # Teams learned from deliveries the lake does not have yet stay known.
        self.context = dataclasses.replace(context, linear_team_keys=context.linear_team_keys | self._learned_teams)

    async def _refresh_status(self) -> None:
        """Push the seeds' `system.status.update` to `dashboard:overview` whenever its numbers move
        (a new build, or a pushed cron run the live state took in), looked at every STATUS_PUSH_S:
        `read_system_status`, which `/dashboard/overview`'s `systemStatus` is too.

        Every replica computes the same from the same marts and live events, so each delivers to
        its own clients only."""
        serving = self.serving
        if serving is None:
            return
        seen = (self.marts.version(), id(self.state.snapshot))
        if seen == self._status_seen:
            return
        from streaming.data.queries import read_system_status

        try:
            status, at = await asyncio.to_thread(read_system_status, serving)
        except MartsUnavailable:
            return
        self._status_seen = seen
        if status is None:
            return
        payload = status.model_dump(mode="json", by_alias=True)
        if payload == self._status_key:
            return
        self._status_key = payload
        stamp = iso(at) if isinstance(at, datetime) else None
        self.last_status = message("system.status.update", "dashboard:overview", payload, stamp)
        self.hub.deliver("dashboard:overview", self.last_status)

    async def _alerts_feed(self) -> None:
        """`alert.<opened|updated|escalated|acknowledged|resolved>` to `alerts:all` for every change
        in the store since the last look, whoever made it (this monitor, another replica's, a
        Dagster sensor, an acknowledgement). Every replica reads the same store: each tells its own
        clients."""
        if self._alert_seq is None:
            self._alert_seq = await asyncio.to_thread(self.alerts.last_seq)
            return
        changed = await asyncio.to_thread(self.alerts.changed_since, self._alert_seq)
        for alert in changed:
            body = alert.to_json()
            self.hub.deliver(ALERTS_ROOM, message(f"alert.{alert.last_change}", ALERTS_ROOM, body, body["lastSeen"]))
            self._alert_seq = max(self._alert_seq, alert.seq)

    def _state_changed(self, rows: list[dict], cron: dict | None) -> None:
        """The live state's worker recomputed these workflows: announce them (on the event loop)."""
        if self._loop is not None and rows:
            self._loop.call_soon_threadsafe(self._announce, rows)

    def _announce(self, rows: list[dict]) -> None:
        """`workflow.updated` with each workflow's new state, to `workflows:<id>` and `workflows:all`.
        Every replica's state is the leader's (`streaming/state/shared.py`): each tells its own clients."""
        from streaming.data.queries import workflow_out

        counts, joined = self.state.snapshot.live_counts, self.hub.rooms
        for row in rows:
            # Only for rooms this replica's clients are in: under a flood most workflows have none.
            rooms = [r for r in (f"workflows:{row['workflow_id']}", ALL_WORKFLOWS) if r in joined]
            if not rooms:
                continue
            body = workflow_out(row, counts.get(row["workflow_id"], 0), True).model_dump(mode="json", by_alias=True)
            stamp = body["lastEventAt"]
            for room in rooms:
                self.hub.deliver(room, message("workflow.updated", room, body, stamp))

    # --- in -------------------------------------------------------------------------------------

    async def accept(self, delivery: Delivery) -> Answer:
        """Land a delivery once: 202 when its line is fsynced, 200 "duplicate" only for a copy
        that is durable (a copy still being written, by this worker or with Redis by another, is
        waited for: `streaming/claims.py`), 503 if the disk fails.

        Everything that can fail before the write (normalizing, encoding the line) happens before
        the claim; from the claim on, the claim is settled by the write's own outcome, so no
        error or cancelled request can leave a key claimed without a durable line."""
        keys = delivery.keys
        if self.deliveries.durable(keys) and (not self._shared or self.shared_landing):
            return self._duplicate(delivery)
        reason = None
        self.learn_team(delivery)
        try:
            events = normalize_delivery(delivery.source, delivery.event, delivery.payload, self.context)
            status = "normalized" if events else "raw"
        except InvalidRecord as exc:
            events, status, reason = [], "dead_letter", str(exc)
        except Exception as exc:  # a payload the normalizer did not foresee is a dead letter, never a 500
            log.exception("normalizing %s failed", delivery.id)
            events, status, reason = [], "dead_letter", f"{type(exc).__name__}: {exc}"
        record = {"id": delivery.id, "source": delivery.source, "delivery_id": delivery.delivery_id,
                  "event": delivery.event, "action": delivery.action, "status": status, "reason": reason,
                  "repo": delivery.repo}
        if delivery.aliases:
            record["aliases"] = list(delivery.aliases)
        if events:  # what it produced: the missed-webhooks rule reads it without normalizing again
            record["events"] = [e.id for e in events]
            record["event_sources"] = sorted({e.source for e in events})
        received_at = utcnow()
        try:
            line = encode_line(record, received_at, {"payload": delivery.raw})
        except (TypeError, orjson.JSONEncodeError) as exc:
            self.telemetry.delivered(delivery.source, "refused")
            return Answer({"detail": f"the delivery cannot be stored: {exc}"}, status_code=400)
        if self.deliveries.durable(keys):  # with Redis: landed, perhaps by a worker that died before publishing
            if not self.shared_landing and await self.claims.recover(keys):
                await self._publish_landed(delivery, events, received_at)
            return self._duplicate(delivery)
        claim = await self.deliveries.claim(keys)
        if claim is None:
            return self._duplicate(delivery)
        held: Held | str | None = None
        try:
            if self._shared and not self.shared_landing:  # and across replicas (streaming/claims.py)
                held = await self.claims.claim(keys)
            if isinstance(held, str):  # another replica landed it
                self.deliveries.settle(claim, durable=True)
            else:
                write = self.journal.submit(LANDING_STREAM, line, received_at, keys)
        except BaseException:
            self.deliveries.settle(claim, durable=False)
            if isinstance(held, Held):
                held.settle(durable=False)
            raise
        if isinstance(held, str):
            if held == RECOVERED:  # by one that died before publishing it
                await self._publish_landed(delivery, events, received_at)
            return self._duplicate(delivery)

        def settled(done: asyncio.Future) -> None:
            durable = not done.cancelled() and done.exception() is None
            self.deliveries.settle(claim, durable)
            if isinstance(held, Held):
                held.settle(durable)

        write.add_done_callback(settled)
        try:
            elsewhere = await asyncio.shield(write)
        except OSError as exc:
            self.telemetry.delivered(delivery.source, "failed")
            return Answer({"detail": f"could not store the delivery, retry: {exc}"}, status_code=503,
                                headers={"Retry-After": "5"})
        if elsewhere:  # the shared landing holds another replica's copy, committed
            if any(elsewhere.values()):  # just now: maybe by a replica that died before publishing it
                await self._landed_elsewhere(delivery, events, received_at)
            return self._duplicate(delivery)
        # On disk: from here on nothing may turn this into an error for the sender.
        self.facts.received(delivery.source, received_at)
        self.telemetry.delivered(delivery.source, "landed")
        if reason is not None:
            self.facts.dead_letter(delivery.source, reason, received_at)
            self.telemetry.dead_letters.labels(delivery.source).inc()
        # The landed marker goes to Redis before the messages (the same pipeline or an earlier one),
        # and before the answer.
        marked = held.settle(durable=True) if isinstance(held, Held) else None
        await self._publish_landed(delivery, events, received_at)
        if marked is not None:
            await asyncio.shield(marked)
        body: dict[str, Any] = {"status": status, "delivery": delivery.id, "events": [e.id for e in events]}
        if reason:
            body["reason"] = reason
        return Answer(body, status_code=202)

    async def _publish_landed(self, delivery: Delivery, events: list[NormalizedEvent], received_at: datetime) -> None:
        """Publish what a landed delivery produced; it stays landed whatever happens here."""
        try:
            await self.publish(events, received_at, delivery.action, carried_by(delivery, received_at))
            if delivery.event == ALERT_KIND:
                await self.broker.publish(ALERTS_ROOM, message(ALERT_KIND, ALERTS_ROOM, delivery.payload))
        except Exception:
            log.exception("publishing %s failed (it is landed and reaches the marts regardless)", delivery.id)

    async def _landed_elsewhere(self, delivery: Delivery, events: list[NormalizedEvent], received_at: datetime) -> None:
        """A copy another replica committed in the shared landing: its events reach this replica's
        live store through Redis once that replica publishes them. Not there after
        `LANDED_ELSEWHERE_WAIT_S`, it died between its commit and its publish (the sender is
        retrying here because it got no answer): published from here, as `RECOVERED` claims are."""
        if not events or not self._shared:
            return
        ids = [e.id for e in events]
        deadline = asyncio.get_running_loop().time() + LANDED_ELSEWHERE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            if len(self.live.get(ids)) == len(ids):
                return
            await asyncio.sleep(0.05)
        log.warning("%s was landed by a replica that did not publish it: publishing it here", delivery.id)
        await self._publish_landed(delivery, events, received_at)

    def _duplicate(self, delivery: Delivery) -> Answer:
        self.facts.duplicate(delivery.source, utcnow())
        self.telemetry.delivered(delivery.source, "duplicate")
        self.telemetry.webhook_duplicate.inc()
        return Answer({"status": "duplicate", "delivery": delivery.id})

    def learn_team(self, delivery: Delivery) -> None:
        """A Linear issue delivery is Linear knowing its team: `VRF-7` is a key from now on, for
        this delivery and every one after it (the lake learns it too: cc_events/latest.py)."""
        if delivery.source != "linear" or delivery.event != "Issue" or not isinstance(delivery.payload, dict):
            return
        data = delivery.payload.get("data")
        if not isinstance(data, dict):
            return
        team = data.get("team") if isinstance(data.get("team"), dict) else {}
        key = team.get("key") or str(data.get("identifier") or "").rpartition("-")[0]
        if isinstance(key, str) and key and key.upper() not in self.context.linear_team_keys:
            self._learned_teams.add(key.upper())
            self.context = dataclasses.replace(
                self.context, linear_team_keys=self.context.linear_team_keys | {key.upper()})

    async def accept_metrics(self, data: Any) -> JSONResponse:
        """Host samples, landed once per sample id (`streaming/metrics_in.py`)."""
        answer = await accept_metrics(self, data)
        status = answer.status_code
        self.telemetry.delivered("events", "landed" if status < 300 else "failed" if status >= 500 else "refused")
        return answer

    # --- out ------------------------------------------------------------------------------------

    def _from_broker(self, room: str, text: str) -> None:
        """A message from the broker: a room's, for this replica's clients, or another replica's
        live events, for this replica's REST reads and correlation."""
        if room == STATE_ROOM and self.state.sharing is not None:  # the leader's live state
            self.state.sharing.receive(text)
            return
        if room == FACTS_ROOM:  # another replica's alert facts
            self.shared_facts.receive(text)
            return
        if room != LIVE_ROOM:
            if room == METRICS_ROOM:  # every replica's REST reads see every replica's samples
                self.samples.add_message(text)
            self.hub.deliver(room, text)
            return
        if text.startswith(self._own_live):  # this replica's own, back from Redis: nothing to parse
            return
        shared = orjson.loads(text)
        rows = shared["rows"]
        for row in rows:
            for name in _TIMES:
                if isinstance(row.get(name), str):
                    row[name] = datetime.fromisoformat(row[name])
            self.correlator.workflow_for(row.get("correlation_keys") or [])
        self.live.add(rows)
        self.state.note([r["event_id"] for r in rows], [tuple(c) for c in shared.get("carried") or ()])

    async def publish(self, events: list[NormalizedEvent], received_at: datetime, action: str | None = None,
                      carried: list[tuple[str, dict]] | None = None) -> None:
        if not events and not carried:
            return
        seen = {e["event_id"] for e in self.live.get(e.id for e in events)}
        rows = []
        for event in events:
            rows.append(event_dict(event, received_at, self.correlator.workflow_for))
        self.live.add(rows)
        self.state.note([r["event_id"] for r in rows], carried or ())
        sent = None  # the messages go together (one pipeline a turn): waited for once, at the end
        if self._shared:
            # Every replica's REST reads, correlation and live state see what any replica accepted,
            # as its clients see the room messages.
            sent = self.broker.publish(LIVE_ROOM, orjson.dumps(
                {"from": self.replica, "rows": rows, "carried": carried or []}, default=str).decode())
        for event, row in zip(events, rows, strict=True):
            payload = event.to_message()
            kind = event.type
            if event.id in seen or restates(event.type, action):
                # The same event again, in a newer state (a PR edited, an issue moved): an update.
                kind = updated_type(event.type)
                payload["action"] = action
            if row["workflow_id"]:
                payload["workflow"] = {**(payload["workflow"] or {"name": row["workflow_id"], "stage": None}),
                                       "id": row["workflow_id"]}
            stamp = payload["timestamp"]
            rooms = ["events:all"]
            if row["workflow_id"]:
                rooms.append(f"workflows:{row['workflow_id']}")
            if event.type.endswith(".failed"):
                rooms.append(ALERTS_ROOM)
            for room in rooms:
                sent = self.broker.publish(room, message(kind, room, payload, stamp))
        if sent is not None:
            await sent
