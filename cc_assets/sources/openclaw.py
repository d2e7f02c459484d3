"""OpenClaw's raw asset: agent sessions updated in the window."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec
from cc_events.registry import RAW_TABLES
from resources.platform import PlatformResource


def fetch_openclaw_sessions(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.openclaw().sessions(window.start, window.end):
        yield item, {}, None


SPECS = [RawSpec(RAW_TABLES["openclaw", "sessions"], fetch_openclaw_sessions, "updated_at")]
