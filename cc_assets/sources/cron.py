"""The cron runner's raw asset: job run events."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec
from cc_events.registry import RAW_TABLES
from resources.platform import PlatformResource


def fetch_cron_events(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # The runner's log is ordered by sequence, not time: read it all, the window keeps its days.
    for item in platform.cron().events(after_seq=0):
        yield item, {}, None


SPECS = [RawSpec(RAW_TABLES["cron", "events"], fetch_cron_events, "occurred_at")]
