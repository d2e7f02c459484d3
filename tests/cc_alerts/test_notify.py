"""Notifications reach people through real channels: a local SMTP server and an HTTP webhook
receiver, through Apprise. Grouped and throttled, retried with backoff, one channel's failure
never holding up another."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from cc_alerts.model import Finding
from cc_alerts.notify import Channel, Notifier, channels_from_settings
from resources.settings import Settings

T0 = datetime(2026, 12, 6, 12, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def stale(subject: str = "source:github", severity: str = "warning") -> Finding:
    return Finding("stale_data", subject, severity, f"{subject} has sent nothing for 6 min",
                   links={"source": "http://127.0.0.1:3000/assets/raw/github"})


def test_an_alert_and_its_resolution_reach_the_inbox_and_the_webhook(sqlite_store, smtp, webhook_receiver):
    clock = Clock()
    channels = [Channel(smtp.url), Channel(webhook_receiver.url)]
    notifier = Notifier(sqlite_store, channels, group_s=30, clock=clock, base_url="http://cc.example:8000")
    sqlite_store.raise_alert(stale(), clock())
    assert [notifier.drain(c) for c in channels] == ["sent", "sent"]
    assert smtp.subjects() == ["[Command Center] WARNING: stale_data · source:github"]
    body = smtp.body(0)
    assert "source:github has sent nothing for 6 min" in body and "http://cc.example:8000/api/alerts" in body
    assert webhook_receiver.posts[0]["title"] == smtp.subjects()[0]
    assert webhook_receiver.posts[0]["type"] == "warning"
    # Seen again: counted, not told again.
    clock.step(30)
    sqlite_store.raise_alert(stale(), clock())
    assert [notifier.drain(c) for c in channels] == ["idle", "idle"]
    clock.step(30)
    sqlite_store.resolve("stale_data", "source:github", clock(), "github is sending again")
    assert [notifier.drain(c) for c in channels] == ["sent", "sent"]
    assert smtp.subjects()[1] == "[Command Center] resolved: stale_data · source:github"
    assert webhook_receiver.posts[1]["type"] == "success"


def test_a_storm_of_1000_alerts_in_a_minute_is_a_handful_of_messages(sqlite_store, smtp):
    clock = Clock()
    channel = Channel(smtp.url)
    notifier = Notifier(sqlite_store, [channel], group_s=30, clock=clock)
    for n in range(1000):  # 1,000 hosts failing over one minute, the notifier looking every second
        sqlite_store.raise_alert(Finding("host_cpu", f"host:web-{n}", "critical", "CPU 99% for 5 min"), clock())
        if n % 17 == 0:
            notifier.drain(channel)
            clock.step(1)
    clock.step(30)
    notifier.drain(channel)
    assert 2 <= len(smtp.messages) <= 4, smtp.subjects()
    told = sum(int(s.split(" ")[2]) if "alert changes" in s else 1 for s in smtp.subjects())
    assert told == 1000  # every change is in some message, none twice
    assert "... and" in smtp.body(len(smtp.messages) - 1)


def test_a_failing_channel_is_retried_with_backoff_and_never_blocks_another(sqlite_store, smtp, webhook_receiver):
    clock = Clock()
    mail, hook = Channel(smtp.url), Channel(webhook_receiver.url)
    notifier = Notifier(sqlite_store, [mail, hook], group_s=0, retry_base_s=5, retry_max_s=60, clock=clock)
    webhook_receiver.failing = True
    sqlite_store.raise_alert(stale(), clock())
    assert notifier.drain(hook) == "failed" and notifier.drain(mail) == "sent"
    waits = []
    for _ in range(6):
        state = sqlite_store.channel(hook.id)
        waits.append((state.next_try_at - clock()).total_seconds())
        assert notifier.drain(hook) == "waiting"  # not before its time
        clock.now = state.next_try_at
        assert notifier.drain(hook) == "failed"
    assert waits == [5, 10, 20, 40, 60, 60]
    assert "500" in sqlite_store.channel(hook.id).last_error
    sqlite_store.raise_alert(stale("source:linear"), clock())  # meanwhile, mail goes on
    assert notifier.drain(mail) == "sent" and len(smtp.messages) == 2
    webhook_receiver.failing = False
    clock.now = sqlite_store.channel(hook.id).next_try_at
    assert notifier.drain(hook) == "sent"
    [post] = webhook_receiver.posts  # both alerts, in one message: nothing was lost while it failed
    assert "source:github" in post["message"] and "source:linear" in post["message"]


def test_channels_get_their_severities(sqlite_store, smtp, webhook_receiver):
    settings = Settings.from_env({"CC_ALERT_URLS": smtp.url, "CC_ALERT_ROUTES": f'{{"critical": ["{webhook_receiver.url}"]}}'})
    channels = channels_from_settings(settings)
    assert [c.min_severity for c in channels] == ["warning", "critical"]
    notifier = Notifier(sqlite_store, channels, group_s=0)
    sqlite_store.raise_alert(stale("source:cron", "info"), None)
    sqlite_store.raise_alert(stale("source:github", "warning"), None)
    sqlite_store.raise_alert(stale("source:linear", "critical"), None)
    for channel in channels:
        notifier.drain(channel)
    assert "source:cron" not in smtp.body(0) and "source:github" in smtp.body(0) and "source:linear" in smtp.body(0)
    assert "source:linear" in webhook_receiver.posts[0]["message"]
    assert "source:github" not in webhook_receiver.posts[0]["message"]
    assert all(url not in str(notifier.status()) for url in (smtp.url, webhook_receiver.url))  # no secrets shown


def test_the_notifier_threads_deliver_on_their_own(sqlite_store, smtp):
    notifier = Notifier(sqlite_store, [Channel(smtp.url)], group_s=30, tick_s=0.1)
    notifier.start()
    try:
        sqlite_store.raise_alert(stale())
        deadline = time.monotonic() + 30
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        notifier.stop()
    assert smtp.subjects() == ["[Command Center] WARNING: stale_data · source:github"]
