"""Webhook deliveries the streaming sidecar acknowledged (its landing log)."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec, from_landing
from cc_events.registry import RAW_TABLES
from cc_events.sources.webhooks import LANDING_STREAM as WEBHOOKS_STREAM
from resources.platform import PlatformResource


def fetch_webhook_deliveries(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # A redelivery the sidecar landed twice (two replicas, or a crash before its ack) is one row.
    yield from from_landing(platform, WEBHOOKS_STREAM, window.days, lambda r: r.get("id"), shared=True)


SPECS = [RawSpec(RAW_TABLES["webhooks", "deliveries"], fetch_webhook_deliveries, "received_at")]
