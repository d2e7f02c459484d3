"""Notifications: the store's notices, sent to people through Apprise (e-mail, Slack, Teams,
Discord, Telegram, generic JSON webhooks, ... one URL per channel).

Channels come from the settings: every URL in `CC_ALERT_URLS` gets alerts of
`CC_ALERT_MIN_SEVERITY` and above; `CC_ALERT_ROUTES` (`{"critical": ["slack://..."]}`) adds
channels that get one severity and above. Each channel is drained on its own thread, so a
channel that hangs or fails never holds up another, and nothing here runs on the path that
found the problem (the sidecar's requests, a sensor tick): the store keeps the notices until
they are sent.

Grouping and throttling: a channel sends at most one message per `CC_ALERT_GROUP_S`; everything
that happened in between goes out as one digest. The first notice after a quiet spell goes at
once; a storm of 1,000 alerts in a minute is two or three messages. A failed send is retried
with exponential backoff (capped at `CC_ALERT_RETRY_MAX_S`) and nothing is skipped meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cc_alerts.model import SEVERITIES, severity_rank
from cc_alerts.store import AlertStore, Notice, utcnow

log = logging.getLogger(__name__)

DIGEST_LINES = 25  # a digest lists this many changes, then says how many more
LEASE_S = 120.0


@dataclass(frozen=True)
class Channel:
    url: str
    min_severity: str = "warning"

    @property
    def id(self) -> str:
        """A name for the channel that does not reveal its URL (which may hold a password or token)."""
        scheme = self.url.split("://", 1)[0] if "://" in self.url else "url"
        digest = hashlib.sha256(f"{self.url}|{self.min_severity}".encode()).hexdigest()[:10]
        return f"{scheme}:{digest}"

    def wants(self, notice: Notice) -> bool:
        return severity_rank(notice.severity) >= severity_rank(self.min_severity)


def channels_from_settings(settings) -> list[Channel]:
    found = [Channel(url, settings.alert_min_severity) for url in settings.alert_urls]
    for severity, urls in (settings.alert_routes or {}).items():
        found += [Channel(url, severity) for url in urls]
    unique: dict[str, Channel] = {}
    for channel in found:
        unique.setdefault(channel.id, channel)
    return list(unique.values())


def _line(notice: Notice) -> str:
    alert = notice.alert
    subject = alert["subject"]["key"]
    text = f"[{notice.transition.upper()}] {alert['severity']} · {alert['rule']} · {subject}: {alert['message']}"
    if alert.get("count", 1) > 1 and notice.transition != "resolved":
        text += f" (seen {alert['count']} times)"
    links = alert.get("links") or {}
    if links:
        text += "\n    " + "  ".join(f"{name}: {url}" for name, url in sorted(links.items()))
    return text


def render(notices: Sequence[Notice], base_url: str | None = None) -> tuple[str, str, str]:
    """(title, body, apprise notify type) for one message covering `notices`."""
    opened = [n for n in notices if n.transition != "resolved"]
    resolved = [n for n in notices if n.transition == "resolved"]
    worst = max((n.severity for n in opened), key=severity_rank, default="info")
    if len(notices) == 1:
        alert = notices[0].alert
        verb = "resolved" if notices[0].transition == "resolved" else alert["severity"].upper()
        title = f"[Command Center] {verb}: {alert['rule']} · {alert['subject']['key']}"
    else:
        parts = [f"{len(opened)} opened or escalated" if opened else "", f"{len(resolved)} resolved" if resolved else ""]
        title = f"[Command Center] {len(notices)} alert changes: " + ", ".join(p for p in parts if p)
    body = "\n".join(_line(n) for n in notices[:DIGEST_LINES])
    if len(notices) > DIGEST_LINES:
        body += f"\n... and {len(notices) - DIGEST_LINES} more"
    if base_url:
        body += f"\n\nAll alerts: {base_url.rstrip('/')}/api/alerts"
    kind = "success" if not opened else {"critical": "failure", "warning": "warning"}.get(worst, "info")
    return title, body, kind


def send_apprise(url: str, title: str, body: str, kind: str) -> str | None:
    """Send one message; None when it went, else the reason it did not."""
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "Apprise does not understand this URL (see https://github.com/caronc/apprise/wiki)"
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = notifier.notify(title=title, body=body, notify_type=kind)
        errors = captured.getvalue().strip()
    if ok:
        return None
    return errors.splitlines()[-1][:400] if errors else "the channel refused the message"


class Notifier:
    """Drains the store's notices to every channel, on one thread per channel."""

    def __init__(self, store: AlertStore, channels: Sequence[Channel], *, group_s: float = 30.0,
                 retry_base_s: float = 5.0, retry_max_s: float = 300.0, base_url: str | None = None,
                 send: Callable[[str, str, str, str], str | None] = send_apprise,
                 clock: Callable[[], datetime] = utcnow, tick_s: float = 1.0) -> None:
        self.store, self.channels = store, list(channels)
        self.group_s, self.retry_base_s, self.retry_max_s = group_s, retry_base_s, retry_max_s
        self.base_url, self._send, self._clock, self.tick_s = base_url, send, clock, tick_s
        self.owner = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, store: AlertStore, settings, **kwargs) -> Notifier:
        return cls(store, channels_from_settings(settings), group_s=settings.alert_group_s,
                   retry_max_s=settings.alert_retry_max_s, base_url=settings.alert_base_url, **kwargs)

    def drain(self, channel: Channel) -> str:
        """Send what is due to `channel` now: "sent", "waiting" (throttled or backing off), "idle"
        (nothing to send), "busy" (another process holds it) or "failed"."""
        now = self._clock()
        state = self.store.channel(channel.id)
        if state.next_try_at is not None and now < state.next_try_at:
            return "waiting"
        notices = self.store.notices_after(state.cursor)
        if not notices:
            return "idle"
        wanted = [n for n in notices if channel.wants(n)]
        if not wanted:
            self.store.skip(channel.id, notices[-1].id)
            return "idle"
        if state.last_sent_at is not None and (now - state.last_sent_at).total_seconds() < self.group_s:
            return "waiting"
        if not self.store.lease(channel.id, self.owner, now, LEASE_S):
            return "busy"
        title, body, kind = render(wanted, self.base_url)
        try:
            error = self._send(channel.url, title, body, kind)
        except Exception as exc:  # noqa: BLE001 - a channel's failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            self.store.sent(channel.id, notices[-1].id, self._clock())
            return "sent"
        backoff = min(self.retry_max_s, self.retry_base_s * 2 ** min(state.attempts, 16))
        self.store.failed(channel.id, error, self._clock() + timedelta(seconds=backoff))
        log.warning("alert channel %s failed (retry in %.0fs): %s", channel.id, backoff, error)
        return "failed"

    def _run(self, channel: Channel) -> None:
        while not self._stop.is_set():
            try:
                self.drain(channel)
            except Exception:  # noqa: BLE001 - the store may be briefly unavailable: try again
                log.exception("draining alert channel %s failed", channel.id)
            self._stop.wait(self.tick_s)

    def start(self) -> None:
        for channel in self.channels:
            thread = threading.Thread(target=self._run, args=(channel,), name=f"alerts-{channel.id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def status(self) -> list[dict]:
        by_id = {c.id: c for c in self.channels}
        return [{"channel": s.channel, "minSeverity": by_id[s.channel].min_severity, "sent": s.sent,
                 "lastSentAt": None if s.last_sent_at is None else s.last_sent_at.isoformat() + "Z",
                 "failedAttempts": s.attempts, "lastError": s.last_error}
                for s in self.store.channels() if s.channel in by_id]


__all__ = ["SEVERITIES", "Channel", "Notifier", "channels_from_settings", "render", "send_apprise"]
